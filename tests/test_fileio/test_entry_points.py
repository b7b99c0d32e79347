# Copyright (c) mmrefseg contributors.
"""Every way a hostile file reaches us, in every container: the payload never
runs and the error names the file.

Entry points: the REFER dataset pickle (RefCOCODataset, GRefCOCODataset),
``load_from`` through a Runner, ``--resume`` (explicit and the latest
checkpoint of the work dir) and ``mmengine.runner.load_checkpoint``. The
converters' readers are in tests/test_converters/test_hostile_weights.py,
``tools/test.py CONFIG CKPT`` in tests/test_tools/test_test_checkpoints.py.
"""
import numpy as np
import pytest
import torch
from malicious_files import (
    CONTAINERS,
    Payload,
    hostile_file,
    hostile_state,
    write_container,
)
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn

from mmrefseg.fileio import UnsafeFileError


class TinyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.linear(inputs)


def _runner(tmp_path, **kwargs) -> Runner:
    return Runner(model=TinyModel(), work_dir=str(tmp_path / 'work'),
                  default_scope='mmrefseg', **kwargs)


def _refused(call, path, marker) -> None:
    with pytest.raises(UnsafeFileError) as err:
        call()
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize('container', CONTAINERS)
def test_load_from_through_runner(tmp_path, container):
    path, marker = hostile_file(tmp_path, container)
    runner = _runner(tmp_path, load_from=str(path))
    _refused(runner.load_or_resume, path, marker)


@pytest.mark.parametrize('container', CONTAINERS)
def test_resume_explicit_and_latest(tmp_path, container):
    path, marker = hostile_file(tmp_path, container)
    runner = _runner(tmp_path, load_from=str(path), resume=True)
    _refused(runner.load_or_resume, path, marker)
    # --resume without load_from: the work dir's last_checkpoint.
    work = tmp_path / 'auto'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(path))
    runner = Runner(model=TinyModel(), work_dir=str(work), resume=True,
                    default_scope='mmrefseg')
    _refused(runner.load_or_resume, path, marker)


@pytest.mark.parametrize('container', CONTAINERS)
def test_mmengine_load_checkpoint(tmp_path, container):
    path, marker = hostile_file(tmp_path, container)
    _refused(lambda: load_checkpoint(TinyModel(), str(path)), path, marker)


@pytest.mark.parametrize('container', ['plain', 'legacy', 'zip'])
@pytest.mark.parametrize('dataset_type', ['RefCOCODataset', 'GRefCOCODataset'])
def test_refer_dataset_pickle(tmp_path, synthetic_root, container,
                              dataset_type):
    """The REFER readers open ``refs(<splitBy>).p``/``grefs(...).p`` by
    name, so the containers here are the bytes, all under that name."""
    from mmrefseg import datasets
    marker = tmp_path / 'PWNED'
    name = 'refs(unc).p' if dataset_type == 'RefCOCODataset' else \
        'grefs(unc).p'
    # The payload is the first global the reader meets.
    refs = [dict(ref_id=1, sentences=Payload(marker))]
    path = write_container(refs, container, tmp_path / name)
    dataset_name = 'synthrefcoco' if dataset_type == 'RefCOCODataset' \
        else 'grefcoco'
    with pytest.raises(ValueError) as err:
        getattr(datasets, dataset_type)(
            data_root=synthetic_root, dataset_name=dataset_name,
            split_by='unc', split='val', ann_file=str(path), test_mode=True)
    assert str(path) in str(err.value)
    assert not marker.exists()
    if container == 'plain':
        assert isinstance(err.value, UnsafeFileError)
        assert 'system' in str(err.value)


def test_own_checkpoint_still_loads_through_runner(tmp_path):
    """Positive control: an MMEngine checkpoint (message hub with
    HistoryBuffers, numpy values) loads back through load_from."""
    from mmengine.runner.checkpoint import save_checkpoint
    runner = _runner(tmp_path)
    runner.message_hub.update_scalar('train/loss', 0.25)
    runner.message_hub.update_info('np_value', np.float64(1.5))
    path = tmp_path / 'own.pth'
    save_checkpoint(dict(state_dict=runner.model.state_dict(),
                         message_hub=runner.message_hub.state_dict(),
                         meta=dict(iter=3)), str(path))
    again = _runner(tmp_path, load_from=str(path))
    again.load_or_resume()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value)


def test_payload_in_list_container(tmp_path):
    """A REFER-style list with a payload saved as a checkpoint."""
    marker = tmp_path / 'PWNED'
    path = write_container([hostile_state(marker)], 'legacy',
                           tmp_path / 'list.pth')
    _refused(lambda: load_checkpoint(TinyModel(), str(path)), path, marker)
