# MLLMSeg on InternVL2.5-8B, GRES stage on gRefCOCO: continues from the RES
# checkpoint (set load_from), 20k iterations, no-target expressions are
# answered with [REJ] and get no mask loss; at test the model's own
# [SEG]/[REJ] preference (read from its logits at each answer slot, with the
# answer teacher-forced as [SEG]) decides no-target, and such masks are empty.
# Difference from the original: it merges the RES LoRA into the weights and
# starts a fresh r64 LoRA; here the RES LoRA keeps training.
_base_ = ['./internvl8b_refcoco.py']
load_from = 'work_dirs/internvl8b_refcoco/iter_50000.pth'
max_iters = 20000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=600),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=600, end=max_iters,
         eta_min=0.0),
]
model = dict(test_cfg=dict(use_rej=True))
train_dataloader = dict(
    dataset=dict(
        _delete_=True, type='GRefCOCODataset',
        data_root={{_base_.data_root}}, dataset_name='grefcoco',
        split_by='unc', split='train', data_prefix={{_base_.coco}},
        max_expressions_per_sample=5,
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='GRefCOCODataset',
        data_root={{_base_.data_root}}, dataset_name='grefcoco',
        split_by='unc', split='val', data_prefix={{_base_.coco}},
        test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric', gres=True)
test_evaluator = val_evaluator
