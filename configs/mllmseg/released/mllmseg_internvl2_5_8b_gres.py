# Released MLLMSeg InternVL2.5-8B GRES weights (HF jcwang0602/
# MLLMSeg_InternVL2_5_8B_GRES) on gRefCOCO val, clean per-expression
# protocol: one sample per (ref, sentence), "[SEG]" teacher-forced, "no
# target" where the model prefers [REJ] over [SEG] at the slot (its mask is
# then empty), ReLA's GRES rule. For the protocol of the MLLMSeg paper's
# gRefCOCO table use mllmseg_internvl2_5_8b_gres_paper_eval.py.
#
#   python tools/model_converters/mllmseg_to_mmrefseg.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_GRES \
#       checkpoints/MLLMSeg_InternVL2_5_8B_GRES-mmrefseg
#   python tools/test.py \
#       configs/mllmseg/released/mllmseg_internvl2_5_8b_gres.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_GRES-mmrefseg/mmrefseg.pth
# Evaluation only: the LoRA is merged into the released weights.
_base_ = ['../internvl8b_grefcoco.py']
checkpoint = 'checkpoints/MLLMSeg_InternVL2_5_8B_GRES-mmrefseg/hf'
load_from = None
model = dict(
    backbone=dict(
        pretrained=checkpoint,  # its tokenizer too
        # The converter's overrides (see mllmseg_internvl2_5_8b_res.py).
        seg_state_offset=-1, image_state_offset=-1,
        init_new_token_rows=False,
        config=dict(text_config=dict(vocab_size=92555)),
        llm_lora=None, train_new_token_rows=False,
        gradient_checkpointing=False))
