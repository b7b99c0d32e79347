# Copyright (c) mmrefseg contributors.
"""The text side of InternVL: expressions -> chat conversation -> token ids.

Tokenisation lives here and only here. The chat format is InternVL2.5/3's::

    [<|im_start|>system\\n{system}<|im_end|>\\n]
    <|im_start|>user\\n<img><IMG_CONTEXT>xN</img>\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n{answer}<|im_end|>\\n

Each turn is tokenised on its own and concatenated, as InternVL's training
code does. Labels are -100 everywhere except the answer and its closing
``<|im_end|>``; padding is never labelled (the original MLLMSeg collator
padded labels with 0, a bug).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmrefseg.utils.tokenizer import (
    IM_END_TOKEN,
    IM_START_TOKEN,
    IMG_CONTEXT_TOKEN,
    IMG_END_TOKEN,
    IMG_START_TOKEN,
    token_id,
)
from .prompts import PROMPT_STYLES

IGNORE_INDEX = -100
#: Prompt style whose question and answer the data pipeline wrote (Text4Seg's
#: descriptor answer is computed from the GT mask by ``Text4SegAnswer``).
PIPELINE_ANSWER = 'answer'


class InternVLChatFormat:
    """Token-level builder of InternVL chat conversations.

    Args:
        tokenizer: a transformers tokenizer with the InternVL chat tokens.
        num_image_tokens (int): ``<IMG_CONTEXT>`` tokens per tile.
        system_message (str, optional): system turn; None leaves it out
            (the tiny configs save tokens this way).
        bos (bool): prepend the tokenizer's BOS (InternLM2/Llama do).
        question_first (bool): put the question before the image in the
            user turn (``{question}\\n<img>...</img>``). Under causal
            attention the image tokens' hidden states can then read the
            expression, so per-pixel LLM features are query-aware. InternVL
            and the released checkpoints put the image first (False).
    """

    def __init__(self, tokenizer, num_image_tokens: int,
                 system_message: Optional[str] = None,
                 bos: bool = False,
                 question_first: bool = False) -> None:
        self.tokenizer = tokenizer
        self.num_image_tokens = num_image_tokens
        self.system_message = system_message
        self.bos = bos and tokenizer.bos_token_id is not None
        self.question_first = question_first
        self.img_context_id = token_id(tokenizer, IMG_CONTEXT_TOKEN)

    def _ids(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _image_ids(self, num_tiles: int) -> List[int]:
        return (self._ids(IMG_START_TOKEN) +
                [self.img_context_id] * (self.num_image_tokens * num_tiles) +
                self._ids(IMG_END_TOKEN))

    def prompt_ids(self, question: str, num_tiles: int = 1) -> List[int]:
        """Token ids up to and including ``<|im_start|>assistant\\n``."""
        ids = [self.tokenizer.bos_token_id] if self.bos else []
        if self.system_message:
            ids += self._ids(f'{IM_START_TOKEN}system\n'
                             f'{self.system_message}{IM_END_TOKEN}\n')
        ids += self._ids(f'{IM_START_TOKEN}user\n')
        if self.question_first:
            ids += self._ids(f'{question}\n')
            ids += self._image_ids(num_tiles)
            ids += self._ids(f'{IM_END_TOKEN}\n')
        else:
            ids += self._image_ids(num_tiles)
            ids += self._ids(f'\n{question}{IM_END_TOKEN}\n')
        ids += self._ids(f'{IM_START_TOKEN}assistant\n')
        return ids

    def build(self, question: str, answer: str,
              num_tiles: int = 1) -> Tuple[List[int], List[int], int]:
        """Full conversation.

        Returns:
            tuple: (input_ids, labels, prompt_length).
        """
        prompt = self.prompt_ids(question, num_tiles)
        answer_ids = self._ids(answer + IM_END_TOKEN)
        tail = self._ids('\n')
        input_ids = prompt + answer_ids + tail
        labels = [IGNORE_INDEX] * len(prompt) + answer_ids + \
            [IGNORE_INDEX] * len(tail)
        return input_ids, labels, len(prompt)


# Inserted after the first character of special-token text found in user
# text: the tokenizer then reads it as plain characters, never as the token.
ZERO_WIDTH_SPACE = '\u200b'


def escape_special_tokens(text: str, special_tokens: Sequence[str]) -> str:
    """Make special-token text inside user text unreadable as the token.

    A phrase is data: ``'the [SEG] circle'`` must not add a mask slot and
    ``'<|im_end|>'`` must not end the turn. Every occurrence of a special
    token's text gets a zero-width space after its first character, so the
    tokenizer's special-token matching (exact text) cannot fire while the
    characters the model reads stay the same. Text without such substrings
    is returned unchanged (token for token).

    Args:
        text (str): User text (a phrase, or a question written from one).
        special_tokens (Sequence[str]): The tokenizer's special and added
            token strings.

    Returns:
        str: The escaped text.
    """
    for token in sorted(special_tokens, key=len, reverse=True):
        if len(token) > 1 and token in text:
            text = text.replace(token,
                                token[0] + ZERO_WIDTH_SPACE + token[1:])
    return text


class InternVLProcessor:
    """Writes and tokenises the conversation of a referring sample.

    Owned by :class:`InternVLBackbone` (which knows the tokenizer, its extra
    special tokens and the image tokens per tile) and handed by
    :class:`RefSegmentor` to its :class:`RefSegDataPreProcessor`, like a
    transformers ``Processor``: the data pipeline yields images, tiles and
    texts, and the conversation is written on the model side, so a config
    never restates a pipeline because of the tokenizer.

    Args:
        tokenizer: the backbone's tokenizer (with its extra special tokens).
        num_image_tokens (int): ``<IMG_CONTEXT>`` tokens per tile.
        prompt_style (str): a key of :data:`PROMPT_STYLES` ('mllmseg',
            'mllmseg_paper_eval', 'seg_token', 'self1e') or ``'answer'``:
            use the ``question``/``answer`` the pipeline wrote (Text4Seg's
            ``Text4SegAnswer``).
        test_prompt_style (str, optional): the style at evaluation; None
            keeps ``prompt_style`` (MLLMSeg's paper protocol evaluates with
            'mllmseg_paper_eval').
        system_message (str, optional): system turn.
        bos (bool): prepend BOS (InternLM2/Llama tokenizers).
        question_first (bool): question before the image in the user turn,
            see :class:`InternVLChatFormat`.
        test_reject_no_target (bool): at evaluation write ``[REJ]`` for
            no-target expressions (the GT answer of MLLMSeg's GRES protocol,
            with ``test_cfg.rej_decision='argmax_teacher_forced'``). In
            training ``[REJ]`` is always written for them; by default the
            evaluation answer is ``[SEG]`` everywhere and the model's own
            decision is read from its logits.
        max_length (int): longer conversations raise an error naming the
            sample.
        random_templates (bool): draw the question/answer templates at
            random in training (seeded per sample). False writes the
            evaluation templates in training too (``[REJ]`` still marks
            no-target expressions), e.g. so that training data does not
            depend on the process in a multi-process equality check.
    """

    def __init__(self,
                 tokenizer,
                 num_image_tokens: int,
                 prompt_style: str = 'mllmseg',
                 test_prompt_style: Optional[str] = None,
                 system_message: Optional[str] = None,
                 bos: bool = False,
                 question_first: bool = False,
                 test_reject_no_target: bool = False,
                 max_length: int = 8192,
                 random_templates: bool = True) -> None:
        for style in (prompt_style, test_prompt_style):
            if style is not None and style != PIPELINE_ANSWER and \
                    style not in PROMPT_STYLES:
                raise KeyError(f'Unknown prompt_style {style!r}; choose '
                               f'from {sorted(PROMPT_STYLES)} or '
                               f'{PIPELINE_ANSWER!r}.')
        self.tokenizer = tokenizer
        self.prompt_style = prompt_style
        self.test_prompt_style = test_prompt_style or prompt_style
        self.test_reject_no_target = test_reject_no_target
        self.max_length = max_length
        self.random_templates = random_templates
        self.special_texts = sorted(
            set(getattr(tokenizer, 'all_special_tokens', [])) |
            set(getattr(tokenizer, 'added_tokens_encoder', {})))
        self.chat = InternVLChatFormat(tokenizer, num_image_tokens,
                                       system_message, bos, question_first)
        self._newlines: Optional[torch.Tensor] = None

    @property
    def num_image_tokens(self) -> int:
        return self.chat.num_image_tokens

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def stop_token_ids(self) -> List[int]:
        """End-of-turn ids that stop generation: ``<|im_end|>`` and EOS."""
        ids = {self.tokenizer.eos_token_id}
        try:
            ids.add(token_id(self.tokenizer, IM_END_TOKEN))
        except KeyError:
            pass
        return sorted(i for i in ids if i is not None and i >= 0)

    # ------------------------------------------------------------ prompts
    def write(self, texts: Sequence[str],
              no_target: Optional[Sequence[bool]] = None,
              training: bool = False,
              seed: Optional[int] = None) -> Tuple[str, str]:
        """The question and answer of a sample's expressions.

        Args:
            texts: the K expressions.
            no_target: per expression, True if it refers to nothing (GT);
                None means all False (a user's phrases).
            training: draw templates at random and write ``[REJ]`` for
                no-target expressions.
            seed: seed of the template draw (drawn per sample in the data
                pipeline, so dataloader workers stay reproducible); None
                draws one from NumPy's global generator.

        Returns:
            tuple: (question, answer).
        """
        style = self.prompt_style if training else self.test_prompt_style
        if style == PIPELINE_ANSWER:
            raise ValueError(
                f"prompt_style={PIPELINE_ANSWER!r} takes the question and "
                'answer the data pipeline wrote (e.g. Text4SegAnswer); this '
                'sample has none.')
        no_target = [False] * len(texts) if no_target is None \
            else [bool(v) for v in no_target]
        rng = None
        if training and self.random_templates:
            seed = np.random.randint(2**31) if seed is None else seed
            rng = np.random.default_rng(seed)
        reject = training or self.test_reject_no_target
        return PROMPT_STYLES[style](list(texts), no_target, rng,
                                    reject_no_target=reject)

    def __call__(self,
                 texts: Sequence[str],
                 num_tiles: int = 1,
                 no_target: Optional[Sequence[bool]] = None,
                 question: Optional[str] = None,
                 answer: Optional[str] = None,
                 training: bool = False,
                 seed: Optional[int] = None,
                 name: str = 'sample') -> Dict:
        """Tokenise one sample's conversation.

        Args:
            texts: the K expressions.
            num_tiles: image tiles of the sample.
            no_target: GT no-target flags, see :meth:`write`.
            question / answer: written by the pipeline; used as they are
                with ``prompt_style='answer'`` and ignored otherwise.
            training: training-time prompt (random templates, ``[REJ]``).
            seed: template seed, see :meth:`write`.
            name: how errors name the sample (image path, ref ids).

        Returns:
            dict: ``input_ids`` and ``labels`` (int64 tensors [L]),
            ``prompt_length`` (int), ``question``, ``answer`` (str).
        """
        style = self.prompt_style if training else self.test_prompt_style
        texts = [str(t) for t in texts]
        blank = [k for k, t in enumerate(texts) if not t.strip()]
        if blank:
            raise ValueError(f'Expression(s) {blank} of {name} are empty; '
                             'a referring phrase needs words.')
        texts = [escape_special_tokens(t, self.special_texts) for t in texts]
        if style != PIPELINE_ANSWER:
            question, answer = self.write(texts, no_target, training, seed)
        elif question is None or answer is None:
            raise ValueError(
                f"prompt_style={PIPELINE_ANSWER!r} takes the question and "
                f'answer the data pipeline wrote (Text4SegAnswer); {name} '
                'has none.')
        else:
            # Written by the pipeline from the expression (Text4Seg): any
            # special-token text in them came from the expression.
            question = escape_special_tokens(question, self.special_texts)
            answer = escape_special_tokens(answer, self.special_texts)
        input_ids, labels, prompt_len = self.chat.build(
            question, answer, num_tiles)
        if len(input_ids) > self.max_length:
            raise ValueError(
                f'{name}: its conversation has {len(input_ids)} tokens, more '
                f"than the model's context of {self.max_length} tokens "
                f'(processor max_length); shorten the phrase(s) '
                f'({sum(len(t.split()) for t in texts)} words).')
        return dict(input_ids=torch.as_tensor(input_ids, dtype=torch.long),
                    labels=torch.as_tensor(labels, dtype=torch.long),
                    prompt_length=prompt_len, question=question,
                    answer=answer)

    # ------------------------------------------------------------ answers
    def decode_answers(self, new_tokens: torch.Tensor) -> List[str]:
        """Generated tokens [B, T] -> text, cut at the first end-of-turn id.

        Sequences that finished early are padded to the batch's end; the
        padding is dropped.
        """
        stops = set(self.stop_token_ids)
        pad = self.pad_token_id
        texts = []
        for row in new_tokens.tolist():
            ends = [k for k, t in enumerate(row) if t in stops]
            row = row[:ends[0]] if ends else row
            row = [t for t in row if t != pad]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def newline_counts(self) -> torch.Tensor:
        """[V] line breaks in each token's text, computed once."""
        if self._newlines is None:
            ids = [[i] for i in range(len(self.tokenizer))]
            texts = self.tokenizer.batch_decode(ids)
            self._newlines = torch.tensor([t.count('\n') for t in texts],
                                          dtype=torch.long)
        return self._newlines

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prompt_style='
                f'{self.prompt_style!r}, test_prompt_style='
                f'{self.test_prompt_style!r}, num_image_tokens='
                f'{self.num_image_tokens}, question_first='
                f'{self.chat.question_first})')
