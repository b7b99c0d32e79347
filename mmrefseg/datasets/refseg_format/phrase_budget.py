# Copyright (c) mmrefseg contributors.
"""How many tokens a phrase may have under a model config.

A training conversation holds the system message, the image tokens of every
tile, the question and the answer; MLLMSeg-style answers repeat each phrase
("the mask of <phrase> is [SEG]") and a packed sample carries up to
``max_expressions_per_sample`` phrases. The budget of one phrase is what is
left of the LLM context after the image and the template, split over those
copies. It is an estimate on the safe side, meant to catch phrases that
cannot fit (pasted paragraphs, wrong column), not to count exactly.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from mmrefseg.models.processors.prompts import (
    MLLMSEG_ANSWERS,
    MLLMSEG_QUESTIONS,
)

#: Tokens of the chat markup around system/user/assistant turns
#: (``<|im_start|>role\n ... <|im_end|>\n`` three times, ``<img></img>``).
CHAT_MARKUP_TOKENS = 24


@dataclass
class PhraseBudget:
    """The phrase token limit of a config and how it was derived.

    Args:
        tokenizer_cfg (Any): What :func:`build_tokenizer` needs.
        extra_special_tokens (tuple): Tokens the model adds.
        max_tokens (int): Most tokens one phrase may have.
        explanation (str): The arithmetic, for the report.
    """
    tokenizer_cfg: Any
    extra_special_tokens: tuple
    max_tokens: int
    explanation: str


def _transforms(cfg: Any) -> Iterator[dict]:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for transform in dataset.get('pipeline') or []:
            if isinstance(transform, dict):
                yield transform


def _num_tiles(cfg: Any) -> int:
    """Most tiles an image gives under the config's image transform."""
    tiles = 1
    for t in _transforms(cfg):
        if t.get('type') == 'InternVLImageTransform' and t.get(
                'mode', 'squash') == 'dynamic':
            n = int(t.get('max_tiles', 12))
            tiles = max(tiles, n + int(t.get('use_thumbnail', True) and n > 1))
    return tiles


def _context_and_image_tokens(backbone: Any) -> tuple:
    config = backbone.get('config')
    if config is None and backbone.get('pretrained'):
        path = osp.join(backbone['pretrained'], 'config.json')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{path} not found: the config gives no backbone '
                'architecture; pass --max-tokens instead')
        with open(path, 'r', encoding='utf-8') as f:
            config = json.load(f)
    if config is None:
        raise ValueError('model.backbone has neither config nor pretrained')
    context = int(config['text_config']['max_position_embeddings'])
    return context, int(config.get('image_seq_length', 256))


def _max_expressions(cfg: Any) -> int:
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    members = dataset.get('datasets') or [dataset]
    return max([int(m.get('max_expressions_per_sample', 1))
                for m in members if isinstance(m, dict)] or [1])


def phrase_budget_from_config(cfg: Any,
                              tokenizer: Optional[Any] = None
                              ) -> PhraseBudget:
    """Phrase token limit of an mmrefseg model config.

    Args:
        cfg (Config | dict): A config with ``model.backbone`` (an
            ``InternVLBackbone``) and dataloaders.
        tokenizer (Any, optional): The built tokenizer; built from the config
            when None.

    Returns:
        PhraseBudget: Tokenizer config, limit and explanation.

    Raises:
        ValueError: The config has no backbone, or nothing is left for a
            phrase.
    """
    from mmrefseg.utils.tokenizer import build_tokenizer
    backbone = (cfg.get('model') or {}).get('backbone')
    if not backbone:
        raise ValueError('The config has no model.backbone to take the '
                         'tokenizer and context length from')
    tokenizer_cfg = backbone.get('tokenizer') or backbone.get('pretrained')
    extra = tuple(backbone.get('extra_special_tokens') or ())
    if tokenizer is None:
        tokenizer = build_tokenizer(tokenizer_cfg, extra)
    context, image_tokens = _context_and_image_tokens(backbone)
    tiles = _num_tiles(cfg)
    # The conversation is written on the model side (the backbone's
    # processor options), so the system message lives there.
    system = (backbone.get('processor') or {}).get('system_message') or ''

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)['input_ids'])

    question = max(count(q.format('')) for q in MLLMSEG_QUESTIONS)
    answer = max(
        count(start + ' ' + item.format('', '[SEG]'))
        for start, item in MLLMSEG_ANSWERS)
    template = count(system) + question + answer + CHAT_MARKUP_TOKENS
    copies = 2 * _max_expressions(cfg)
    left = context - image_tokens * tiles - template
    budget = left // copies
    explanation = (f'({context} context - {image_tokens} image tokens x '
                   f'{tiles} tile(s) - {template} template tokens) // '
                   f'({copies} phrase copies) = {budget}')
    if budget < 1:
        raise ValueError(f'No room for a phrase: {explanation}')
    return PhraseBudget(tokenizer_cfg, extra, budget, explanation)
