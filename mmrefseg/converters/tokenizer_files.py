# Copyright (c) mmrefseg contributors.
"""Converting the tokenizer of an InternVL chat checkpoint to native files.

The output directory must load with ``AutoTokenizer.from_pretrained(...,
trust_remote_code=False)`` and keep every registered token at its original
id (the embedding rows are indexed by them):

* Qwen2/Qwen3/Llama checkpoints already ship a ``tokenizer.json``: the files
  are copied and remote-code references (``auto_map``, custom classes) are
  removed from ``tokenizer_config.json``.
* InternLM2 checkpoints ship a SentencePiece model and a remote-code class:
  a ``tokenizer.json`` is built from the SentencePiece model exactly like
  InternLM2's own fast tokenizer (see :mod:`.spm_tokenizer`).

The source token table is read from the files themselves (never by running
their code) and the converted tokenizer is checked against it.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from .spm_tokenizer import (
    build_fast_tokenizer,
    check_ids,
    read_sentencepiece_model,
)

# Tokens of the InternVL chat format whose ids must survive conversion.
CHAT_TOKENS = ('<img>', '</img>', '<IMG_CONTEXT>', '<|im_start|>',
               '<|im_end|>', '<quad>', '</quad>', '<ref>', '</ref>', '<box>',
               '</box>', '[SEG]', '[REJ]', '[SEGT]')
IMG_CONTEXT = '<IMG_CONTEXT>'

COPIED_FILES = ('tokenizer.json', 'vocab.json', 'merges.txt',
                'special_tokens_map.json', 'added_tokens.json')
# tokenizer_config.json fields that only make sense with remote code.
REMOTE_FIELDS = ('auto_map', )
NATIVE_FAST_CLASS = 'PreTrainedTokenizerFast'


def _read_json(path: str) -> dict:
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _token_text(value) -> Optional[str]:
    if isinstance(value, dict):
        return value.get('content')
    return value


def read_added_tokens(src: str) -> Dict[int, Tuple[str, bool]]:
    """Registered tokens of a tokenizer directory: id -> (text, special).

    Reads ``tokenizer_config.json`` (``added_tokens_decoder``),
    ``added_tokens.json`` and ``tokenizer.json`` (``added_tokens``) without
    instantiating anything. Conflicting ids for one token are an error.
    """
    table: Dict[int, Tuple[str, bool]] = {}

    def put(idx: int, text: str, special: bool) -> None:
        old = table.get(idx)
        if old is not None and old[0] != text:
            raise ValueError(f'Token id {idx} is {old[0]!r} in one tokenizer '
                             f'file and {text!r} in another ({src}).')
        table[idx] = (text, special or (old[1] if old else False))

    cfg = _read_json(osp.join(src, 'tokenizer_config.json'))
    for idx, tok in (cfg.get('added_tokens_decoder') or {}).items():
        put(int(idx), tok['content'], bool(tok.get('special', True)))
    for text, idx in _read_json(osp.join(src, 'added_tokens.json')).items():
        # added_tokens.json has no flag; InternVL/MLLMSeg register theirs
        # as special tokens.
        put(int(idx), text, True)
    for tok in _read_json(osp.join(src, 'tokenizer.json')).get(
            'added_tokens', []):
        put(int(tok['id']), tok['content'], bool(tok.get('special', False)))
    by_text: Dict[str, int] = {}
    for idx, (text, _) in table.items():
        if text in by_text and by_text[text] != idx:
            raise ValueError(f'{text!r} has ids {by_text[text]} and {idx} in '
                             f'the tokenizer files of {src}.')
        by_text[text] = idx
    return table


def require_tokenizer(src: str) -> None:
    """Raise if ``src`` has neither ``tokenizer.json`` nor a SentencePiece
    ``tokenizer.model``."""
    if not any(osp.isfile(osp.join(src, name))
               for name in ('tokenizer.json', 'tokenizer.model')):
        raise FileNotFoundError(
            f'No tokenizer in {src}: expected tokenizer.json or a '
            'SentencePiece tokenizer.model. Pass --tokenizer-from with the '
            'base model directory.')


def source_token_ids(src: str) -> Dict[str, int]:
    """Ids of the chat tokens (and any registered token) in ``src``.

    Also looks inside a SentencePiece ``tokenizer.model`` (InternLM2 keeps
    ``<|im_start|>``/``<|im_end|>`` there as user-defined pieces).
    """
    require_tokenizer(src)
    ids = {text: idx for idx, (text, _) in read_added_tokens(src).items()}
    spm_path = osp.join(src, 'tokenizer.model')
    if osp.isfile(spm_path):
        spm = read_sentencepiece_model(spm_path)
        for idx, (piece, _, _) in enumerate(spm.pieces):
            if piece in CHAT_TOKENS:
                ids.setdefault(piece, idx)
    return ids


def _uses_remote_class(cfg: dict) -> bool:
    cls = cfg.get('tokenizer_class')
    if not cls:
        return False
    import transformers
    return not hasattr(transformers, cls) and \
        not hasattr(transformers, cls.replace('Fast', ''))


def convert_tokenizer(src: str, dst: str, extra_tokens: Sequence[str] = (),
                      log=print):
    """Write a native tokenizer for ``src`` into ``dst``.

    Args:
        src: the original checkpoint (or tokenizer) directory.
        dst: output directory.
        extra_tokens: tokens to register after the existing ones, in this
            order, if the tokenizer lacks them (e.g. SELF1E's ``[SEG]``,
            ``[SEGT]`` whose checkpoints ship no tokenizer).
        log: progress callback.

    Returns:
        tuple: (the loaded native tokenizer, {token: id} of the chat
        tokens it has).
    """
    from transformers import AutoTokenizer
    os.makedirs(dst, exist_ok=True)
    expected = source_token_ids(src)
    cfg = _read_json(osp.join(src, 'tokenizer_config.json'))
    spm_path = osp.join(src, 'tokenizer.model')
    has_json = osp.isfile(osp.join(src, 'tokenizer.json'))
    if osp.isfile(spm_path) and (not has_json or _uses_remote_class(cfg)):
        log(f'Tokenizer: building a native fast tokenizer from {spm_path}')
        _write_from_sentencepiece(src, dst, spm_path, cfg)
    elif has_json:
        log('Tokenizer: copying tokenizer.json and friends')
        for name in COPIED_FILES:
            if osp.isfile(osp.join(src, name)):
                shutil.copyfile(osp.join(src, name), osp.join(dst, name))
        cfg = {k: v for k, v in cfg.items() if k not in REMOTE_FIELDS}
        if _uses_remote_class(cfg):
            cfg['tokenizer_class'] = NATIVE_FAST_CLASS
        with open(osp.join(dst, 'tokenizer_config.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(cfg, f, indent=2, ensure_ascii=False)
    else:
        require_tokenizer(src)
    tokenizer = AutoTokenizer.from_pretrained(dst, trust_remote_code=False)
    check_ids(tokenizer, expected)
    missing = [t for t in extra_tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(list(missing), special_tokens=True)
        tokenizer.save_pretrained(dst)
        log(f'Tokenizer: registered {missing} as ids '
            f'{tokenizer.convert_tokens_to_ids(missing)}')
        tokenizer = AutoTokenizer.from_pretrained(dst,
                                                  trust_remote_code=False)
    vocab = tokenizer.get_vocab()
    chat_ids = {t: vocab[t] for t in CHAT_TOKENS if t in vocab}
    check_ids(tokenizer, {**expected, **chat_ids})
    return tokenizer, chat_ids


def _write_from_sentencepiece(src: str, dst: str, spm_path: str,
                              cfg: dict) -> None:
    from transformers import PreTrainedTokenizerFast
    spm = read_sentencepiece_model(spm_path)
    if spm.precompiled_charsmap or spm.remove_extra_whitespaces:
        print('Note: the SentencePiece model normalises text '
              f'({spm.normalizer_name or "charsmap"}, remove_extra_'
              f'whitespaces={spm.remove_extra_whitespaces}); like '
              'InternLM2TokenizerFast, the converted tokenizer only maps '
              'spaces to "▁".')
    added = read_added_tokens(src)
    bos = _token_text(cfg.get('bos_token')) or '<s>'
    add_bos = cfg.get('add_bos_token', True)
    backend = build_fast_tokenizer(spm, added, bos if add_bos else None)
    kwargs = dict(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=_token_text(cfg.get('eos_token')) or '</s>',
        unk_token=_token_text(cfg.get('unk_token')) or spm.unk_piece,
        add_bos_token=bool(add_bos),
        add_eos_token=bool(cfg.get('add_eos_token', False)),
        clean_up_tokenization_spaces=bool(
            cfg.get('clean_up_tokenization_spaces', False)))
    pad = _token_text(cfg.get('pad_token'))
    if pad:
        kwargs['pad_token'] = pad
    for key in ('model_max_length', 'chat_template', 'padding_side'):
        if key in cfg:
            kwargs[key] = cfg[key]
    tokenizer = PreTrainedTokenizerFast(**kwargs)
    tokenizer.save_pretrained(dst)
    # save_pretrained records the class it was given; say so explicitly so
    # AutoTokenizer never goes looking for remote code.
    path = osp.join(dst, 'tokenizer_config.json')
    written = _read_json(path)
    written['tokenizer_class'] = NATIVE_FAST_CLASS
    for key in REMOTE_FIELDS:
        written.pop(key, None)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(written, f, indent=2, ensure_ascii=False)


def chat_token_summary(ids: Dict[str, int]) -> List[str]:
    return [f'{t}={ids[t]}' for t in CHAT_TOKENS if t in ids]
