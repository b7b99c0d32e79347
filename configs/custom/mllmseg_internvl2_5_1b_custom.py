# MLLMSeg on InternVL2.5-1B, LoRA fine-tuning on your own data: a refseg JSON
# Lines file (docs/custom_data.md), starting from the base InternVL weights.
# Everything but the data comes from the method config (LoRA r64/alpha128 on
# the LLM, ViT and projector frozen, only the [SEG]/[REJ] rows of the
# embedding and LM head trained, pipelines and schedule): only the datasets
# of the dataloaders are replaced. Scale train_cfg.max_iters (50k there) and
# val_interval to your data, e.g. --cfg-options train_cfg.max_iters=2000.
# To keep RefCOCO in the mixture, put its sets back next to yours:
#   datasets=[*refer_train_sets, dict(type='RefSegJsonlDataset', ...)]
_base_ = ['../mllmseg/internvl1b_refcoco.py']
custom_root = 'data/my_refseg'
train_dataloader = dict(
    dataset=dict(
        sampling='concat',
        datasets=[
            dict(type='RefSegJsonlDataset', data_root=custom_root,
                 ann_file='train.jsonl', split=None,
                 max_expressions_per_sample=5)
        ]))
val_dataloader = dict(
    dataset=dict(
        type='RefSegJsonlDataset', data_root=custom_root,
        ann_file='val.jsonl', split=None, dataset_name='custom',
        data_prefix=dict(_delete_=True, img_path='', mask_path='')))
test_dataloader = val_dataloader
