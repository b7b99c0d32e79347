# Copyright (c) mmrefseg contributors.
from mmengine.runner import Runner
from test_engine.test_train_resume import _cfg


def test_marks_evaluate_each_loader_and_stop(synthetic_root, tmp_path):
    cfg = _cfg(synthetic_root, str(tmp_path), max_iters=100)
    val = cfg.val_dataloader
    control = dict(type='ShuffledExpressionsDataset',
                   dataset=dict(val.dataset))
    cfg.custom_hooks = [
        dict(type='TimeBudgetEvalHook', minutes=[3, 1], unit='iters',
             dataloaders=dict(real=val, shuffled=dict(val, dataset=control)),
             evaluator=cfg.val_evaluator)
    ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = [h for h in runner.hooks if type(h).__name__ ==
            'TimeBudgetEvalHook'][0]
    assert runner.iter == 3  # stopped at the last mark, not max_iters
    assert [r['iters'] for r in hook.rows] == [1, 3]
    for row in hook.rows:
        for name in ('real', 'shuffled'):
            assert 0.0 <= row[name]['refseg/cIoU'] <= 100.0


def test_data_parallel_ranks_follow_rank0_clock(monkeypatch):
    """On rank 1, whose own clock is short of the mark, rank 0's broadcast
    minutes decide: both ranks evaluate at the same iteration (the
    evaluation gathers across ranks, so a rank that skipped it would hang
    the other)."""
    from types import SimpleNamespace

    from mmrefseg.testing import time_budget_eval_hook as module
    hook = module.TimeBudgetEvalHook(minutes=[1.0], dataloaders={},
                                     evaluator={})
    hook._loaders = {'real': None}
    evaluated = []
    monkeypatch.setattr(hook, '_evaluate',
                        lambda runner, name: evaluated.append(name) or {})
    rank0_minutes = [0.5]

    def broadcast(objects, src=0):
        assert src == 0
        objects[0] = rank0_minutes[0]

    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(module, 'broadcast_object_list', broadcast)
    runner = SimpleNamespace(iter=0, train_loop=SimpleNamespace())
    hook._tick = 0.0  # this rank's clock: decades of training time
    hook.after_train_iter(runner, 0)
    assert evaluated == []  # rank 0 is at 0.5 min: nobody evaluates
    rank0_minutes[0] = 1.2
    hook._tick, hook._train_seconds = module.time.perf_counter(), 0.0
    runner.iter = 1
    hook.after_train_iter(runner, 1)  # this rank: ~0 min, rank 0: 1.2
    assert evaluated == ['real']
    assert hook.rows[0]['iters'] == 2
    assert runner.train_loop._max_iters == 2
