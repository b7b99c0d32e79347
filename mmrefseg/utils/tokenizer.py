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
  tests so that nothing is downloaded.
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

# Words the tiny tokenizer learns merges for; anything else still encodes
# byte by byte, so the corpus only affects sequence length, never coverage.
_TINY_CORPUS_WORDS = (
    'the a an of in on at to is are and or with this that these those it its '
    'image picture photo please segment can you what where which who show '
    'output mask masks segmentation results result sure they here there '
    'referred object objects shape shapes one ones thing respond '
    'red green blue yellow orange purple pink cyan white black gray grey brown '
    'magenta teal circle square triangle star diamond rectangle hexagon '
    'ellipse cross heart left right top bottom upper lower middle center '
    'centre leftmost rightmost topmost bottommost big bigger biggest large '
    'larger largest small smaller smallest tiny huge all two three both '
    'others system user assistant you are a helpful assistant seg '
    'man woman person people guy girl boy shirt car dog cat horse table chair '
    'near far front back behind next beside above below between first second '
    'third last other no none not any every each some').split()
_TINY_CORPUS_PHRASES = (
    'Can you segment {} in this image?',
    'Please segment {} in this image.',
    'What are {} in this image? Please respond with segmentation masks.',
    'What are {} in this image? Please output segmentation masks.',
    'The segmentation results are {} [SEG].',
    'Sure, they are {}:[SEG].',
    'Sure, the mask of {} is [SEG].',
    'Sure, the segmentation of {} is [SEG].',
    'Sure, the referred {} is [SEG].',
    "Sure, here is the segmentation mask for '{}':\n<seg>{} *16| others *4\n "
    'others *16\n</seg>',
)


def _train_tiny_bpe(vocab_size: int) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE on the fixed corpus; same inputs, same merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = [PAD_TOKEN, IM_START_TOKEN, IM_END_TOKEN, IMG_START_TOKEN,
               IMG_END_TOKEN, IMG_CONTEXT_TOKEN]
    tok = Tokenizer(models.BPE())
    # Split digits one by one like Qwen2/InternLM2 so run lengths tokenise
    # the way they do with the real tokenizers.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    corpus = []
    words = _TINY_CORPUS_WORDS
    for i, phrase in enumerate(_TINY_CORPUS_PHRASES):
        for j in range(0, len(words), 3):
            fill = ' '.join(words[j:j + 3 + i % 3])
            corpus.append(phrase.format(fill, fill))
    corpus.extend(' '.join(words[k:k + 7]) for k in range(len(words)))
    corpus.extend(f'{w} *{n}|' for w in ('others', 'shape') for n in range(33))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=IM_END_TOKEN,
        additional_special_tokens=special[1:])
    hf_tok.padding_side = 'right'
    return hf_tok


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
            tok = _train_tiny_bpe(int(cfg.pop('vocab_size', 512)))
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
