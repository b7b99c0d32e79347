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
