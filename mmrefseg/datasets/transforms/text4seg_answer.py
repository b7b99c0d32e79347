# Copyright (c) mmrefseg contributors.
"""Mask + expression → the Text4Seg question and its descriptor answer.

Text4Seg trains a plain next-token objective on answers such as::

    Sure, here is the segmentation mask for 'white horse':
    <seg>others *4
     others *1| white horse *2| others *1
     ...
    </seg>

The grid (see :func:`mmrefseg.codecs.rrle.mask_to_grid`) covers the whole
image, so it lines up with the vision tokens only when the image is squashed
to a square tile (``InternVLImageTransform(mode='squash')``), as in the
reference code.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmrefseg.codecs.full_descriptors import ANSWER_FORMATS
from mmrefseg.codecs.rrle import (
    BACKGROUND,
    CLASS_PLACEHOLDER,
    build_answer,
    mask_to_grid,
    sanitize_label,
)
from mmrefseg.registry import TRANSFORMS

# QUESTION_PARTIAL / ANSWER_PARTIAL of the reference data scripts, verbatim
# (the duplicated answer is in the original list too and keeps its odds).
TEXT4SEG_QUESTIONS = (
    'Please segment only the [class_name] in the image.',
    'Can you segment the [class_name] in the image?',
    'Where is the [class_name] in this picture? Please respond with '
    'segmentation mask.',
    "Where is '[class_name]' in this image? Please output segmentation mask.",
    "Could you provide the segmentation mask for '[class_name]' in this "
    'image?',
    "Please segment the image and highlight '[class_name]'.",
)
TEXT4SEG_ANSWERS = (
    "Sure, here is the segmentation mask for '[class_name]':",
    'Here is the segmentation map focusing on the [class_name]:',
    'Here is the segmentation mask highlighting the [class_name]:',
    "The segmentation map for '[class_name]' is:",
    "The segmentation mask for '[class_name]' is shown below:",
    "The segmentation mask for '[class_name]' is shown below:",
    "Sure, Here's the segmentation of the [class_name]:",
    "Sure, the segmented output for '[class_name]' is:",
    "Certainly, the segmentation map for '[class_name]' is:",
    "Certainly, here is the segmentation mask for '[class_name]':",
)

# Per-expression entries that must follow the chosen expression.
_PER_EXPRESSION_KEYS = ('gt_masks', 'gt_bboxes', 'no_target', 'texts',
                        'ref_ids', 'sent_ids', 'expressions')


def to_grid_hw(grid_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``16`` or ``(16, 16)`` → ``(16, 16)``.

    Args:
        grid_size (int | Sequence[int]): Side or ``(h, w)`` of the grid.

    Returns:
        tuple[int, int]: ``(h, w)``.
    """
    if isinstance(grid_size, int):
        grid_size = (grid_size, grid_size)
    h, w = (int(v) for v in grid_size)
    if h < 1 or w < 1:
        raise ValueError(f'grid_size must be positive, got {grid_size!r}')
    return h, w


@TRANSFORMS.register_module()
class Text4SegAnswer(BaseTransform):
    """Write one expression's mask as a Text4Seg question/answer pair.

    A conversation holds one expression, as in the reference training data.
    A training sample with several expressions keeps one drawn at random, and
    every per-expression key is cut down to it so that the data sample stays
    consistent. In test mode a sample holds one expression, or K of one
    image grouped for speed (``test_grouping='image'``): then ``question``
    and ``answer`` are lists, one conversation per expression, and the
    model answers each on its own.

    The model's ``InternVLProcessor`` (``prompt_style='answer'``) tokenises
    ``question`` and ``answer`` as they are.

    Required keys: ``texts`` (K), ``gt_masks`` (K, H, W; without it, e.g.
    at inference, the answer is only the sentence before ``<seg>``).
    Modified keys (K > 1, training): ``gt_masks``, ``gt_bboxes``,
    ``no_target``, ``texts``, ``ref_ids``, ``sent_ids``, ``expressions``.
    Added keys: ``question`` (str), ``answer`` (str), ``answer_grid``
    ((h, w) uint8, 1 = expression); with ``test_grouping='image'`` K
    questions, K answers and ``answer_grid`` (K, h, w).

    Args:
        grid_size (int | Sequence[int]): Descriptor grid ``(h, w)``; the
            head must decode with the same size. Defaults to 16.
        background (str): Label of background cells. Defaults to 'others'.
        question_templates (Sequence[str]): Questions with a
            ``[class_name]`` placeholder. Defaults to the reference's
            QUESTION_PARTIAL.
        answer_templates (Sequence[str]): Answer sentences put before
            ``<seg>``. Defaults to the reference's ANSWER_PARTIAL.
        random_templates (bool, optional): Draw templates at random; by
            default only in training. Otherwise the first template of each
            list is used.
        answer_format (str): ``'rrle'`` (row-wise RLE, the method) or
            ``'full'`` (all ``h * w`` labels, the paper's baseline); the
            head must decode the same. Defaults to 'rrle'.
        test_mode (bool): Evaluation pipeline. Defaults to False.
    """

    def __init__(self,
                 grid_size: Union[int, Sequence[int]] = 16,
                 background: str = BACKGROUND,
                 question_templates: Sequence[str] = TEXT4SEG_QUESTIONS,
                 answer_templates: Sequence[str] = TEXT4SEG_ANSWERS,
                 random_templates: Optional[bool] = None,
                 answer_format: str = 'rrle',
                 test_mode: bool = False) -> None:
        self.grid_hw = to_grid_hw(grid_size)
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f'answer_format must be one of {ANSWER_FORMATS},'
                             f' got {answer_format!r}')
        self.answer_format = answer_format
        self.background = background
        for name, templates in (('question_templates', question_templates),
                                ('answer_templates', answer_templates)):
            if not templates or any(CLASS_PLACEHOLDER not in t
                                    for t in templates):
                raise ValueError(f'{name} must be non-empty, each with a '
                                 f'{CLASS_PLACEHOLDER} placeholder')
        self.question_templates = tuple(question_templates)
        self.answer_templates = tuple(answer_templates)
        self.random_templates = (not test_mode) if random_templates is None \
            else random_templates
        self.test_mode = test_mode

    def _keep_one(self, results: dict) -> None:
        """Cut every per-expression entry down to one drawn expression."""
        num = len(results['texts'])
        grouped = self.test_mode and results.get('test_grouping') == 'image'
        if num == 1 or (num > 1 and grouped):
            return  # grouped by image: every expression is answered
        if num == 0 or self.test_mode:
            raise ValueError(
                'Text4SegAnswer needs one expression per test sample and at '
                f"least one in training, got {num} for image "
                f"{results.get('img_path')}")
        k = np.random.randint(num)
        for key in _PER_EXPRESSION_KEYS:
            if key in results:
                value = results[key]
                results[key] = value[k:k + 1] if isinstance(
                    value, np.ndarray) else [value[k]]

    def transform(self, results: dict) -> dict:
        """Build the question and answer.

        Args:
            results (dict): Output of ``LoadRefMasks``.

        Returns:
            dict: ``results`` with ``question``, ``answer`` and
            ``answer_grid``.
        """
        self._keep_one(results)
        if len(results['texts']) > 1:
            # K expressions grouped by image, each its own conversation.
            pairs = [self._write(results, k)
                     for k in range(len(results['texts']))]
            results['question'] = [q for q, _, _ in pairs]
            results['answer'] = [a for _, a, _ in pairs]
            if 'gt_masks' in results:
                results['answer_grid'] = np.stack([g for _, _, g in pairs])
            return results
        question, answer, grid = self._write(results, 0)
        results['question'], results['answer'] = question, answer
        if grid is not None:
            results['answer_grid'] = grid
        return results

    def _write(self, results: dict, k: int) -> tuple:
        """Question, answer and answer grid (None without GT) of
        expression ``k``."""
        expression = str(results['texts'][k]).strip()
        if self.random_templates:
            question = self.question_templates[np.random.randint(
                len(self.question_templates))]
            answer = self.answer_templates[np.random.randint(
                len(self.answer_templates))]
        else:
            question, answer = self.question_templates[0], \
                self.answer_templates[0]
        question = question.replace(CLASS_PLACEHOLDER, expression)
        if 'gt_masks' not in results:
            # Inference without ground truth: only the prompt matters, the
            # answer is generated.
            return question, answer.replace(
                CLASS_PLACEHOLDER,
                sanitize_label(expression, self.background)), None
        grid = mask_to_grid(results['gt_masks'][k], self.grid_hw)
        answer = build_answer(expression, grid, template=answer,
                              background=self.background,
                              answer_format=self.answer_format)
        return question, answer, grid.astype(np.uint8)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(grid_size={self.grid_hw}, '
                f'background={self.background!r}, '
                f'random_templates={self.random_templates}, '
                f'answer_format={self.answer_format!r}, '
                f'test_mode={self.test_mode})')
