# Text4Seg on InternVL2-8B, GRES stage on gRefCOCO (the paper's Table 2):
# continues from the RES checkpoint (set load_from) for 6,476 optimizer
# steps at global batch 128 (the reference: 2 passes over the train
# sentences, 2 epochs), same optimiser and schedule shape as the RES stage.
# Multi-target expressions are the union of their objects, no-target ones
# an all-"others" grid; at test an all-"others" answer is the no-target
# prediction, so N-acc/T-acc come straight from the text.
# Difference from the reference: it merges the RES LoRA into the weights and
# trains a fresh r64 LoRA; here the RES LoRA keeps training.
_base_ = ['./internvl2_8b_refcoco.py']
load_from = 'work_dirs/internvl2_8b_refcoco/iter_135700.pth'

accumulative_counts = 4
max_iters = 6476 * accumulative_counts
warmup_iters = int(0.03 * max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
train_dataloader = dict(
    dataset=dict(
        _delete_=True, type='GRefCOCODataset',
        data_root={{_base_.data_root}}, dataset_name='grefcoco',
        split_by='unc', split='train', data_prefix={{_base_.coco}},
        pipeline={{_base_.train_pipeline}}))
# Splits: val, testA, testB.
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='GRefCOCODataset',
        data_root={{_base_.data_root}}, dataset_name='grefcoco',
        split_by='unc', split='val', data_prefix={{_base_.coco}},
        test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric', gres=True)
test_evaluator = val_evaluator
