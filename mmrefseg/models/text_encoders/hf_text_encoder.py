# Copyright (c) mmrefseg contributors.
"""A small transformers text encoder built from a config (no download).

It gives referring heads a sentence state where an MLLM would give the
``[SEG]`` hidden state, so MLLMSeg's neck and decoder can run inside plain
MMSeg models without an LLM.
"""
import copy
from typing import Optional, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor
from transformers import AutoConfig, AutoModel

from mmrefseg.registry import MODELS
from mmrefseg.utils.tokenizer import TokenizerCfg, build_tokenizer

POOLINGS = ('mean', 'first')


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """A randomly initialised HF encoder (BERT-like) pooled to one vector.

    The model is built with ``AutoConfig.for_model(model_type, **config)`` and
    ``AutoModel.from_config``: nothing is downloaded. Its vocabulary size and
    pad id are taken from ``tokenizer`` (the same config the data
    preprocessor tokenises with, so both agree on every id).

    Args:
        config (dict): HF config kwargs with ``model_type`` (e.g. ``'bert'``,
            ``hidden_size``, ``num_hidden_layers``, ...). ``vocab_size`` and
            ``pad_token_id`` must not be given: they come from the
            tokenizer.
        tokenizer (str | dict): :func:`build_tokenizer` config, e.g.
            ``dict(type='tiny_bpe', vocab_size=1024)``.
        pooling (str): ``'mean'`` (average of the non-pad token states) or
            ``'first'`` (the first token's state). Default: ``'mean'``.
        init_cfg (dict, optional): MMEngine init config. Without it the HF
            model keeps its own random init.
    """

    def __init__(self,
                 config: dict,
                 tokenizer: TokenizerCfg,
                 pooling: str = 'mean',
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pooling not in POOLINGS:
            raise ValueError(f'pooling must be one of {POOLINGS}, got '
                             f'{pooling!r}')
        config = copy.deepcopy(dict(config))
        if 'model_type' not in config:
            raise KeyError("HFTextEncoder config needs a 'model_type', e.g. "
                           "'bert'")
        for key in ('vocab_size', 'pad_token_id'):
            if key in config:
                raise ValueError(
                    f'HFTextEncoder config must not set {key!r}: it is '
                    'taken from the tokenizer')
        tok = build_tokenizer(tokenizer)
        hf_config = AutoConfig.for_model(
            config.pop('model_type'),
            vocab_size=len(tok),
            pad_token_id=tok.pad_token_id,
            **config)
        kwargs = {}
        if hf_config.model_type == 'bert':
            # BERT's pooler (tanh of [CLS]) is unused here; leaving it out
            # keeps every parameter in the graph.
            kwargs['add_pooling_layer'] = False
        self.model = AutoModel.from_config(hf_config, **kwargs)
        self.pooling = pooling
        self.embed_dims = int(hf_config.hidden_size)
        self.vocab_size = len(tok)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode and pool each sentence.

        Args:
            input_ids (Tensor): Token ids, shape (Q, L), right-padded.
            attention_mask (Tensor): 1 at real tokens, shape (Q, L).

        Returns:
            Tensor: One state per sentence, shape (Q, embed_dims).
        """
        if input_ids.shape[0] == 0:
            return input_ids.new_zeros((0, self.embed_dims),
                                       dtype=torch.float32)
        states = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask).last_hidden_state  # (Q, L, C)
        if self.pooling == 'first':
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)
