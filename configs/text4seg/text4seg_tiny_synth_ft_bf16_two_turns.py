# Text4Seg stage 2 (text4seg_tiny_synth_ft_bf16.py) with two expressions of
# one image per training conversation: turn 1 asks about one ref of the
# image, turn 2 about another, the image tokens only in turn 1. This is the
# paper's LLaVA-1.5 data (two-turn conversations per image and ref); its
# InternVL recipe, which the base config follows, has one turn.
#
# Why: the image (ViT, loading, 64 image tokens in the LLM) is paid once
# for two answers. Four conversations per step hold the base's eight
# expressions. Evaluation is unchanged: one expression per conversation.
#
#   OMP_WAIT_POLICY=ACTIVE OMP_NUM_THREADS=2 python tools/train.py \
#       configs/text4seg/text4seg_tiny_synth_ft_bf16_two_turns.py
_base_ = ['./text4seg_tiny_synth_ft_bf16.py']

answer = dict(type='Text4SegAnswer', grid_size=8, turns=2)
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=224, mode='squash'),
    answer,
    dict(type='PackRefSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(max_expressions_per_sample=2, pipeline=train_pipeline))
