# Released MLLMSeg InternVL2.5-8B RES weights (HF jcwang0602/
# MLLMSeg_InternVL2_5_8B_RES), clean per-expression protocol: one sample per
# (ref, sentence), the training-format question with "Sure, they are
# {s}:[SEG]." teacher-forced, LISA cIoU/gIoU, COCO-style REC boxes.
# For the protocol of the MLLMSeg paper's tables use
# mllmseg_internvl2_5_8b_res_paper_eval.py.
#
# Convert once (no cfg-options needed afterwards; the converter's overrides
# are written below):
#   python tools/model_converters/mllmseg_to_mmrefseg.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg
#   python tools/test.py \
#       configs/mllmseg/released/mllmseg_internvl2_5_8b_res.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg/mmrefseg.pth
# Evaluation only: the LoRA is merged into the released weights.
_base_ = ['../internvl8b_refcoco.py']
checkpoint = 'checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg/hf'
model = dict(
    backbone=dict(
        pretrained=checkpoint,  # its tokenizer too
        # The converter's overrides (its cfg_options.txt): the LISA [SEG]
        # query, MLLMSeg's -1 shift of the LLM image states, and the trained
        # [SEG]/[REJ] rows kept as they are.
        seg_state_offset=-1, image_state_offset=-1,
        init_new_token_rows=False,
        # 92553 + [SEG] + [REJ]; only read when built without weights
        # (tools/analysis_tools/model_summary.py).
        config=dict(text_config=dict(vocab_size=92555)),
        llm_lora=None, train_new_token_rows=False,
        gradient_checkpointing=False))
