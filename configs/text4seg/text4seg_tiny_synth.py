# Text4Seg with a tiny random InternVL, trained from scratch on CPU on the
# synthetic REFER dataset: the model answers with a 16x16 grid of semantic
# descriptors in R-RLE text; no mask decoder, only the next-token loss.
#
#   python benchmarks/grounding_curve.py \
#       configs/text4seg/text4seg_tiny_synth.py
#
# Grid choice: the 224 px tile has 16x16 ViT patches (8x8 LLM tokens after
# pixel shuffle), so a 16x16 grid gives one cell per 14 px patch. The grid
# itself caps cIoU on the first 600 synthetic val expressions (GT -> grid ->
# nearest upsample, vs GT): 51.6 at 8x8, 62.7 at 12x12, 69.3 at 16x16, 78.0 at
# 24x24, so 8x8 cannot reach 60 at all. The cost grows with the grid: mean
# R-RLE descriptor tokens 45 / 80 / 110 / 172 (tiny tokenizer), i.e.
# training sequences of 163 / 197 / 228 / 288 tokens on average (64 of them
# image tokens) and answers of 70 / 105 / 135 / 195 tokens, each one
# generation step at evaluation (max 170 at 16x16). 16x16 is
# the cheapest grid that leaves real room above 60, and the grid the paper
# uses.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthetic_refer.py',
    '../_base_/models/tiny_internvl.py'
]

grid_size = 16
model = dict(
    backbone=dict(
        extra_special_tokens=[],  # Text4Seg adds no tokens
        # The question and the descriptor answer come from Text4SegAnswer.
        processor=dict(prompt_style='answer')),
    # The longest val answer is 170 tokens; generation also stops after
    # grid_size + 2 lines (a model that keeps writing rows).
    decode_head=dict(type='Text4SegHead', grid_size=grid_size,
                     max_new_tokens=256))

answer = dict(type='Text4SegAnswer', grid_size=grid_size)
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=224, mode='squash'),
    answer,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=224, mode='squash'),
    dict(answer, test_mode=True),
    dict(type='PackRefSegInputs'),
]
# One expression per conversation, as the reference trains.
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch a tiny LM wants many small steps: batch 8 at lr 1e-3.
max_iters = 4000
warmup_iters = 50
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98),
                   weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1000, max_keep_ckpts=1),
    visualization=dict(type='RefSegVisualizationHook', draw=False))
