# Copyright (c) mmrefseg contributors.
"""The small language of the synthetic REFER dataset.

Expressions are produced from templates, then *parsed back* by
:func:`resolve_expression`, which computes the literal referent set of a
text in a scene. An expression is kept only when that set is exactly its
intended target(s), so every expression is true and unambiguous by
construction; tests re-run the same resolver on the written files.
"""
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence

import numpy as np

#: Palette (RGB); saturated so the low-saturation background never matches.
COLOURS: Dict[str, tuple] = {
    'red': (215, 38, 38),
    'green': (40, 160, 60),
    'blue': (40, 80, 215),
    'yellow': (235, 205, 30),
    'purple': (135, 55, 175),
    'orange': (245, 135, 25),
    'cyan': (30, 190, 200),
}
SHAPES = ('circle', 'square', 'triangle', 'star', 'diamond')
PLURALS = {s: s + 's' for s in SHAPES}
_SHAPE_OF_PLURAL = {p: s for s, p in PLURALS.items()}
_GENERIC_PLURAL = ('shapes', 'objects', 'ones')
# word -> (axis, sign): ascending sign * coordinate puts the referent first.
_POSITION = {
    'left': ('x', 1),
    'leftmost': ('x', 1),
    'right': ('x', -1),
    'rightmost': ('x', -1),
    'top': ('y', 1),
    'topmost': ('y', 1),
    'upper': ('y', 1),
    'highest': ('y', 1),
    'bottom': ('y', -1),
    'bottommost': ('y', -1),
    'lowest': ('y', -1),
    'lower': ('y', -1),
}
# word -> (sign on area, comparative?)
_SIZE = {
    'biggest': (-1, False),
    'largest': (-1, False),
    'bigger': (-1, True),
    'larger': (-1, True),
    'smallest': (1, False),
    'smaller': (1, True),
}
_NUMBERS = {'two': 2, 'both': 2, 'three': 3, 'four': 4}
_ALL = ('all', 'every', 'each')

#: Neighbouring centres closer than this fraction of the image side make a
#: position word ambiguous; areas closer than this ratio a size word.
MIN_POSITION_GAP = 0.1
MIN_AREA_RATIO = 1.4


class SceneObject(NamedTuple):
    """What the language can talk about: an object's attributes.

    ``cx``/``cy`` are the centre of the COCO bbox and ``area`` the COCO
    ``area`` field, so a scene rebuilt from instances.json resolves exactly
    like the one the generator used.
    """
    shape: str
    colour: str
    cx: float
    cy: float
    area: float


def scene_object_from_ann(ann: dict, shape: str, colour: str) -> SceneObject:
    """Build a :class:`SceneObject` from a COCO annotation."""
    x, y, w, h = ann['bbox']
    return SceneObject(shape, colour, x + w / 2, y + h / 2, ann['area'])


def _ordered_with_gap(cands: List[int], objects: Sequence[SceneObject], n: int,
                      pos: Optional[tuple], size: Optional[tuple], width: int,
                      height: int) -> Optional[FrozenSet[int]]:
    """The first ``n`` candidates in the modifier's order, if clearly so."""
    if pos is not None:
        axis, sign = pos
        key = [(objects[i].cx if axis == 'x' else objects[i].cy) * sign
               for i in cands]
        order = sorted(range(len(cands)), key=lambda k: (key[k], cands[k]))
        gap = key[order[n]] - key[order[n - 1]]
        if gap < MIN_POSITION_GAP * (width if axis == 'x' else height):
            return None
    else:
        sign = size[0]
        area = [objects[i].area for i in cands]
        order = sorted(
            range(len(cands)), key=lambda k: (sign * area[k], cands[k]))
        lo, hi = sorted((area[order[n - 1]], area[order[n]]))
        if lo <= 0 or hi / lo < MIN_AREA_RATIO:
            return None
    return frozenset(cands[k] for k in order[:n])


def resolve_expression(text: str, objects: Sequence[SceneObject], width: int,
                       height: int) -> Optional[FrozenSet[int]]:
    """Literal referent set of ``text`` in a scene.

    Args:
        text (str): An expression of the synthetic language.
        objects (Sequence[SceneObject]): The scene.
        width (int): Image width (position gaps scale with it).
        height (int): Image height.

    Returns:
        frozenset[int] | None: Indices of the objects the text refers to
        (empty for a description nothing matches; several for a singular
        description that fits several objects), or None when the text is
        ill-formed or a position/size word does not single anything out.
    """
    words = [w.strip('.,!?') for w in text.lower().split()]
    if 'and' in words:
        cut = words.index('and')
        parts = [words[:cut], words[cut + 1:]]
        sets = [
            resolve_expression(' '.join(p), objects, width, height)
            for p in parts
        ]
        if any(s is None or len(s) != 1 for s in sets):
            return None
        union = frozenset().union(*sets)
        return union if len(union) == len(sets) else None
    colours = [w for w in words if w in COLOURS]
    shapes = [w for w in words if w in SHAPES]
    plural_shapes = [
        _SHAPE_OF_PLURAL[w] for w in words if w in _SHAPE_OF_PLURAL
    ]
    pos = [_POSITION[w] for w in words if w in _POSITION]
    size = [_SIZE[w] for w in words if w in _SIZE]
    counts = [_NUMBERS[w] for w in words if w in _NUMBERS]
    every = any(w in _ALL for w in words)
    if (len(colours) > 1 or len(shapes) + len(plural_shapes) > 1
            or len(pos) + len(size) > 1 or len(counts) > 1):
        return None
    plural = bool(plural_shapes) or any(w in _GENERIC_PLURAL for w in words)
    shape = (shapes + plural_shapes or [None])[0]
    colour = (colours or [None])[0]
    cands = [
        i for i, o in enumerate(objects)
        if (colour is None or o.colour == colour) and (
            shape is None or o.shape == shape)
    ]
    pos_m = pos[0] if pos else None
    size_m = size[0] if size else None
    if every:
        if pos or size or counts:
            return None
        return frozenset(cands)
    if counts:
        n = counts[0]
        if not plural:
            return None
        if pos_m or size_m:
            if len(cands) <= n or (size_m and size_m[1]):
                return None
            return _ordered_with_gap(cands, objects, n, pos_m, size_m, width,
                                     height)
        return frozenset(cands) if len(cands) == n else None
    if plural:
        if pos_m or size_m or len(cands) < 2:
            return None
        return frozenset(cands)
    if pos_m or size_m:
        if len(cands) < 2 or (size_m and size_m[1] and len(cands) != 2):
            return None
        return _ordered_with_gap(cands, objects, 1, pos_m, size_m, width,
                                 height)
    return frozenset(cands)


#: Kinds of :func:`expression_kind`, the single-target ones first.
EXPRESSION_KINDS = ('colour', 'shape', 'colour_shape', 'position', 'size',
                    'multi')


def expression_kind(text: str) -> str:
    """Which template family a single- or multi-target text comes from.

    The kinds are those of :func:`single_target_texts` plus ``'multi'``
    for plural/conjunctive texts. A position or size word decides the
    kind whatever else the text says ("the red star on the left" is a
    position expression): those are the words whose referent depends on
    the other objects of the scene.

    Args:
        text (str): An expression of the synthetic language.

    Returns:
        str: One of :data:`EXPRESSION_KINDS`.
    """
    words = [w.strip('.,!?') for w in text.lower().split()]
    if ('and' in words or any(w in _NUMBERS or w in _ALL for w in words)
            or any(w in _SHAPE_OF_PLURAL or w in _GENERIC_PLURAL
                   for w in words)):
        return 'multi'
    if any(w in _POSITION for w in words):
        return 'position'
    if any(w in _SIZE for w in words):
        return 'size'
    colour = any(w in COLOURS for w in words)
    shape = any(w in SHAPES for w in words)
    if colour and shape:
        return 'colour_shape'
    return 'colour' if colour else 'shape'


def single_target_texts(objects: Sequence[SceneObject], i: int, width: int,
                        height: int) -> Dict[str, List[str]]:
    """Every template expression that refers to exactly object ``i``.

    Args:
        objects (Sequence[SceneObject]): The scene.
        i (int): The target.
        width (int): Image width.
        height (int): Image height.

    Returns:
        dict[str, list[str]]: Valid texts grouped by kind ('colour',
        'shape', 'colour_shape', 'position', 'size').
    """
    c, s = objects[i].colour, objects[i].shape
    nouns = ['shape', s, f'{c} shape', f'{c} {s}']
    texts: Dict[str, List[str]] = dict(
        colour=[f'the {c} shape', f'the {c} one', f'the {c} object'],
        shape=[f'the {s}'],
        colour_shape=[f'the {c} {s}'],
        position=[f'the {side} one' for side in ('left', 'right', 'top')],
        size=[])
    for noun in nouns:
        texts['position'] += [
            f'the {w} {noun}'
            for w in ('leftmost', 'rightmost', 'topmost', 'bottom')
        ]
        texts['position'] += [
            f'the {noun} on the {side}'
            for side in ('left', 'right', 'top', 'bottom')
        ]
        texts['size'] += [
            f'the {w} {noun}'
            for w in ('biggest', 'largest', 'smallest', 'bigger', 'smaller')
        ]
    target = frozenset([i])
    return {
        kind: [
            t for t in ts
            if resolve_expression(t, objects, width, height) == target
        ]
        for kind, ts in texts.items()
    }


def multi_target_texts(objects: Sequence[SceneObject], width: int,
                       height: int) -> Dict[FrozenSet[int], List[str]]:
    """Template expressions with two or more referents, grouped by set.

    Args:
        objects (Sequence[SceneObject]): The scene.
        width (int): Image width.
        height (int): Image height.

    Returns:
        dict[frozenset[int], list[str]]: Referent set -> its texts.
    """
    present_c = [c for c in COLOURS if any(o.colour == c for o in objects)]
    present_s = [s for s in SHAPES if any(o.shape == s for o in objects)]
    texts = ['all the shapes', 'every shape']
    for c in present_c:
        texts += [
            f'all {c} shapes', f'the {c} shapes', f'all the {c} objects',
            f'both {c} shapes', f'the two {c} shapes', f'the three {c} shapes'
        ]
        texts += [f'the {c} {PLURALS[s]}' for s in present_s]
    for s in present_s:
        p = PLURALS[s]
        texts += [
            f'all the {p}', f'the {p}', f'both {p}', f'the two {p}',
            f'the three {p}', f'every {s}'
        ]
    texts += [
        f'the two {w} shapes' for w in ('leftmost', 'rightmost', 'topmost',
                                        'bottom', 'biggest', 'smallest')
    ]
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            texts.append(f'the {a.colour} {a.shape} and the {b.colour} '
                         f'{b.shape}')
    groups: Dict[FrozenSet[int], List[str]] = {}
    for t in texts:
        ref = resolve_expression(t, objects, width, height)
        if ref is not None and len(ref) >= 2 and t not in groups.get(ref, []):
            groups.setdefault(ref, []).append(t)
    return groups


def no_target_texts(objects: Sequence[SceneObject], width: int, height: int,
                    rng: np.random.Generator) -> List[str]:
    """One absent (colour, shape) pair phrased one or two ways.

    Pairs sharing a colour or a shape with the scene are preferred, so that
    a model has to check both words before answering "nothing".

    Returns:
        list[str]: Texts whose referent set is empty.
    """
    present = {(o.colour, o.shape) for o in objects}
    colours = {o.colour for o in objects}
    shapes = {o.shape for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    hard = [p for p in absent if p[0] in colours or p[1] in shapes]
    pool = hard or absent
    c, s = pool[int(rng.integers(len(pool)))]
    texts = [f'the {c} {s}', f'the {c} {s} in the picture']
    return [
        t for t in texts
        if resolve_expression(t, objects, width, height) == frozenset()
    ]
