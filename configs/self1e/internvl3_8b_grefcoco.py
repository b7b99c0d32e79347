# SELF1E on InternVL3-8B with gRefCOCO (generalized referring segmentation).
# SELF1E has no no-target token: a no-target expression is answered "[SEG]."
# like any other and trained towards an empty mask (its GT is all zeros), and
# multi-target GT is the union of the targets. At test an empty predicted
# mask means "no target" (pred_no_target), which GRES N-acc/T-acc read.
# gRefCOCO is added to the refer mix, as the original's --refer_seg_data
# option does; evaluation is on gRefCOCO val (cIoU, gIoU, N-acc, T-acc).
_base_ = ['./internvl3_8b_refcoco.py']
data_root = {{_base_.data_root}}
coco = {{_base_.coco}}
refer_train_sets = [
    dict(type='RefCOCODataset', data_root=data_root, dataset_name=name,
         split_by=split_by, split='train', data_prefix=prefix,
         max_expressions_per_sample=1)
    for name, split_by, prefix in (
        ('refclef', 'unc', {{_base_.clef_prefix}}),
        ('refcoco', 'unc', coco), ('refcoco+', 'unc', coco),
        ('refcocog', 'umd', coco))
] + [
    dict(type='GRefCOCODataset', data_root=data_root,
         dataset_name='grefcoco', split_by='unc', split='train',
         data_prefix=coco, max_expressions_per_sample=1)
]
train_dataloader = dict(dataset=dict(datasets=refer_train_sets))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='GRefCOCODataset',
        data_root={{_base_.data_root}}, dataset_name='grefcoco',
        split_by='unc', split='val', data_prefix={{_base_.coco}},
        test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric', gres=True)
test_evaluator = val_evaluator
