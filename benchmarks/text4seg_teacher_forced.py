# Copyright (c) mmrefseg contributors.
"""Has a Text4Seg checkpoint learned *where* the object is? Teacher-forced
next-token accuracy on the synthetic val answers, split by token kind.

Greedy decoding turns a half-learned model into all-``others`` answers (val
cIoU 0) long before it is useless: the decision that places an object is the
count of the first ``others *N`` run of its first row, and while that count
is uncertain the argmax is the background row's ``16``. This script feeds
the ground-truth answer and reports, per token kind, how often the argmax is
the right token and the mean probability of the right token:

* ``background row``: tokens of rows that are all ``others``;
* ``object row``: tokens of rows that hold the object;
* ``object row counts``: the digits of the run lengths in those rows;
* ``first object row start``: the first digit of the first run of the
  first row that holds the object (where the object starts, given nothing
  about it yet);
* ``later object row start``: the same for the object's other rows (the
  previous row is a strong hint).

With full descriptors (``answer_format='full'``, one label per cell) the
token that starts each cell's label decides it: ``object cell`` and
``background cell`` score those tokens, and the script prints the IoU of
those teacher-forced decisions with the answer's grid.

    python benchmarks/text4seg_teacher_forced.py \
        configs/text4seg/text4seg_tiny_synth.py work_dirs/x/iter_1000.pth \
        --val-samples 128
"""
import argparse
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner, load_checkpoint

from mmrefseg.registry import MODELS
from mmrefseg.utils import register_all_modules

KINDS = ('background row', 'object row', 'object row counts',
         'first object row start', 'later object row start')
# Full descriptors (one label per cell, no counts): the token that starts
# each cell's label decides the cell.
FULL_KINDS = ('object cell', 'background cell')
_BACKGROUND_ROW = re.compile(r'\s*others \*\d+\s*(</seg>)?\s*')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--val-samples', type=int, default=128,
                        help='first N val samples')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def answer_rows(pieces: List[str]) -> List[Tuple[List[int], str]]:
    """Group answer tokens into the R-RLE rows they belong to.

    Args:
        pieces (list[str]): The decoded text of each answer token.

    Returns:
        list[tuple[list[int], str]]: Per row inside ``<seg>...</seg>``, the
        indices of the tokens that write it (a row ends with the token that
        writes its newline) and its text. Tokens before the end of
        ``<seg>`` are left out, also when a tokenizer writes the tag in
        several pieces; a token that straddles it only contributes the text
        after it.
    """
    full = ''.join(pieces)
    tag = full.find('<seg>')
    if tag < 0:
        return []
    body_start = tag + len('<seg>')
    rows: List[Tuple[List[int], str]] = []
    current: List[int] = []
    row_start = body_start
    end = 0
    for k, piece in enumerate(pieces):
        start, end = end, end + len(piece)
        if end <= body_start:
            continue
        if not current:
            row_start = max(start, body_start)
        current.append(k)
        if '\n' in piece or '</seg>' in piece:
            rows.append((current, full[row_start:end]))
            current = []
    if current:
        rows.append((current, full[row_start:end]))
    return rows


def answer_cells(pieces: List[str]) -> List[Tuple[int, str]]:
    """The label of each cell of a full-descriptor answer.

    Args:
        pieces (list[str]): The decoded text of each answer token.

    Returns:
        list[tuple[int, str]]: Per cell inside ``<seg>...</seg>`` (labels
        joined by ``'|'``), the index of the token holding the label's
        first character (the token that decides the cell) and the label.
    """
    full = ''.join(pieces)
    tag = full.find('<seg>')
    if tag < 0:
        return []
    start = tag + len('<seg>')
    end = full.find('</seg>', start)
    end = len(full) if end < 0 else end
    # Character -> token index, for the label starts.
    owner = [k for k, piece in enumerate(pieces) for _ in piece]
    cells = []
    for chunk in full[start:end].split('|'):
        label = chunk.strip()
        if label:
            first = start + chunk.index(label[0])
            cells.append((owner[first], label))
        start += len(chunk) + 1
    return cells


def score_full_answer(pieces: List[str], correct: List[bool],
                      p_true: List[float],
                      totals: Dict[str, List[float]]) -> None:
    """Add one full-descriptor answer's cell decisions to ``totals``."""
    for k, label in answer_cells(pieces):
        kind = 'background cell' if label == 'others' else 'object cell'
        totals[kind][0] += correct[k]
        totals[kind][1] += 1
        totals[kind][2] += p_true[k]


def cell_iou(totals: Dict[str, List[float]]) -> float:
    """IoU of the teacher-forced cell decisions with the answer's grid.

    An object cell decided right is a true positive, one decided wrong a
    false negative, a background cell decided wrong a false positive.
    """
    tp, n_obj = totals['object cell'][:2]
    hits_bg, n_bg = totals['background cell'][:2]
    denom = n_obj + (n_bg - hits_bg)
    return 100.0 * tp / denom if denom else float('nan')


def score_answer(pieces: List[str], correct: List[bool],
                 p_true: List[float],
                 totals: Dict[str, List[float]]) -> None:
    """Add one answer's tokens to ``totals[kind] = [hits, count, sum_p]``."""

    def add(kind: str, k: int) -> None:
        totals[kind][0] += correct[k]
        totals[kind][1] += 1
        totals[kind][2] += p_true[k]

    first_object_row = True
    for row, text in answer_rows(pieces):
        body = text.replace('<seg>', '').replace('</seg>', '').strip()
        if not body:
            continue
        if _BACKGROUND_ROW.fullmatch(text):
            for k in row:
                add('background row', k)
            continue
        digits = [k for k in row if pieces[k].strip().isdigit()]
        for k in row:
            add('object row', k)
        for k in digits:
            add('object row counts', k)
        if digits:
            add('first object row start' if first_object_row else
                'later object row start', digits[0])
        first_object_row = False


@torch.no_grad()
def teacher_forced_accuracy(model: torch.nn.Module, loader,
                            max_samples: int) -> Dict[str, List[float]]:
    """Per-kind ``[hits, count, sum of p(true)]`` over the answers.

    Args:
        model (nn.Module): A ``RefSegmentor`` with a Text4Seg head.
        loader: Batches built with the *training* pipeline (the answer
            must be in ``input_ids`` and ``labels``).
        max_samples (int): Stop after this many conversations.

    Returns:
        dict[str, list[float]]: Keyed by :data:`KINDS`, or
        :data:`FULL_KINDS` when the head writes full descriptors.
    """
    model.eval()
    tokenizer = model.backbone.tokenizer
    full = getattr(model.decode_head, 'answer_format', 'rrle') == 'full'
    score = score_full_answer if full else score_answer
    totals: Dict[str, List[float]] = OrderedDict(
        (kind, [0, 0, 0.0]) for kind in (FULL_KINDS if full else KINDS))
    seen = 0
    for data in loader:
        batch = model.data_preprocessor(data, True)
        out = model.extract_feat(batch['inputs'])
        labels = batch['inputs']['labels']
        for b in range(labels.shape[0]):
            if seen >= max_samples:
                return totals
            seen += 1
            pos = torch.nonzero(labels[b] != -100).flatten()
            # The state before each answer token predicts it.
            logits = model.backbone.lm_logits(
                out.last_hidden_state[b, pos - 1]).float()
            target = labels[b, pos]
            probs = logits.softmax(-1)
            correct = (logits.argmax(-1) == target).tolist()
            p_true = probs.gather(1, target[:, None])[:, 0].tolist()
            pieces = [tokenizer.decode([t]) for t in target.tolist()]
            score(pieces, correct, p_true, totals)
        if seen >= max_samples:
            break
    return totals


def build_val_answer_loader(cfg: Config, batch_size: int):
    """Val split through the training pipeline, in order, no workers."""
    loader = cfg.train_dataloader.copy()
    loader.update(num_workers=0, persistent_workers=False,
                  batch_size=batch_size,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    loader.dataset = dict(loader.dataset, split='val',
                          max_expressions_per_sample=1)
    return Runner.build_dataloader(loader, seed=0)


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    loader = build_val_answer_loader(cfg, args.batch_size)
    totals = teacher_forced_accuracy(model, loader, args.val_samples)
    print('\n| token kind | tokens | argmax accuracy | mean p(true) |')
    print('|---|---|---|---|')
    for kind, (hits, count, p_sum) in totals.items():
        if count:
            print(f'| {kind} | {count} | {100 * hits / count:.1f}% | '
                  f'{p_sum / count:.3f} |')
        else:
            print(f'| {kind} | 0 | - | - |')
    if 'object cell' in totals:
        print(f'\nteacher-forced cell IoU (the answers\' grids, previous '
              f'cells given): {cell_iou(totals):.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
