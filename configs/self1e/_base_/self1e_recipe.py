# SELF1E recipe shared by every InternVL3 size (SELF1E's training script):
# LoRA r128/alpha256/dropout 0.05 on the LLM and the ViT, projector (mlp1) and
# the three new MLPs fully trained; AdamW 1e-4, betas (0.9, 0.95), no weight
# decay, grad clip 1.0; linear warmup over 100 steps then linear decay to 0;
# bf16; one 448 px tile per image (no thumbnail); CE + 2 BCE + 0.5 Dice on the
# full and the auxiliary logits.
#
# Batch: the original draws 5 images per GPU, each giving <= 3 conversation
# rows (one expression each), over 4 GPUs with 8 accumulation steps (160
# images, ~480 rows). Here a sample is one conversation with one expression
# (max_expressions_per_sample=1, so the evaluation answer "[SEG]." is a
# trained form), hence 15 rows per GPU: 4 x 15 x 8 = 480 rows per step.
# Scale accumulative_counts for other GPU counts.
#
# Data: the refer part of SELF1E's mix (refclef, RefCOCO, RefCOCO+, RefCOCOg
# train, concatenated); its semantic-segmentation, ReasonSeg and VQA parts
# have no loader here. Length: 3600 steps, the step count of the original
# "base" 1-epoch run. Evaluates RefCOCO val by default; pick the split with
#   --cfg-options test_dataloader.dataset.dataset_name=refcoco+ \
#                 test_dataloader.dataset.split=testA
# A size config adds the backbone (pretrained, config, tokenizer) and the
# pipelines, which carry the tokenizer.
_base_ = [
    '../../_base_/default_runtime.py', '../../_base_/datasets/refcoco_res.py'
]
image_size = 448
num_image_tokens = 256
# [SEG] then the unused [SEGT]: the released vocabulary is base + 2 rows.
special_tokens = ['[SEG]', '[SEGT]']
# The internvl2_5 template's system text, verbatim (sic).
system_message = 'You are an helpful assistant.'
lora = dict(r=128, lora_alpha=256, lora_dropout=0.05)

model = dict(
    type='RefSegmentor',
    data_preprocessor=dict(type='RefSegDataPreProcessor',
                           pixel_dtype='bfloat16'),
    backbone=dict(
        type='InternVLBackbone',
        extra_special_tokens=special_tokens,
        freeze_vit=True, freeze_projector=False, freeze_llm=True,
        # The original trains the whole embedding and LM head; here only the
        # rows of the added tokens (a deliberate deviation: 2 x 151k-row
        # matrices of optimizer state for two new tokens).
        train_new_token_rows=True,
        llm_lora=lora, vit_lora=lora,
        gradient_checkpointing=True,
        torch_dtype='bfloat16',
        # The dual-perception mask needs SDPA (bool mask) or eager.
        attn_implementation='sdpa',
        # h_seg = post-norm state of the token before [SEG]; image states
        # read in place.
        seg_state_offset=-1, image_state_offset=0),
    decode_head=dict(type='Self1EHead'),
    lm_loss_weight=1.0,
    test_cfg=dict(mode='teacher_forced'))

data_root = {{_base_.data_root}}
coco = {{_base_.coco_prefix}}
refer_train_sets = [
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refclef',
         split_by='unc', split='train', data_prefix={{_base_.clef_prefix}},
         max_expressions_per_sample=1),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco',
         split_by='unc', split='train', data_prefix=coco,
         max_expressions_per_sample=1),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco+',
         split_by='unc', split='train', data_prefix=coco,
         max_expressions_per_sample=1),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcocog',
         split_by='umd', split='train', data_prefix=coco,
         max_expressions_per_sample=1),
]
train_dataloader = dict(
    batch_size=15, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedReferDataset', datasets=refer_train_sets,
                 sampling='concat', pipeline=[]))
val_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RefCOCODataset', data_root=data_root,
                 dataset_name='refcoco', split_by='unc', split='val',
                 data_prefix=coco, test_mode=True, pipeline=[]))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator

max_iters = 3600
warmup_iters = 100
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                   weight_decay=0.0),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(interval=200, max_keep_ckpts=1))
