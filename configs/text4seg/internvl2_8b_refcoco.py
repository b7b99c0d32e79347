# Text4Seg on InternVL2-8B, RES stage (the paper's Tables 1/3, ms-swift
# recipe): the model answers each expression with a 16x16 grid of semantic
# descriptors in R-RLE text; next-token loss only, no mask decoder.
#
# Recipe: LoRA r64 / alpha 128 / dropout 0.05 on every LLM linear, InternViT
# frozen; AdamW lr 2e-4, cosine, 3% warmup, no weight decay, grad clip 1.0;
# global batch 128 = 8 GPUs x 4 x accumulation 4; 33,925 optimizer steps
# (the reference run: 5 epochs of 2 passes over every train sentence of
# refcoco, refcoco+, refcocog and refclef, ~868k samples per epoch); bf16,
# max length 2048. Inference: greedy, nearest upsampling of the grid
# ("w/o refiner"); internvl2_8b_refcoco_sam.py tests with the SAM refiner.
#
# Differences from the reference: the MLP projector is frozen (the reference
# puts LoRA on it too); q/k/v get separate r64 adapters (the InternLM2
# checkpoint fuses them in one wqkv); a sample is one ref with a random one
# of its sentences, so refs with many sentences are not weighted up; the
# chat turns end with "<|im_end|>\n" (InternVL's own format; ms-swift omits
# the newline).
#
# Weights: a native transformers InternVL directory at `checkpoint` (InternLM2
# converted to Llama, e.g. by tools/model_converters/internvl_chat_to_hf.py);
# nothing is downloaded. The architecture below lets the model build on the
# meta device without it (tools/analysis_tools/model_summary.py).
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/refcoco_res.py'
]

checkpoint = 'checkpoints/InternVL2-8B-hf'
# InternVL2-8B = InternViT-300M-448px + internlm2_5-7b-chat (as Llama).
backbone_arch = dict(
    vision_config=dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, image_size=448, patch_size=14,
        norm_type='layer_norm', layer_norm_eps=1e-6,
        layer_scale_init_value=0.1, use_qk_norm=False,
        use_mean_pooling=True),
    text_config=dict(
        model_type='llama', vocab_size=92553, hidden_size=4096,
        intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, rms_norm_eps=1e-5, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=False),
    image_token_id=92546, image_seq_length=256, downsample_ratio=0.5,
    projector_hidden_act='gelu', vision_feature_layer=-1,
    vision_feature_select_strategy='default', tie_word_embeddings=False)
image_size = 448  # 1 tile of 448 px: a 16x16 token grid
grid_size = 16  # one descriptor per image token
special_tokens = []  # the descriptors are plain text
# InternVL2's (internlm2-chat) default system prompt, which ms-swift keeps.
system_message = ('你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，'
                  '英文名叫InternVL, 是一个有用无害的人工智能助手。')

model = dict(
    type='RefSegmentor',
    data_preprocessor=dict(type='RefSegDataPreProcessor',
                           pixel_dtype='bfloat16'),
    backbone=dict(
        type='InternVLBackbone',
        pretrained=checkpoint,  # its tokenizer too
        config=backbone_arch,
        extra_special_tokens=special_tokens,
        # The question and the descriptor answer come from Text4SegAnswer
        # (the answer is the GT mask); InternLM2 (as Llama) starts with <s>.
        processor=dict(prompt_style='answer', system_message=system_message,
                       bos=True, max_length=2048),
        freeze_vit=True, freeze_projector=True, freeze_llm=True,
        llm_lora=dict(r=64, lora_alpha=128, lora_dropout=0.05),
        gradient_checkpointing=True,
        torch_dtype='bfloat16',
        attn_implementation='sdpa'),
    decode_head=dict(
        type='Text4SegHead', grid_size=grid_size,
        # A 16x16 R-RLE answer is ~150 tokens on RefCOCO (a cell-by-cell
        # worst case ~2k); the reference allows 3069.
        max_new_tokens=2048),
    lm_loss_weight=1.0)

answer = dict(type='Text4SegAnswer', grid_size=grid_size)
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    # The grid covers the whole image, so the image is squashed to one
    # square tile as the reference does (no tiles, no padding).
    dict(type='InternVLImageTransform', image_size=image_size, mode='squash'),
    answer,
    dict(type='PackRefSegInputs'),
]
test_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=image_size, mode='squash'),
    dict(answer, test_mode=True),
    dict(type='PackRefSegInputs'),
]

data_root = {{_base_.data_root}}
coco = {{_base_.coco_prefix}}
# All four train sets concatenated (proportional to their size, as the
# reference's merged JSON); one expression per conversation.
refer_train_sets = [
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco',
         split_by='unc', split='train', data_prefix=coco),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco+',
         split_by='unc', split='train', data_prefix=coco),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcocog',
         split_by='umd', split='train', data_prefix=coco),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refclef',
         split_by='unc', split='train', data_prefix={{_base_.clef_prefix}}),
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedReferDataset', datasets=refer_train_sets,
                 sampling='concat', pipeline=train_pipeline))
# Evaluates RefCOCO val; pick another split with e.g.
#   --cfg-options test_dataloader.dataset.dataset_name=refcoco+ \
#                 test_dataloader.dataset.split=testA
val_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RefCOCODataset', data_root=data_root,
                 dataset_name='refcoco', split_by='unc', split='val',
                 data_prefix=coco, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator

# Iterations count micro-batches: 33,925 optimizer steps x 4 accumulations.
accumulative_counts = 4
max_iters = 33925 * accumulative_counts
warmup_iters = int(0.03 * max_iters)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.0),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=accumulative_counts)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0),
]
# Generation over 10k+ val queries is slow: validate at the end only.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50),
    # The reference saves every 500 optimizer steps.
    checkpoint=dict(interval=500 * accumulative_counts, max_keep_ckpts=2),
    visualization=dict(type='RefSegVisualizationHook', draw=False))
