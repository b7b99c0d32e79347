# The README quick start's model: mllmseg_hybrid_tiny_synth.py at 168 px
# instead of 224 px (12 x 12 ViT patches, 36 LLM image tokens instead of
# 64) with a 30-iteration warm-up instead of 100 and no cosine, so that a few hundred
# iterations fit in a few minutes on 2 CPU cores. Measured on the same
# machine: 168 px halves the CPU time of a training step (2.5 against
# 5.0 CPU-seconds at batch 32); the synthetic objects stay several patches
# wide. tools/quickstart.py trains it for a fixed number of iterations.
_base_ = ['./mllmseg_hybrid_tiny_synth.py']

image_size = 168
patch_size = 14
model = dict(
    backbone=dict(config=dict(
        vision_config=dict(image_size=image_size),
        image_seq_length=(image_size // patch_size // 2)**2)))

pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=image_size,
         mode='squash'),
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader

# Warm up for 30 iterations, then a constant LR: exactly what
# tools/quickstart.py (benchmarks/grounding_curve.py) trains with, so
# tools/train.py on this config reproduces the quick start's model.
max_iters = 250
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=30),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
