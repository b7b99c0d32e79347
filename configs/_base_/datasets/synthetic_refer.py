# The embedded synthetic referring dataset, written in the REFER layout by
#   python tools/dataset_converters/generate_synthetic_refer.py --out data/synthetic
# and read by the same RefCOCODataset class as real RefCOCO; loaders for the
# tiny 224 px models (_base_/models/tiny_internvl.py), one expression per
# conversation (with several, each [SEG] state has to pick its own
# expression out of a list, which delayed grounding on CPU).
data_root = 'data/synthetic'
dataset_type = 'RefCOCODataset'
dataset_name = 'synthrefcoco'
img_prefix = 'images/synthetic'
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=224, mode='squash'),
    dict(type='PackRefSegInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type, data_root=data_root, dataset_name=dataset_name,
        split_by='unc', split='train', data_prefix=dict(img_path=img_prefix),
        max_expressions_per_sample=1, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type, data_root=data_root, dataset_name=dataset_name,
        split_by='unc', split='val', data_prefix=dict(img_path=img_prefix),
        test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator
