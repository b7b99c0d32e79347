# Copyright (c) mmrefseg contributors.
"""Building the tokenizer that the data pipeline and the backbone share.

The pipeline (which tokenises conversations) and the backbone (which resizes
its embeddings and looks up ``[SEG]``) must agree on every token id, so both
build the tokenizer from the same config entry through :func:`build_tokenizer`,
which adds the extra special tokens in a fixed order.

Two kinds of config are accepted:

* a local directory (``str``) or ``dict(type='pretrained', path=...)``: any
  transformers tokenizer saved next to an HF-native InternVL checkpoint.
  ``trust_remote_code`` is never used.
* ``dict(type='tiny_bpe', vocab_size=...)``: a small byte-level BPE trained in
  memory on a fixed corpus, deterministic, used by the tiny CPU configs and the
  tests so that nothing is downloaded (:mod:`mmrefseg.testing.tiny_bpe`).
"""
import copy
import json
import threading
from typing import Dict, Optional, Sequence, Union

from transformers import AutoTokenizer, PreTrainedTokenizerBase

# Tokens of the InternVL chat format (Qwen2-style chat markers).
IMG_START_TOKEN = '<img>'
IMG_END_TOKEN = '</img>'
IMG_CONTEXT_TOKEN = '<IMG_CONTEXT>'
IM_START_TOKEN = '<|im_start|>'
IM_END_TOKEN = '<|im_end|>'
PAD_TOKEN = '<|endoftext|>'
SEG_TOKEN = '[SEG]'
REJ_TOKEN = '[REJ]'

TokenizerCfg = Union[str, Dict]
_CACHE: Dict[str, PreTrainedTokenizerBase] = {}
_LOCK = threading.Lock()


def _load_pretrained(path: str, **kwargs) -> PreTrainedTokenizerBase:
    try:
        tok = AutoTokenizer.from_pretrained(
            path, trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as e:
        raise OSError(
            f'Could not load a tokenizer from {path!r}. Expected a local '
            'HF-format directory (tokenizer.json or tokenizer_config.json + '
            'vocab files), e.g. the folder written by '
            'tools/model_converters/internvl_chat_to_hf.py.') from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_tokenizer(cfg: TokenizerCfg,
                    extra_special_tokens: Optional[Sequence[str]] = None
                    ) -> PreTrainedTokenizerBase:
    """Build (or fetch from the per-process cache) a tokenizer.

    Args:
        cfg: a local directory, ``dict(type='pretrained', path=..., **kw)`` or
            ``dict(type='tiny_bpe', vocab_size=512)``.
        extra_special_tokens: tokens to add as special tokens, in this order
            (e.g. ``['[SEG]', '[REJ]']``). Tokens the tokenizer already has
            keep their ids.

    Returns:
        PreTrainedTokenizerBase: the tokenizer. Callers must not mutate it; it
        is shared within the process.
    """
    if isinstance(cfg, str):
        cfg = dict(type='pretrained', path=cfg)
    cfg = copy.deepcopy(dict(cfg))
    extra = list(extra_special_tokens or cfg.pop('extra_special_tokens', []))
    cfg.pop('extra_special_tokens', None)
    key = json.dumps([cfg, extra], sort_keys=True, default=str)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        kind = cfg.pop('type', 'pretrained')
        if kind == 'tiny_bpe':
            # Benchmark/test scaffolding, imported only when asked for.
            from mmrefseg.testing.tiny_bpe import train_tiny_bpe
            tok = train_tiny_bpe(int(cfg.pop('vocab_size', 512)))
        elif kind == 'pretrained':
            tok = _load_pretrained(cfg.pop('path'), **cfg)
        else:
            raise ValueError(f"Unknown tokenizer type {kind!r}; expected "
                             "'pretrained' (a local directory) or 'tiny_bpe'.")
        missing = [t for t in extra if t not in tok.get_vocab()]
        if missing:
            tok.add_tokens(missing, special_tokens=True)
        _CACHE[key] = tok
        return tok


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """Id of a single token, with an error that says which one is missing."""
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or idx == tokenizer.unk_token_id and token != \
            tokenizer.unk_token:
        raise KeyError(f'Token {token!r} is not in the tokenizer vocabulary; '
                       'add it through extra_special_tokens.')
    return int(idx)
