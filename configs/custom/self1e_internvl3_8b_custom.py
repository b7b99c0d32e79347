# SELF1E on InternVL3-8B, LoRA fine-tuning on your own data: a refseg JSON
# Lines file (docs/custom_data.md), starting from the base InternVL3 weights.
# Everything but the data comes from the method config (LoRA r128/alpha256
# on the LLM and the ViT, projector and SELF1E MLPs trained, only the
# [SEG]/[SEGT] rows of the embedding and LM head trained, pipelines and
# schedule): only the datasets of the dataloaders are replaced. Scale
# train_cfg.max_iters (3,600 there) and val_interval to your data.
_base_ = ['../self1e/internvl3_8b_refcoco.py']
custom_root = 'data/my_refseg'
train_dataloader = dict(
    dataset=dict(
        datasets=[
            dict(type='RefSegJsonlDataset', data_root=custom_root,
                 ann_file='train.jsonl', split=None,
                 max_expressions_per_sample=1)
        ]))
val_dataloader = dict(
    dataset=dict(
        type='RefSegJsonlDataset', data_root=custom_root,
        ann_file='val.jsonl', split=None, dataset_name='custom',
        data_prefix=dict(_delete_=True, img_path='', mask_path='')))
test_dataloader = val_dataloader
