# Copyright (c) mmrefseg contributors.
"""Question/answer texts of each method, as the original code writes them.

A prompt style turns a sample's expressions into ``(question, answer)``.
Answers contain one ``[SEG]`` (or ``[REJ]`` for a no-target expression) per
expression, in expression order; the segmentor relies on that order.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SEG, REJ = '[SEG]', '[REJ]'

# MLLMSeg training questions (SHORT_QUESTION_LIST_MODE4).
MLLMSEG_QUESTIONS = (
    'Can you segment {} in this image?',
    'Please segment {} in this image.',
    'What are {} in this image? Please respond with segmentation masks.',
    'What are {} in this image? Please output segmentation masks.',
)
# (start, per-expression item) pairs of the MLLMSeg answers.
MLLMSEG_ANSWERS = (
    ('The segmentation results are', '{} {}'),
    ('Sure, they are', '{}:{}'),
    ('Sure,', 'the mask of {} is {}'),
    ('Sure,', 'the segmentation of {} is {}'),
    ('Sure,', 'the referred {} is {}'),
)


def _clean(text: str) -> str:
    return text.strip().replace('.', '').strip()


def mllmseg_prompt(texts: Sequence[str],
                   no_target: Sequence[bool],
                   rng: Optional[np.random.Generator],
                   reject_no_target: bool = True) -> Tuple[str, str]:
    """MLLMSeg's training-format prompt; deterministic when ``rng`` is None.

    Args:
        texts: the expressions.
        no_target: per expression, True if it refers to nothing.
        rng: random generator for template choice (train); None picks the
            first question and the "Sure, they are" answer (test).
        reject_no_target: write ``[REJ]`` for no-target expressions (train);
            at test the answer is teacher-forced with ``[SEG]`` everywhere and
            the model's own [SEG]/[REJ] preference is read from its logits.

    Returns:
        tuple: (question, answer).
    """
    names = [_clean(t) for t in texts]
    if rng is None:
        q_idx, a_idx = 0, 1
    else:
        q_idx = int(rng.integers(len(MLLMSEG_QUESTIONS)))
        a_idx = int(rng.integers(len(MLLMSEG_ANSWERS)))
    question = MLLMSEG_QUESTIONS[q_idx].format(', '.join(names).lower())
    start, item = MLLMSEG_ANSWERS[a_idx]
    slots = [REJ if (nt and reject_no_target) else SEG for nt in no_target]
    answer = start + ' ' + ', '.join(
        item.format(n, s) for n, s in zip(names, slots)) + '.'
    return question, answer


def mllmseg_paper_eval_prompt(texts: Sequence[str],
                              no_target: Sequence[bool],
                              rng=None,
                              reject_no_target: bool = True
                              ) -> Tuple[str, str]:
    """The exact teacher-forced evaluation prompt of MLLMSeg's test scripts.

    All expressions of an image in one prompt, note the missing space before
    "in" and the answer without a space after "Sure,". GT [REJ] is written
    for empty targets, as the original does (label leakage for GRES; use it
    only to reproduce published tables).
    """
    names = [t.strip().lower() for t in texts]
    question = ' What are ' + ', '.join(names) + \
        'in this image? Please output segmentation masks.'
    items = [f'{n}:{REJ if (nt and reject_no_target) else SEG}'
             for n, nt in zip(names, no_target)]
    return question, 'Sure,' + ', '.join(items) + '.'


def seg_token_prompt(texts: Sequence[str],
                     no_target: Sequence[bool],
                     rng: Optional[np.random.Generator],
                     reject_no_target: bool = True) -> Tuple[str, str]:
    """A plain one-question prompt answered by "It is [SEG]." per expression.

    Used by SELF1E-style heads (one [SEG] embedding per expression).
    """
    names = [_clean(t) for t in texts]
    question = 'Please segment {} in this image.'.format(
        ', '.join(names).lower())
    slots = [REJ if (nt and reject_no_target) else SEG for nt in no_target]
    answer = ', '.join(f'{n}: {s}' for n, s in zip(names, slots)) + '.'
    return question, answer


# SELF1E training questions (``utils_internvl/utils.py``) and answers; "{}"
# is the lower-cased expression. The last question with the bare "[SEG]."
# answer is the teacher-forced evaluation prompt.
SELF1E_QUESTIONS = (
    'Can you segment the {} in this image?',
    'Please segment the {} in this image.',
    'What is {} in this image? Please respond with segmentation mask.',
    'What is {} in this image? Please output segmentation mask.',
)
SELF1E_ANSWERS = (
    'It is [SEG].',
    'Sure, [SEG].',
    'Sure, it is [SEG].',
    'Sure, the segmentation result is [SEG].',
    '[SEG].',
)
SELF1E_EVAL_QUESTION, SELF1E_EVAL_ANSWER = SELF1E_QUESTIONS[3], '[SEG].'


def self1e_prompt(texts: Sequence[str],
                  no_target: Sequence[bool],
                  rng: Optional[np.random.Generator],
                  reject_no_target: bool = True) -> Tuple[str, str]:
    """SELF1E's question/answer; deterministic (the eval prompt) without rng.

    With one expression the texts are exactly the original ones. SELF1E
    writes one conversation per expression; when a sample packs K > 1
    expressions, the question names them all and the answer becomes
    "..., {name}: [SEG], ...", so the state read for each mask (the token
    before its ``[SEG]``) follows its own expression. SELF1E has no
    ``[REJ]``: a no-target expression also gets ``[SEG]`` and an empty mask.

    Args:
        texts: the expressions.
        no_target: unused (see above); kept for the prompt-style signature.
        rng: random generator for template choice (train); None gives the
            evaluation prompt.
        reject_no_target: unused, SELF1E has no ``[REJ]``.

    Returns:
        tuple: (question, answer).
    """
    names = [t.strip().lower() for t in texts]
    if rng is None:
        question, answer = SELF1E_EVAL_QUESTION, SELF1E_EVAL_ANSWER
    else:
        question = SELF1E_QUESTIONS[int(rng.integers(len(SELF1E_QUESTIONS)))]
        answer = SELF1E_ANSWERS[int(rng.integers(len(SELF1E_ANSWERS)))]
    question = question.format(', '.join(names))
    if len(names) > 1:
        answer = answer.replace(
            SEG, ', '.join(f'{n}: {SEG}' for n in names))
    return question, answer


PROMPT_STYLES: Dict[str, Callable[..., Tuple[str, str]]] = {
    'mllmseg': mllmseg_prompt,
    'mllmseg_paper_eval': mllmseg_paper_eval_prompt,
    'seg_token': seg_token_prompt,
    'self1e': self1e_prompt,
}


def register_prompt_style(name: str, fn: Callable[..., Tuple[str, str]]
                          ) -> None:
    """Add a prompt style for ``BuildConversation(prompt_style=name)``."""
    PROMPT_STYLES[name] = fn


def count_slots(answer: str) -> List[str]:
    """The [SEG]/[REJ] tokens of an answer, in order."""
    out, i = [], 0
    while True:
        s, r = answer.find(SEG, i), answer.find(REJ, i)
        cands = [p for p in (s, r) if p >= 0]
        if not cands:
            return out
        p = min(cands)
        out.append(answer[p:p + len(SEG)])
        i = p + len(SEG)
