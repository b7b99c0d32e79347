# The tiny CPU MLLMSeg hybrid of configs/mllmseg/mllmseg_hybrid_tiny_synth.py
# (random weights, trained from scratch; see its departures from the paper) on a
# refseg JSON Lines file: the example of docs/custom_data.md, i.e. the
# synthetic dataset converted by
# tools/dataset_converters/refer_to_refseg_jsonl.py. Only the datasets of
# the dataloaders change.
_base_ = ['../mllmseg/mllmseg_hybrid_tiny_synth.py']
custom_root = 'data/refseg_example'
custom_dataset = dict(
    type='RefSegJsonlDataset', data_root=custom_root,
    ann_file='refseg.jsonl', dataset_name='custom',
    data_prefix=dict(_delete_=True, img_path='', mask_path=''))
train_dataloader = dict(dataset=dict(custom_dataset, split='train'))
val_dataloader = dict(dataset=dict(custom_dataset, split='val'))
test_dataloader = val_dataloader
