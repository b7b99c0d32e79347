# Copyright (c) mmrefseg contributors.
"""The converters' readers never run a payload, in any container.

Readers: ``load_weights_file``, ``WeightSource`` (headers and shards) and
the three converters behind tools/model_converters/ (InternVL chat -> HF,
released MLLMSeg, released SELF1E). The hostile file replaces the first
shard of an otherwise valid tiny chat checkpoint, under the shard's own name
(``.bin`` for torch containers, ``.safetensors`` for the pickles posing as
safetensors).
"""
import pytest
import torch
from chat_checkpoints import make_internlm2_chat
from malicious_files import CONTAINERS, hostile_state, write_container

from mmrefseg.converters import WeightSource, load_weights_file
from mmrefseg.converters.internvl_chat import convert_internvl_chat
from mmrefseg.converters.mllmseg import mllmseg_spec
from mmrefseg.converters.release import convert_release
from mmrefseg.converters.self1e import self1e_spec
from mmrefseg.fileio import UnsafeFileError

QUIET = dict(log=lambda msg: None)


def _hostile_source(tmp_path, container):
    src = tmp_path / 'src'
    src.mkdir()
    as_safetensors = container.startswith('safetensors')
    state, _ = make_internlm2_chat(
        str(src), fmt='safetensors' if as_safetensors else 'bin')
    shard = sorted(src.glob('model-*.safetensors' if as_safetensors else
                            'pytorch_model-*.bin'))[0]
    marker = tmp_path / 'PWNED'
    first = next(iter(state))
    write_container(hostile_state(marker, {first: state[first]}),
                    container, shard)
    return src, shard, marker


def _readers(src, out):
    yield 'load_weights_file', lambda shard: load_weights_file(str(shard))
    yield 'keys_and_shapes', lambda _: WeightSource(str(src)).keys_and_shapes()
    yield 'iter_shards', lambda _: [
        list(tensors) for _, tensors in WeightSource(str(src)).iter_shards()]
    yield 'internvl_chat_to_hf', lambda _: convert_internvl_chat(
        str(src), str(out / 'hf'), **QUIET)
    yield 'mllmseg_to_mmrefseg', lambda _: convert_release(
        mllmseg_spec(num_heads=4), str(src), str(out / 'mllmseg'), **QUIET)
    yield 'self1e_to_mmrefseg', lambda _: convert_release(
        self1e_spec(), str(src), str(out / 'self1e'), **QUIET)


@pytest.mark.parametrize('container', CONTAINERS)
def test_every_reader_refuses_without_running(tmp_path, container):
    src, shard, marker = _hostile_source(tmp_path, container)
    for name, read in _readers(src, tmp_path / 'out'):
        with pytest.raises(UnsafeFileError) as err:
            read(shard)
        assert str(shard) in str(err.value), name
        assert not marker.exists(), name


def test_readers_load_clean_sources(tmp_path):
    """Positive control: the same source without the payload converts."""
    for fmt in ('bin', 'safetensors'):
        src = tmp_path / fmt
        src.mkdir()
        state, _ = make_internlm2_chat(str(src), fmt=fmt)
        shapes = WeightSource(str(src)).keys_and_shapes()
        assert shapes == {k: tuple(v.shape) for k, v in state.items()}
        loaded = {}
        for _, tensors in WeightSource(str(src)).iter_shards():
            loaded.update(tensors)
        for key, value in state.items():
            assert torch.equal(loaded[key], value)
