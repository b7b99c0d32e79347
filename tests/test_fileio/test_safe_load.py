# Copyright (c) mmrefseg contributors.
"""mmrefseg.fileio: hostile files are refused before they run, damaged ones
say "not a checkpoint", and what MMEngine and torch write still loads."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from malicious_files import CONTAINERS, Payload, hostile_file
from safetensors.torch import save_file

from mmrefseg.fileio import (
    NotACheckpointError,
    UnsafeFileError,
    check_safetensors,
    load_plain_pickle,
    load_torch_file,
    load_weights_file,
    sniff_format,
)


@pytest.mark.parametrize('container', CONTAINERS)
def test_payload_never_runs_and_error_names_file(tmp_path, container):
    path, marker = hostile_file(tmp_path, container)
    with pytest.raises(UnsafeFileError) as err:
        load_torch_file(str(path))
    assert str(path) in str(err.value)
    assert not marker.exists()
    if not container.startswith('safetensors'):
        # The refused global is named: the payload, met first.
        assert 'posix.system' in str(err.value) or \
            'nt.system' in str(err.value)
    with pytest.raises(UnsafeFileError):
        load_weights_file(str(path))
    assert not marker.exists()


@pytest.mark.parametrize('container', ['plain', 'legacy', 'zip'])
def test_plain_data_reader_refuses_every_container(tmp_path, container):
    """REFER's reader: a payload is refused, torch files are not pickles."""
    path, marker = hostile_file(tmp_path, container)
    with pytest.raises(ValueError) as err:
        load_plain_pickle(str(path))
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_legacy_reader_cannot_reach_plain_pickle_load(tmp_path):
    """The hole of issue 15: torch's legacy reader unpickles the magic
    number with ``pickle_module.load``; a bare payload there must be
    refused by our ``load`` too, not only by our ``Unpickler``."""
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'x.pth'
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UnsafeFileError, match='posix.system|nt.system'):
        load_torch_file(str(path))
    assert not marker.exists()


def test_other_globals_and_getattr_refused(tmp_path):
    path = tmp_path / 'eval.pth'
    # protocol 2 with torch's framing would reach the same find_class; a
    # bare GLOBAL opcode is the shortest way to name builtins.eval.
    path.write_bytes(b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.")
    with pytest.raises(UnsafeFileError, match='builtins.eval'):
        load_torch_file(str(path))
    # getattr may fetch HistoryBuffer's statistics methods, nothing else.
    path.write_bytes(b'\x80\x02cbuiltins\ngetattr\ncbuiltins\nset\n'
                     b'X\x08\x00\x00\x00__init__\x86R.')
    with pytest.raises(UnsafeFileError, match='getattr'):
        load_torch_file(str(path))


def test_torchscript_archive_refused(tmp_path):
    path = tmp_path / 'scripted.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeFileError, match='TorchScript'):
        load_torch_file(str(path))


def test_errors_caught_by_old_handlers():
    assert issubclass(UnsafeFileError, pickle.UnpicklingError)
    assert issubclass(UnsafeFileError, ValueError)
    assert issubclass(NotACheckpointError, ValueError)
    # The old per-reader names are the one error type and the one loader.
    from mmrefseg.converters import UnsafeWeightsError
    from mmrefseg.datasets import UnsafePickleError, safe_load_pickle
    from mmrefseg.utils import UnsafeCheckpointError, load_checkpoint_file
    assert UnsafeWeightsError is UnsafePickleError is \
        UnsafeCheckpointError is UnsafeFileError
    assert safe_load_pickle is load_plain_pickle
    assert load_checkpoint_file is load_torch_file


def _tensors():
    return OrderedDict(w=torch.randn(3, 4), b=torch.arange(5),
                       h=torch.ones(2, dtype=torch.bfloat16))


@pytest.mark.parametrize('legacy', [False, True])
def test_torch_save_state_dicts_load(tmp_path, legacy):
    state = _tensors()
    path = tmp_path / 'w.bin'
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    for loaded in (load_torch_file(str(path)), load_weights_file(str(path))):
        assert list(loaded) == list(state)
        for key in state:
            assert torch.equal(loaded[key], state[key])


@pytest.mark.parametrize('legacy', [False, True])
def test_numpy_and_history_buffer_load(tmp_path, legacy):
    """What MMEngine writes besides tensors goes through the allow-list."""
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    for value in (1.0, 2.0, 6.0):
        buf.update(value)
    obj = dict(state_dict=_tensors(), hub=buf, arr=np.arange(4.0),
               scalar=np.float32(2.5), dtype=torch.float16,
               size=torch.Size([2, 3]), tags={'a', 'b'})
    path = tmp_path / 'ckpt.pth'
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    loaded = load_torch_file(str(path))
    assert loaded['hub'].mean() == 3.0 and loaded['hub'].max() == 6.0
    assert np.array_equal(loaded['arr'], np.arange(4.0))
    assert loaded['scalar'] == np.float32(2.5)
    assert loaded['dtype'] is torch.float16
    assert loaded['size'] == torch.Size([2, 3]) and loaded['tags'] == {
        'a', 'b'}
    assert torch.equal(loaded['state_dict']['w'], obj['state_dict']['w'])


def test_mmengine_save_checkpoint_loads(tmp_path):
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance('sec15_test_hub')
    hub.update_scalar('train/loss', 0.5)
    path = tmp_path / 'iter_1.pth'
    save_checkpoint(dict(state_dict=_tensors(), message_hub=hub.state_dict(),
                         meta=dict(iter=1, seed=0)), str(path))
    loaded = load_torch_file(str(path))
    assert loaded['meta']['iter'] == 1
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == \
        0.5


def test_safetensors_by_content(tmp_path):
    state = {'a': torch.randn(2, 3), 'b': torch.zeros(4)}
    path = tmp_path / 'model.safetensors'
    save_file(state, str(path))
    check_safetensors(str(path))
    # The bytes decide: a safetensors file named .pth loads as safetensors.
    other = tmp_path / 'weights.pth'
    other.write_bytes(path.read_bytes())
    for p in (path, other):
        loaded = load_weights_file(str(p))
        assert sorted(loaded) == ['a', 'b']
        assert torch.equal(loaded['a'], state['a'])


def test_pickle_named_safetensors_refused_cleanly(tmp_path):
    path = tmp_path / 'model.safetensors'
    torch.save({'a': torch.zeros(1)}, path)  # harmless, still refused
    with pytest.raises(UnsafeFileError, match='named .safetensors'):
        check_safetensors(str(path))
    path.write_text('not tensors')
    with pytest.raises(NotACheckpointError, match='not a checkpoint'):
        check_safetensors(str(path))


def _truncated(tmp_path, name, data, keep):
    path = tmp_path / name
    path.write_bytes(data[:keep])
    return path


def test_not_a_checkpoint_files(tmp_path):
    state = _tensors()
    zip_path = tmp_path / 'full_zip.pth'
    torch.save(state, zip_path)
    legacy_path = tmp_path / 'full_legacy.pth'
    torch.save(state, legacy_path, _use_new_zipfile_serialization=False)
    st_path = tmp_path / 'full.safetensors'
    save_file({'a': torch.ones(8)}, str(st_path))
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 3: loss 0.12\n')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    plain = tmp_path / 'plain.pth'
    plain.write_bytes(pickle.dumps({'w': 1}))
    cases = {
        text: 'neither a zip archive, a pickle nor safetensors',
        empty: 'the file is empty',
        plain: "without torch.save's magic number",
        _truncated(tmp_path, 'trunc_zip.pth', zip_path.read_bytes(), 200):
        'truncated or corrupt',
        _truncated(tmp_path, 'trunc_legacy.pth', legacy_path.read_bytes(),
                   300): 'truncated or corrupt',
        _truncated(tmp_path, 'trunc_legacy_head.pth',
                   legacy_path.read_bytes(), 30): 'truncated or corrupt',
        _truncated(tmp_path, 'trunc.safetensors', st_path.read_bytes(),
                   os.path.getsize(st_path) - 4): 'truncated',
    }
    for path, why in cases.items():
        with pytest.raises(NotACheckpointError) as err:
            load_torch_file(str(path))
        msg = str(err.value)
        assert f'{path} is not a checkpoint' in msg and why in msg, msg
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_torch_file(str(tmp_path / 'nope.pth'))


def test_sniff_format(tmp_path):
    path = tmp_path / 'f'
    for data, kind in ((b'', 'empty'), (b'PK\x03\x04rest', 'zip'),
                       (b'\x80\x02K\x01.', 'pickle'), (b'hello', 'unknown'),
                       (b'\x02\x00\x00\x00\x00\x00\x00\x00{}', 'safetensors')):
        path.write_bytes(data)
        assert sniff_format(str(path)) == kind, data


def test_plain_pickle_with_trailing_data_refused(tmp_path):
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(pickle.dumps([{'a': 1}]) + pickle.dumps('more'))
    with pytest.raises(ValueError, match='not a single pickle'):
        load_plain_pickle(str(path))
