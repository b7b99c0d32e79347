# Released SELF1E-8B weights (InternVL3-8B based; HF/ModelScope
# UltraDoughnut/SELF1E, exact file list unconfirmed) on RefCOCO val with
# SELF1E's own protocol, which is per-expression: one conversation per
# sentence, "What is {s} in this image? Please output segmentation mask."
# answered "[SEG]." teacher-forced, mask = logit > 0 after the bilinear
# resize, cIoU = sum I / sum U, gIoU = mean over expressions (SELF1E's
# own test). Other splits: --cfg-options test_dataloader.dataset.dataset_name=...
#
# SELF1E checkpoints ship no tokenizer: convert with the base model's.
#   python tools/model_converters/self1e_to_mmrefseg.py \
#       checkpoints/SELF1E-8B checkpoints/SELF1E-8B-mmrefseg \
#       --tokenizer-from checkpoints/InternVL3-8B
#   python tools/test.py configs/self1e/released/self1e_8b.py \
#       checkpoints/SELF1E-8B-mmrefseg/mmrefseg.pth
# Evaluation only: the LoRAs are merged into the released weights.
_base_ = ['../internvl3_8b_refcoco.py']
checkpoint = 'checkpoints/SELF1E-8B-mmrefseg/hf'
tokenizer = checkpoint
model = dict(
    backbone=dict(
        pretrained=checkpoint, tokenizer=tokenizer,
        # The converter's overrides (its cfg_options.txt): h_seg is the
        # state before [SEG], image states are read in place, and the
        # trained [SEG]/[SEGT] rows are kept.
        seg_state_offset=-1, image_state_offset=0,
        init_new_token_rows=False,
        # 151674 + [SEG] + [SEGT]; only read when built without weights.
        config=dict(text_config=dict(vocab_size=151676)),
        llm_lora=None, vit_lora=None, freeze_projector=True,
        train_new_token_rows=False, gradient_checkpointing=False))
# Restated: the pipelines carry the tokenizer, which must be the converted
# one (it registers [SEG]/[SEGT] at the checkpoint's last two rows).
conversation = dict(
    type='BuildConversation', tokenizer=tokenizer,
    num_image_tokens={{_base_.num_image_tokens}}, prompt_style='self1e',
    extra_special_tokens={{_base_.special_tokens}},
    system_message={{_base_.system_message}}, bos=False)
train_pipeline = [
    dict(type='LoadRefImage'), dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=448, mode='squash'),
    conversation, dict(type='PackRefSegInputs')
]
test_pipeline = [
    dict(type='LoadRefImage'), dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=448, mode='squash'),
    dict(conversation, test_mode=True), dict(type='PackRefSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
