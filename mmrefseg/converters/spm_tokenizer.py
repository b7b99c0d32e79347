# Copyright (c) mmrefseg contributors.
"""A native fast tokenizer from a SentencePiece-BPE ``tokenizer.model``.

InternLM2 ships a remote-code SentencePiece tokenizer. Its own fast version
(``InternLM2TokenizerFast``) is a Llama-style conversion: a byte-fallback
BPE over the SentencePiece pieces, a normalizer that turns spaces into
``▁`` (and prepends one when the model adds a dummy prefix), no
pre-tokenizer, a decoder that undoes both, and a BOS-only post-processor.
This module builds exactly that with the ``tokenizers`` library, reading
the SentencePiece model (a protobuf) with a small wire-format reader, so
neither ``sentencepiece`` nor ``protobuf`` is needed.
"""
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2


@dataclass
class SentencePieceModel:
    """The fields of a SentencePiece ``ModelProto`` that conversion uses."""

    pieces: List[Tuple[str, float, int]]  # (piece, score, type)
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    unk_id: int = 0
    unk_piece: str = '<unk>'
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    normalizer_name: str = ''
    precompiled_charsmap: bytes = field(default=b'', repr=False)


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield number, wire, value


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def read_sentencepiece_model(path: str) -> SentencePieceModel:
    """Parse a SentencePiece ``.model`` file (no sentencepiece needed).

    Field numbers follow ``sentencepiece_model.proto``: ModelProto
    pieces=1, trainer_spec=2, normalizer_spec=3; SentencePiece piece=1,
    score=2, type=3; TrainerSpec model_type=3, byte_fallback=35,
    unk_id=40, unk_piece=45; NormalizerSpec name=1,
    precompiled_charsmap=2, add_dummy_prefix=3,
    remove_extra_whitespaces=4.
    """
    with open(path, 'rb') as f:
        data = f.read()
    model = SentencePieceModel(pieces=[])
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            piece, score, kind = '', 0.0, NORMAL
            for n, w, v in _fields(value):
                if n == 1:
                    piece = v.decode('utf-8')
                elif n == 2 and w == 5:
                    score = struct.unpack('<f', v)[0]
                elif n == 3:
                    kind = v
            model.pieces.append((piece, score, kind))
        elif number == 2 and wire == 2:
            for n, w, v in _fields(value):
                if n == 3:
                    model.model_type = v
                elif n == 35:
                    model.byte_fallback = bool(v)
                elif n == 40:
                    model.unk_id = _signed32(v)
                elif n == 45:
                    model.unk_piece = v.decode('utf-8')
        elif number == 3 and wire == 2:
            for n, w, v in _fields(value):
                if n == 1:
                    model.normalizer_name = v.decode('utf-8')
                elif n == 2:
                    model.precompiled_charsmap = bytes(v)
                elif n == 3:
                    model.add_dummy_prefix = bool(v)
                elif n == 4:
                    model.remove_extra_whitespaces = bool(v)
    if not model.pieces:
        raise ValueError(f'{path} has no SentencePiece pieces; is it a '
                         'SentencePiece model?')
    return model


def build_fast_tokenizer(spm: SentencePieceModel,
                         added_tokens: Dict[int, Tuple[str, bool]],
                         bos_token: Optional[str] = '<s>'):
    """The InternLM2/Llama-style ``tokenizers.Tokenizer`` of a BPE model.

    Args:
        spm: the parsed SentencePiece model (must be BPE).
        added_tokens: id -> (content, special) of tokens registered with
            the original tokenizer (``added_tokens_decoder`` /
            ``added_tokens.json``). Ids inside the SentencePiece vocabulary
            rename that piece; ids after it must follow it without gaps.
        bos_token: prepended by the post-processor (None: nothing).

    Returns:
        tokenizers.Tokenizer: the fast tokenizer.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        normalizers,
        processors,
    )
    from tokenizers.models import BPE as BPEModel
    from transformers.convert_slow_tokenizer import generate_merges

    if spm.model_type != BPE:
        raise ValueError('Only SentencePiece BPE models can be converted '
                         f'this way (model_type={spm.model_type}).')
    size = len(spm.pieces)
    # Merges come from the original pieces; renamed ids only change the
    # string that stands for an id (as the official converter does).
    vocab = {piece: i for i, (piece, _, _) in enumerate(spm.pieces)}
    scores = [(added_tokens[i][0] if i in added_tokens else piece, score)
              for i, (piece, score, _) in enumerate(spm.pieces)]
    merges = generate_merges(vocab, scores)
    bpe_vocab = {piece: i for i, (piece, _) in enumerate(scores)}
    if len(bpe_vocab) != size:
        raise ValueError('SentencePiece model has duplicate pieces')
    tok = Tokenizer(BPEModel(bpe_vocab, merges, unk_token=spm.unk_piece,
                             fuse_unk=True, byte_fallback=True))
    norm = [normalizers.Prepend('▁')] if spm.add_dummy_prefix else []
    norm.append(normalizers.Replace(' ', '▁'))
    tok.normalizer = normalizers.Sequence(norm)
    tok.decoder = decoders.Sequence([
        decoders.Replace('▁', ' '), decoders.ByteFallback(),
        decoders.Fuse(), decoders.Strip(content=' ', left=1, right=0)])

    # Control and user-defined pieces, and registered tokens, must match
    # whole before normalisation; ids outside the vocab are appended in
    # order, so they have to be contiguous.
    in_vocab = {i: (p, kind == CONTROL) for i, (p, _, kind)
                in enumerate(spm.pieces) if kind in (CONTROL, USER_DEFINED)}
    in_vocab.update({i: v for i, v in added_tokens.items() if i < size})
    tok.add_tokens([AddedToken(scores[i][0], special=special,
                               normalized=False)
                    for i, (_, special) in sorted(in_vocab.items())])
    extra = sorted(i for i in added_tokens if i >= size)
    if extra and extra != list(range(size, size + len(extra))):
        raise ValueError(
            f'Added token ids {extra} do not follow the SentencePiece '
            f'vocabulary (size {size}) contiguously.')
    for i in extra:
        content, special = added_tokens[i]
        tok.add_tokens([AddedToken(content, special=special,
                                   normalized=False)])
        got = tok.token_to_id(content)
        if got != i:
            raise ValueError(f'{content!r} got id {got}, expected {i}')
    if bos_token is not None:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f'{bos_token}:0 $A:0',
            pair=f'{bos_token}:0 $A:0 {bos_token}:1 $B:1',
            special_tokens=[(bos_token, bos_id)])
    return tok


def check_ids(tokenizer, expected: Dict[str, int],
              names: Optional[Sequence[str]] = None) -> None:
    """Raise naming every token whose id differs from ``expected``."""
    names = list(expected) if names is None else names
    bad = []
    for name in names:
        got = tokenizer.convert_tokens_to_ids(name)
        if got != expected[name]:
            bad.append(f'{name}: {got} (expected {expected[name]})')
    if bad:
        raise ValueError('Converted tokenizer changed token ids: ' +
                         ', '.join(bad))
