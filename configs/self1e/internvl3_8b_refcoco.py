# SELF1E on InternVL3-8B, referring segmentation (see _base_/self1e_recipe.py).
# Weights: a native HF InternVL directory at `checkpoint` (e.g. the published
# OpenGVLab/InternVL3-8B-hf, or tools/model_converters/internvl_chat_to_hf.py
# applied to OpenGVLab/InternVL3-8B); nothing is downloaded. For released
# SELF1E weights see tools/model_converters/self1e_to_mmrefseg.py.
_base_ = ['./_base_/self1e_recipe.py', '../_base_/models/internvl3_8b.py']
tokenizer = {{_base_.checkpoint}}
model = dict(
    backbone=dict(pretrained={{_base_.checkpoint}},
                  config={{_base_.backbone_arch}}, tokenizer=tokenizer))
conversation = dict(
    type='BuildConversation', tokenizer=tokenizer,
    num_image_tokens={{_base_.num_image_tokens}}, prompt_style='self1e',
    extra_special_tokens={{_base_.special_tokens}},
    system_message={{_base_.system_message}},
    bos=False)  # Qwen2.5 has no BOS
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
