# SELF1E-8B, LoRA fine-tuning of the *released* weights on your own data
# (docs/custom_data.md). Convert the release once (it ships no tokenizer):
#   python tools/model_converters/self1e_to_mmrefseg.py \
#       checkpoints/SELF1E-8B checkpoints/SELF1E-8B-mmrefseg \
#       --tokenizer-from checkpoints/InternVL3-8B
# Its hf/ folder (released LoRAs merged, trained [SEG]/[SEGT] rows) is the
# backbone; its mmrefseg.pth (the SELF1E head) is loaded through load_from.
# Fresh LoRAs (the recipe's r128/alpha256 on LLM and ViT), the projector
# and the [SEG]/[SEGT] rows train on top. Scale train_cfg.max_iters.
_base_ = ['../self1e/released/self1e_8b.py']
load_from = 'checkpoints/SELF1E-8B-mmrefseg/mmrefseg.pth'
# _delete_: the released config sets the LoRAs to None.
lora = dict(_delete_=True, r=128, lora_alpha=256, lora_dropout=0.05)
model = dict(
    backbone=dict(
        llm_lora=lora, vit_lora=lora, freeze_projector=False,
        train_new_token_rows=True, gradient_checkpointing=True))
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
