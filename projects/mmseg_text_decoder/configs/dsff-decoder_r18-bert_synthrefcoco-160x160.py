# MLLMSeg's DSFF neck and light mask decoder inside a plain MMSeg
# EncoderDecoder, with no LLM: an MMSeg ResNet-18 (half width, random init)
# gives the two feature levels that take the place of the ViT and LLM image
# states, and a 2-layer BERT built from its config (random init, the
# project's tiny BPE tokenizer, no download) gives the sentence state that
# takes the place of [SEG]. Trained from scratch on CPU on the synthetic
# REFER dataset, scored by RefSegMetric. Not a paper model: every size is
# chosen to train on 2 CPU cores (projects/mmseg_text_decoder/README.md).
default_scope = 'mmseg'
custom_imports = dict(imports=['mmrefseg'], allow_failed_imports=False)

data_root = 'data/synthetic'
image_size = 160
tokenizer = dict(type='tiny_bpe', vocab_size=1024)
# ResNet levels read by the head: stride 8 (ViT's place) and stride 16 (the
# LLM image states' place, half the resolution as in InternVL).
stage_channels = (32, 64, 128)
fine_level, coarse_level = 1, 2
fine_stride = 8
embed_dims = 64

model = dict(
    type='mmrefseg.TextEncoderDecoder',
    data_preprocessor=dict(
        type='mmrefseg.ImageTextDataPreProcessor', tokenizer=tokenizer,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        max_length=24),
    # Three stages: the stride-32 one would be computed and never read.
    backbone=dict(
        type='ResNet', depth=18, num_stages=3, strides=(1, 2, 2),
        dilations=(1, 1, 1), stem_channels=stage_channels[0],
        base_channels=stage_channels[0], out_indices=(0, 1, 2),
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
        style='pytorch'),
    text_encoder=dict(
        type='mmrefseg.HFTextEncoder', tokenizer=tokenizer, pooling='mean',
        config=dict(model_type='bert', hidden_size=128, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=256,
                    max_position_embeddings=64, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)),
    decode_head=dict(
        type='mmrefseg.TextQueryDecodeHead',
        in_channels=[stage_channels[fine_level],
                     stage_channels[coarse_level]],
        in_index=[fine_level, coarse_level],
        fusion=dict(type='mmrefseg.DSFFNeck', embed_dims=embed_dims,
                    num_heads=4, ffn_channels=128, dropout=0.0,
                    scale_factor=2),
        # From scratch the last bias starts at the foreground prior (see
        # LightMaskDecoderHead.mask_prior_prob).
        mask_decoder=dict(type='mmrefseg.LightMaskDecoderHead',
                          num_heads=4, ffn_channels=128, dropout=0.0,
                          patch_size=fine_stride, mask_prior_prob=0.05)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', threshold=0.5))

# Resize before LoadRefMasks: masks and boxes stay at the original size
# (the losses resize the logits to them, the segmentor its predictions).
train_pipeline = [
    dict(type='mmrefseg.LoadRefImage'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False),
    dict(type='mmrefseg.LoadRefMasks'),
    dict(type='mmrefseg.PackRefImageInputs'),
]
test_pipeline = train_pipeline
refer_data = dict(
    type='mmrefseg.RefCOCODataset', data_root=data_root,
    dataset_name='synthrefcoco', split_by='unc',
    data_prefix=dict(img_path='images/synthetic'))
# Several expressions of one image per sample: one backbone pass serves
# them all, and different expressions of the same image need different
# masks, which only reading the text can give.
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(refer_data, split='train', max_expressions_per_sample=4,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(refer_data, split='val', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmrefseg.RefSegMetric')
test_evaluator = val_evaluator

max_iters = 800
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100,
         end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends,
                  name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500,
                    max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False))
randomness = dict(seed=42)
