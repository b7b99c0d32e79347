# The tiny CPU MLLMSeg of configs/mllmseg/mllmseg_tiny_synth.py (random
# weights, trained from scratch; see its departures from the paper) on a
# refseg JSON Lines file: the example of docs/custom_data.md, i.e. the
# synthetic dataset converted by
# tools/dataset_converters/refer_to_refseg_jsonl.py. Only the datasets of
# the dataloaders change.
_base_ = ['../mllmseg/mllmseg_tiny_synth.py']
custom_root = 'data/refseg_example'
custom_dataset = dict(
    type='RefSegJsonlDataset', data_root=custom_root,
    ann_file='refseg.jsonl', dataset_name='custom',
    data_prefix=dict(_delete_=True, img_path='', mask_path=''))
train_dataloader = dict(dataset=dict(custom_dataset, split='train'))
val_dataloader = dict(dataset=dict(custom_dataset, split='val'))
test_dataloader = val_dataloader
# float32: bfloat16 autocast is ~30x slower than float32 on CPUs without
# AMX / AVX512-BF16 (measured on the AVX2-only machine of the guide), where
# the base config's AutocastOptimWrapper would turn seconds into minutes.
optim_wrapper = dict(type='OptimWrapper')
