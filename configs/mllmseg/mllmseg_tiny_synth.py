# MLLMSeg as released, at toy size: MLLMSeg's DSFF neck and light mask
# decoder on a tiny random InternVL trained from scratch on CPU on the
# synthetic REFER dataset. Released prompt order (image first, "Sure, they
# are {s}:[SEG]."), causal LLM attention, MLLMSeg's -1 shift of the LLM
# image states, no auxiliary head. mllmseg_hybrid_tiny_synth.py adds
# SELF1E's aids to it (question first, dual-perception mask, auxiliary loss
# on the LLM states); the two curves show what the aids buy:
#   python benchmarks/grounding_curve.py \
#       configs/mllmseg/mllmseg_tiny_synth.py --iters 1300
# The only departure from the released recipe that training from scratch
# needs: the decoder's bias starts at the foreground prior. The optimiser
# and schedule are the hybrid's.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthetic_refer.py',
    '../_base_/models/tiny_internvl.py'
]

model = dict(
    backbone=dict(
        extra_special_tokens=['[SEG]', '[REJ]'],
        processor=dict(prompt_style='mllmseg'),
        seg_state_offset=-1, image_state_offset=-1),
    neck=dict(type='DSFFNeck', embed_dims=128, num_heads=4, ffn_channels=128,
              dropout=0.0),
    # From scratch the final bias must start at the foreground prior, or
    # the BatchNorm'd mask map needs thousands of steps to turn negative.
    decode_head=dict(type='LightMaskDecoderHead', embed_dims=128,
                     num_heads=4, ffn_channels=128, dropout=0.0,
                     mask_prior_prob=0.05),
    test_cfg=dict(mode='teacher_forced'))

# bfloat16 autocast on the CPU (parameters stay float32): 1.1 s/iteration
# on 2 Intel cores with AMX (1,588 iterations in 30 minutes), 1.4 s on 2
# AMD Zen 4 cores with AVX512-BF16 (1,230-1,242). The cosine ends near what
# the slower machine holds in 30 minutes; a faster one spends the rest of
# the budget at the floor LR.
max_iters = 1300
optim_wrapper = dict(
    type='AutocastOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters,
         eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=500, max_keep_ckpts=1),
    visualization=dict(type='RefSegVisualizationHook', draw=False))
