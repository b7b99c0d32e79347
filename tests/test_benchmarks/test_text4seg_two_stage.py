# Copyright (c) mmrefseg contributors.
"""The two-stage Text4Seg benchmark's plumbing (no training here)."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from repo_scripts import REPO, load_script

FT_CONFIG = osp.join(REPO, 'configs', 'text4seg', 'text4seg_tiny_synth_ft.py')


@pytest.fixture(scope='module')
def two_stage():
    import sys
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))
    return load_script('benchmarks/text4seg_two_stage.py')


def runner_cfg(monkeypatch, module, train, *args) -> Config:
    """The config ``train(*args)`` hands to ``module.build_runner``
    (stopped there: nothing trains)."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_build_runner(cfg):
        seen['cfg'] = cfg
        raise Stop

    monkeypatch.setattr(module, 'build_runner', fake_build_runner)
    with pytest.raises(Stop):
        train(*args)
    return seen['cfg']


def test_stage2_config_reads_the_export_in_both_forms(two_stage, tmp_path):
    args = two_stage.parse_args(['--config', FT_CONFIG, '--work-dir',
                                 str(tmp_path), '--iters', '10', '30'])
    export = str(tmp_path / 'stage1')
    for form in ('rrle', 'full'):
        cfg = Config.fromfile(two_stage.stage2_config(args, export, form))
        assert cfg.model.backbone.pretrained == export
        assert cfg.model.backbone.tokenizer == export
        assert cfg.model.decode_head.answer_format == form
        assert cfg.default_hooks.checkpoint.interval == 30
        for loader in ('train_dataloader', 'val_dataloader'):
            steps = {s['type']: s for s in cfg[loader].dataset.pipeline}
            assert steps['Text4SegAnswer']['answer_format'] == form
            assert 'BuildConversation' not in steps  # model-side prompts
        # Stage 1's layout (question first) on the model-side processor.
        assert cfg.model.backbone.processor.question_first is True
        assert cfg.model.backbone.processor.prompt_style == 'answer'
        # One cell per LLM image token: 8x8 for the tiny stage-1 models.
        assert cfg.model.decode_head.grid_size == 8
        steps = {s['type']: s for s in cfg.test_dataloader.dataset.pipeline}
        assert steps['Text4SegAnswer']['grid_size'] == 8
        # Full answers: up to 3 tokens per cell with the tiny tokenizer.
        assert cfg.model.decode_head.max_new_tokens == (
            160 if form == 'rrle' else 192)


def test_cfg_options_and_launcher_reach_stage2(two_stage, tmp_path,
                                              monkeypatch):
    """--cfg-options edit the written stage-2 config (e.g. the per-process
    batch of a 2-process run); --launcher reaches the grounding-curve
    config that trains it."""
    args = two_stage.parse_args([
        '--config', FT_CONFIG, '--work-dir', str(tmp_path), '--iters', '10',
        '--launcher', 'pytorch', '--cfg-options',
        'train_dataloader.batch_size=4'])
    path = two_stage.stage2_config(args, str(tmp_path), 'rrle')
    assert Config.fromfile(path).train_dataloader.batch_size == 4
    cfg = runner_cfg(monkeypatch, two_stage.grounding_curve,
                     two_stage.run_stage2, args, path, 'rrle')
    assert cfg.launcher == 'pytorch'
    assert cfg.train_dataloader.batch_size == 4


def test_stage1_cfg_options_reach_stage1(two_stage, tmp_path, monkeypatch):
    """--stage1-cfg-options edit stage 1's training config (two processes
    at batch 16 keep the recipe's global batch of 32), and the cache
    folder is still named after the config and its iterations."""
    args = two_stage.parse_args([
        '--stage1-config', osp.join(REPO, 'configs', 'mllmseg',
                                    'mllmseg_hybrid_tiny_synth.py'),
        '--stage1-iters', '7', '--work-dir', str(tmp_path),
        '--stage1-cfg-options', 'train_dataloader.batch_size=16'])
    cfg = runner_cfg(monkeypatch, two_stage, two_stage.stage1_export, args)
    assert cfg.train_dataloader.batch_size == 16
    assert cfg.train_cfg.max_iters == 7
    assert cfg.work_dir == osp.join(str(tmp_path),
                                    'mllmseg_hybrid_tiny_synth_7', 'train')


def test_grid_size_option_sets_head_and_answers(two_stage, tmp_path):
    args = two_stage.parse_args(['--config', FT_CONFIG, '--work-dir',
                                 str(tmp_path), '--iters', '10',
                                 '--grid-size', '16'])
    for form, tokens in (('rrle', 256), ('full', 768)):
        cfg = Config.fromfile(
            two_stage.stage2_config(args, str(tmp_path), form))
        assert cfg.model.decode_head.grid_size == 16
        assert cfg.model.decode_head.max_new_tokens == tokens
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            steps = {s['type']: s for s in cfg[loader].dataset.pipeline}
            assert steps['Text4SegAnswer']['grid_size'] == 16


def test_stage1_schedule_is_scaled(two_stage):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'self1e',
                                   'self1e_tiny_synth.py'))
    two_stage.scale_schedule(cfg, 170)
    assert cfg.train_cfg.max_iters == 170
    warmup, cosine = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 10)
    assert (cosine.begin, cosine.end) == (10, 170)
    assert cfg.default_hooks.checkpoint.interval == 170
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.val_dataloader is None and cfg.val_cfg is None


def test_cached_stage1_is_reused(two_stage, tmp_path):
    export = tmp_path / 'cached'
    export.mkdir()
    (export / 'mmrefseg_export.json').write_text(json.dumps({}))
    args = two_stage.parse_args(['--stage1-dir', str(export)])
    assert two_stage.stage1_export(args) == str(export)


def test_stage1_only_stops_before_stage2(two_stage, synthetic_root,
                                         tmp_path, capsys):
    export = tmp_path / 'cached'
    export.mkdir()
    (export / 'mmrefseg_export.json').write_text(json.dumps({}))
    work = tmp_path / 'work'
    assert two_stage.main([
        '--stage1-only', '--stage1-dir', str(export), '--data-root',
        synthetic_root, '--val-samples', '4', '--work-dir', str(work)]) == 0
    out = capsys.readouterr().out
    assert f'Stage 1: reusing {export}' in out
    assert 'Stage 2' not in out and not work.exists()


def test_grid_oracle_is_the_upsampled_gt_grid(two_stage, synthetic_root):
    cfg = Config.fromfile(FT_CONFIG)
    two_stage.set_data_root(cfg, synthetic_root)
    oracle = two_stage.grid_oracle(cfg, 8)
    assert 30 < oracle < 100
    cfg.model.decode_head.grid_size = 64
    assert two_stage.grid_oracle(cfg, 8) > oracle


def test_rows_show_oracle_share_and_parse_failures(two_stage):
    row = dict(iters=20, minutes=1.5,
               real={'refseg/cIoU': 30.0, 'refseg/parse_fail_rate': 25.0,
                     'refseg/parse_fail/truncated': 2,
                     'refseg/parse_fail/row_count': 1},
               shuffled={'refseg/cIoU': 10.0})
    line = two_stage.format_rows('rrle', [row], 60.0)[0]
    assert line.startswith('| rrle | 20 | 1.5 | 30.0 | 10.0 | 20.0 | 60.0 '
                           '| 50% | 25.0 | truncated 2, row_count 1 |')


def test_fp32_drops_bfloat16_autocast(two_stage):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'self1e',
                                   'self1e_tiny_synth.py'))
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    two_stage.no_autocast(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert Config.fromfile(FT_CONFIG).optim_wrapper.type == 'OptimWrapper'


def test_default_marks_follow_the_stage2_schedule(two_stage):
    """Without --iters the benchmark evaluates at half and all of the
    stage-2 config's max_iters, after --cfg-options."""
    cfg = Config.fromfile(FT_CONFIG)
    last = int(cfg.train_cfg.max_iters)
    assert two_stage.default_marks(cfg, None) == [last // 2, last]
    assert two_stage.default_marks(
        cfg, {'train_cfg.max_iters': 8401}) == [4200, 8401]
    # the config itself is left as it was
    assert cfg.train_cfg.max_iters == last
