# MLLMSeg RES recipe shared by every backbone size (the paper's recipe).
# LoRA r64/alpha128 on the LLM (ViT and projector frozen, only the [SEG]/[REJ]
# embedding rows trained), AdamW 4e-5 cosine, wd 0.05, global batch 32
# (4 GPUs x 4 x accumulation 2; scale accumulative_counts for other GPU
# counts), 50k iterations, bf16, RefCOCO/+/g/refclef with <= 5 expressions
# per sample. Evaluates RefCOCO val by default; pick the split with e.g.
#   --cfg-options test_dataloader.dataset.dataset_name=refcoco+ \
#                 test_dataloader.dataset.split=testA
# A size config only names its model base and passes its backbone entry
# (pretrained, config, bos):  model = dict(backbone={{_base_.backbone}}).
# The conversation (tokenizer, chat template, prompt) belongs to the
# backbone's processor; the pipelines below carry no tokenizer.
_base_ = [
    '../../_base_/default_runtime.py', '../../_base_/datasets/refcoco_res.py',
    '../../_base_/schedules/adamw_cosine_50k.py'
]
image_size = 448
special_tokens = ['[SEG]', '[REJ]']
# InternVL2.5's default system prompt (internvl2_5 template).
system_message = ('你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位'
                  '联合开发的多模态大语言模型。')

model = dict(
    type='RefSegmentor',
    data_preprocessor=dict(type='RefSegDataPreProcessor',
                           pixel_dtype='bfloat16'),
    backbone=dict(
        type='InternVLBackbone',
        extra_special_tokens=special_tokens,
        processor=dict(prompt_style='mllmseg', system_message=system_message),
        freeze_vit=True, freeze_projector=True, freeze_llm=True,
        train_new_token_rows=True,
        llm_lora=dict(r=64, lora_alpha=128, lora_dropout=0.05),
        gradient_checkpointing=True,
        torch_dtype='bfloat16',
        attn_implementation='sdpa',
        # Released-checkpoint parity: [SEG] query = state before [SEG],
        # LLM image features read at positions shifted by -1.
        seg_state_offset=-1, image_state_offset=-1),
    neck=dict(type='DSFFNeck', embed_dims=1024, num_heads=8,
              ffn_channels=1024, dropout=0.1),
    decode_head=dict(type='LightMaskDecoderHead', embed_dims=1024,
                     num_heads=8, ffn_channels=1024, dropout=0.1),
    lm_loss_weight=1.0,
    test_cfg=dict(mode='teacher_forced', use_rej=False))

train_pipeline = [
    dict(type='LoadRefImage'), dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=image_size, mode='squash'),
    dict(type='PackRefSegInputs')
]
test_pipeline = train_pipeline
data_root = {{_base_.data_root}}
coco = {{_base_.coco_prefix}}
# One dataset drawn uniformly per sample (as MLLMSeg does), up to 5
# expressions of one image per conversation.
refer_train_sets = [
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refclef',
         split_by='unc', split='train', data_prefix={{_base_.clef_prefix}},
         max_expressions_per_sample=5),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco',
         split_by='unc', split='train', data_prefix=coco,
         max_expressions_per_sample=5),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcoco+',
         split_by='unc', split='train', data_prefix=coco,
         max_expressions_per_sample=5),
    dict(type='RefCOCODataset', data_root=data_root, dataset_name='refcocog',
         split_by='umd', split='train', data_prefix=coco,
         max_expressions_per_sample=5),
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedReferDataset', datasets=refer_train_sets,
                 sampling='uniform', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RefCOCODataset', data_root=data_root,
                 dataset_name='refcoco', split_by='unc', split='val',
                 data_prefix=coco, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator
