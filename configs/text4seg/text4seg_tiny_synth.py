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
# nearest upsample, vs GT): 51.4 at 8x8, 62.6 at 12x12, 69.3 at 16x16, 77.9 at
# 24x24, so 8x8 cannot reach 60 at all. The cost grows with the grid: mean
# R-RLE descriptor tokens 45 / 80 / 110 / 172 (tiny tokenizer), i.e.
# training sequences of 163 / 197 / 228 / 288 tokens on average (64 of them
# image tokens) and answers of 70 / 105 / 135 / 195 tokens, each one
# generation step at evaluation (max 170 at 16x16). 16x16 is
# the cheapest grid that leaves real room above 60, and the grid the paper
# uses.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthetic_refer.py'
]

image_size = 224
patch_size = 14
num_image_tokens = (image_size // patch_size // 2)**2  # 64 after pixel shuffle
grid_size = 16
tokenizer = dict(type='tiny_bpe', vocab_size=1024)
special_tokens = []  # Text4Seg adds no tokens

model = dict(
    type='RefSegmentor',
    data_preprocessor=dict(type='RefSegDataPreProcessor'),
    backbone=dict(
        type='InternVLBackbone',
        config=dict(
            vision_config=dict(
                hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                intermediate_size=512, image_size=image_size,
                patch_size=patch_size, norm_type='layer_norm',
                layer_scale_init_value=1.0),
            text_config=dict(
                model_type='qwen2', vocab_size=1024, hidden_size=256,
                intermediate_size=1024, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=1024, tie_word_embeddings=False),
            image_token_id=5,
            image_seq_length=num_image_tokens,
            downsample_ratio=0.5,
            tie_word_embeddings=False),
        tokenizer=tokenizer,
        extra_special_tokens=special_tokens,
        # Trained from scratch: nothing is frozen.
        freeze_vit=False, freeze_projector=False, freeze_llm=False),
    # The longest val answer is 170 tokens; generation also stops after
    # grid_size + 2 lines (a model that keeps writing rows).
    decode_head=dict(type='Text4SegHead', grid_size=grid_size,
                     max_new_tokens=256),
    lm_loss_weight=1.0)

answer = dict(type='Text4SegAnswer', grid_size=grid_size)
conversation = dict(
    type='BuildConversation', tokenizer=tokenizer,
    num_image_tokens=num_image_tokens, prompt_style='answer',
    extra_special_tokens=special_tokens)
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=image_size, mode='squash'),
    answer,
    conversation,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=image_size, mode='squash'),
    dict(answer, test_mode=True),
    dict(conversation, test_mode=True),
    dict(type='PackRefSegInputs'),
]
# One expression per conversation, as the reference trains.
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type={{_base_.dataset_type}}, data_root={{_base_.data_root}},
        dataset_name={{_base_.dataset_name}}, split_by='unc', split='train',
        data_prefix=dict(img_path={{_base_.img_prefix}}),
        max_expressions_per_sample=1, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type={{_base_.dataset_type}}, data_root={{_base_.data_root}},
        dataset_name={{_base_.dataset_name}}, split_by='unc', split='val',
        data_prefix=dict(img_path={{_base_.img_prefix}}), test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator

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
    visualization=dict(type='SegVisualizationHook', draw=False))
