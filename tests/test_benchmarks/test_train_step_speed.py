# Copyright (c) mmrefseg contributors.
"""The training-step speed benchmark: its variant syntax and one real run."""
import os.path as osp

import pytest
from repo_scripts import REPO, load_script

TINY = osp.join(REPO, 'configs', 'text4seg', 'text4seg_tiny_synth.py')


@pytest.fixture(scope='module')
def speed():
    return load_script('benchmarks/train_step_speed.py')


def test_variant_names_and_literal_options(speed):
    assert speed.parse_variant('config:') == ('config', {})
    name, opts = speed.parse_variant(
        'fast:optim_wrapper.optimizer.fused=True a.b=8 c=sdpa')
    assert name == 'fast'
    assert opts == {'optim_wrapper.optimizer.fused': True, 'a.b': 8,
                    'c': 'sdpa'}
    with pytest.raises(ValueError, match='NAME:K=V'):
        speed.parse_variant('model.backbone.compile_blocks=True')
    with pytest.raises(ValueError, match="'fused' is not K=V"):
        speed.parse_variant('x:fused')


def test_each_variant_times_real_steps_in_its_own_process(
        speed, synthetic_root, tmp_path, capsys):
    """Two variants of the tiny Text4Seg config, each a fresh process that
    builds the model and runs forward, backward and AdamW steps; the row
    carries the variant's batch size and thread count."""
    data = f'train_dataloader.dataset.data_root={synthetic_root}'
    work = f'work_dir={tmp_path}'
    rows = speed.main([
        TINY, '--batch-size', '2', '--warmup', '1', '--steps', '2',
        '--variant', f'plain:{data} {work}',
        '--variant', f'fused:{data} {work} optim_wrapper.optimizer.fused=True'
    ])
    assert [r['variant'] for r in rows] == ['plain', 'fused']
    for row in rows:
        assert row['batch_size'] == 2 and row['threads'] == 1
        assert 0 < row['step_s'] < 60 and row['warmup_s'] > 0
    table = capsys.readouterr().out
    assert '| plain | 1 | 2 |' in table and '| fused | 1 | 2 |' in table


def test_a_failing_variant_reports_its_error(speed, tmp_path):
    with pytest.raises(RuntimeError, match="variant 'bad:.*failed"):
        speed.main([TINY, '--steps', '1', '--warmup', '0', '--variant',
                    f'bad:work_dir={tmp_path} model.backbone.type=NoSuch'])
