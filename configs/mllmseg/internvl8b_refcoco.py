# MLLMSeg on InternVL2.5-8B, RES stage (see _base_/mllmseg_res_recipe.py).
# Weights: a native HF InternVL directory at `checkpoint` (e.g. converted by
# tools/model_converters/internvl_chat_to_hf.py); nothing is downloaded.
_base_ = [
    './_base_/mllmseg_res_recipe.py', '../_base_/models/internvl2_5_8b.py'
]
tokenizer = {{_base_.checkpoint}}
model = dict(
    backbone=dict(pretrained={{_base_.checkpoint}},
                  config={{_base_.backbone_arch}}, tokenizer=tokenizer))
conversation = dict(
    type='BuildConversation', tokenizer=tokenizer,
    num_image_tokens={{_base_.num_image_tokens}}, prompt_style='mllmseg',
    extra_special_tokens={{_base_.special_tokens}},
    system_message={{_base_.system_message}},
    bos=True)  # InternLM2 (as Llama) starts with <s>; Qwen2 does not
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
