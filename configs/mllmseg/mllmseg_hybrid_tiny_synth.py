# HYBRID, not MLLMSeg as released: MLLMSeg's DSFF neck and light mask
# decoder on a tiny random InternVL trained from scratch on CPU on the
# synthetic REFER dataset (README quick start), with three aids that the
# released model and mllmseg_tiny_synth.py (the pure tiny MLLMSeg) do not
# have:
#   1. the expression comes before the image (processor question_first),
#      and the LLM image states are read in place (image_state_offset=0);
#   2. the LLM runs SELF1E's dual-perception mask (image tokens see each
#      other both ways and [SEG]; decode_head dual_perception=True);
#   3. a training-only auxiliary head on the LLM image states
#      (LLMStateAuxHead, SELF1E's auxiliary loss; never used to predict).
# A pretrained LLM reads the question anyway, and released checkpoints
# expect the released order, so the 1B-8B configs have none of them.
# Measured (600 val expressions, 2 CPU cores): aids 1-2 with bfloat16
# autocast and a cosine fitted to 30 CPU minutes took real / shuffled cIoU
# from 47.5 / 14.8 (released order, float32, constant LR, 300 expressions)
# to 58.7 / 11.0 after 30 minutes; aid 3 then to 70.6 / 5.8 and 70.6 / 6.3
# in two 30-minute runs (README, "Results").
_base_ = ['./mllmseg_tiny_synth.py']

model = dict(
    backbone=dict(processor=dict(question_first=True),
                  image_state_offset=0),
    decode_head=dict(dual_perception=True),
    # Training only: a coarse mask read linearly from the LLM image states
    # (SELF1E's auxiliary loss), so the LLM learns which cells an
    # expression picks with a direct signal; never used to predict.
    auxiliary_head=dict(type='LLMStateAuxHead', embed_dims=128, upsample=2))
