# Copyright (c) mmrefseg contributors.
"""Expressions → InternVL chat conversation → ``input_ids`` and ``labels``.

Tokenisation lives here and only here. The chat format is InternVL2.5/3's::

    [<|im_start|>system\\n{system}<|im_end|>\\n]
    <|im_start|>user\\n<img><IMG_CONTEXT>×N</img>\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n{answer}<|im_end|>\\n

Each turn is tokenised on its own and concatenated, as InternVL's training
code does. Labels are -100 everywhere except the answer and its closing
``<|im_end|>``; padding is never labelled (the original MLLMSeg collator
padded labels with 0, a bug).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmrefseg.registry import TRANSFORMS
from mmrefseg.utils.tokenizer import (
    IM_END_TOKEN,
    IM_START_TOKEN,
    IMG_CONTEXT_TOKEN,
    IMG_END_TOKEN,
    IMG_START_TOKEN,
    TokenizerCfg,
    build_tokenizer,
    token_id,
)
from ..prompts import PROMPT_STYLES

IGNORE_INDEX = -100


class InternVLChatFormat:
    """Token-level builder of InternVL chat conversations.

    Args:
        tokenizer: a transformers tokenizer with the InternVL chat tokens.
        num_image_tokens (int): ``<IMG_CONTEXT>`` tokens per tile.
        system_message (str, optional): system turn; None leaves it out
            (the tiny configs save tokens this way).
        bos (bool): prepend the tokenizer's BOS (InternLM2/Llama do).
        question_first (bool): put the question before the image in the
            user turn (``{question}\n<img>...</img>``). Under causal
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


@TRANSFORMS.register_module()
class BuildConversation(BaseTransform):
    """Write the question/answer for a sample's expressions and tokenise it.

    Required keys: ``texts``, ``no_target``, ``num_tiles``.
    Added keys: ``input_ids``, ``labels`` (int64 arrays), ``prompt_length``,
    ``question``, ``answer``.

    Args:
        tokenizer: tokenizer config shared with the backbone.
        num_image_tokens (int): image tokens per tile (from the backbone:
            (tile / patch)² × downsample_ratio²).
        prompt_style (str): a key of :data:`mmrefseg.datasets.prompts.
            PROMPT_STYLES` ('mllmseg', 'mllmseg_paper_eval', 'seg_token') or
            'answer' to use a precomputed ``results['answer']`` (Text4Seg).
        extra_special_tokens: must match the backbone's.
        system_message (str, optional): system turn.
        bos (bool): prepend BOS (InternLM2/Llama tokenizers).
        question_first (bool): question before the image in the user turn,
            see :class:`InternVLChatFormat`. Default: False (InternVL's
            order, which released checkpoints expect).
        random_templates (bool): draw question/answer templates at random;
            default: in training only (``test_mode`` False).
        reject_no_target (bool): write ``[REJ]`` for no-target expressions.
            Defaults to True in training and False at test, where the answer
            is teacher-forced with ``[SEG]`` and the model's decision is read
            from its logits. True at test writes the ground-truth ``[REJ]``
            (MLLMSeg's GRES protocol, with the segmentor's
            ``test_cfg.rej_decision='argmax_teacher_forced'``).
        max_length (int): conversations longer than this raise an error
            naming the sample.
        test_mode (bool): evaluation pipeline.
    """

    def __init__(self,
                 tokenizer: TokenizerCfg,
                 num_image_tokens: int,
                 prompt_style: str = 'mllmseg',
                 extra_special_tokens: Sequence[str] = ('[SEG]', '[REJ]'),
                 system_message: Optional[str] = None,
                 bos: bool = False,
                 question_first: bool = False,
                 random_templates: Optional[bool] = None,
                 reject_no_target: Optional[bool] = None,
                 max_length: int = 8192,
                 test_mode: bool = False) -> None:
        if prompt_style != 'answer' and prompt_style not in PROMPT_STYLES:
            raise KeyError(f'Unknown prompt_style {prompt_style!r}; choose '
                           f"from {sorted(PROMPT_STYLES)} or 'answer'.")
        self.tokenizer_cfg = tokenizer
        self.extra_special_tokens = tuple(extra_special_tokens)
        self.num_image_tokens = num_image_tokens
        self.prompt_style = prompt_style
        self.system_message = system_message
        self.bos = bos
        self.question_first = question_first
        self.random_templates = (not test_mode) if random_templates is None \
            else random_templates
        self.reject_no_target = (not test_mode) if reject_no_target is None \
            else reject_no_target
        self.max_length = max_length
        self.test_mode = test_mode
        self._chat = None

    @property
    def chat(self) -> InternVLChatFormat:
        # Built lazily so that a pickled pipeline (dataloader workers) does
        # not carry the tokenizer around.
        if self._chat is None:
            tok = build_tokenizer(self.tokenizer_cfg,
                                  self.extra_special_tokens)
            self._chat = InternVLChatFormat(tok, self.num_image_tokens,
                                            self.system_message, self.bos,
                                            self.question_first)
        return self._chat

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_chat'] = None
        return state

    def transform(self, results: dict) -> dict:
        if self.prompt_style == 'answer':
            question, answer = results['question'], results['answer']
        else:
            rng = np.random.default_rng(np.random.randint(2**31)) \
                if self.random_templates else None
            question, answer = PROMPT_STYLES[self.prompt_style](
                results['texts'], list(results['no_target']), rng,
                reject_no_target=self.reject_no_target)
        input_ids, labels, prompt_len = self.chat.build(
            question, answer, results.get('num_tiles', 1))
        if len(input_ids) > self.max_length:
            raise ValueError(
                f'Conversation of {len(input_ids)} tokens exceeds max_length='
                f"{self.max_length} for image {results.get('img_path')} "
                f"(ref ids {results.get('ref_ids')}).")
        results['input_ids'] = np.asarray(input_ids, dtype=np.int64)
        results['labels'] = np.asarray(labels, dtype=np.int64)
        results['prompt_length'] = prompt_len
        results['question'], results['answer'] = question, answer
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prompt_style='
                f'{self.prompt_style!r}, num_image_tokens='
                f'{self.num_image_tokens}, question_first='
                f'{self.question_first}, test_mode={self.test_mode})')
