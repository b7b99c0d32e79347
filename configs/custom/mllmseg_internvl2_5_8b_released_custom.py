# MLLMSeg InternVL2.5-8B, LoRA fine-tuning of the *released* RES weights on
# your own data (docs/custom_data.md). Convert the release once:
#   python tools/model_converters/mllmseg_to_mmrefseg.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg
# Its hf/ folder (ViT + LLM with the released LoRA merged and the trained
# [SEG]/[REJ] rows) is the backbone; its mmrefseg.pth (DSFF neck + mask
# decoder, nothing else) is loaded through load_from. A fresh LoRA (the
# recipe's r64/alpha128) and the [SEG]/[REJ] rows train on top, the rows
# starting from their released values. Scale train_cfg.max_iters.
_base_ = ['../mllmseg/released/mllmseg_internvl2_5_8b_res.py']
load_from = 'checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg/mmrefseg.pth'
model = dict(
    backbone=dict(
        llm_lora=dict(_delete_=True, r=64, lora_alpha=128,
                      lora_dropout=0.05),
        train_new_token_rows=True, gradient_checkpointing=True))
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
