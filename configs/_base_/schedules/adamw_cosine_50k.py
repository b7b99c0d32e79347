# MLLMSeg's RES schedule: AdamW 4e-5, cosine, 3% warmup, wd 0.05, 50k iters,
# global batch 32 (4 GPUs x 4 x grad-accum 2), bf16, grad clip 1.0.
max_iters = 50000
warmup_iters = 1500
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=2,
    paramwise_cfg=dict(
        custom_keys=dict(new_rows=dict(decay_mult=0.0),
                         norm=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
