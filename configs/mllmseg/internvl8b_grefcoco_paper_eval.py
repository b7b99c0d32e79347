# MLLMSeg on InternVL2.5-8B, GRES on gRefCOCO, evaluated with the papers'
# protocol (MLLMSeg's test_mllmseg_gres.py):
# - one sample per image with all its sentences, the teacher-forced answer
#   written with the GROUND-TRUTH token of each expression ("{s}:[REJ]" for
#   an empty target, "{s}:[SEG]" otherwise);
# - "no target" is decided where the argmax over the whole vocabulary at the
#   token before each slot is [REJ] (slot k sees the GT tokens of slots < k:
#   the protocol's label leakage, kept to reproduce the table);
# - a second "reeval" forward with every [REJ] replaced by [SEG] gives the
#   masks of all expressions; a predicted-no-target mask is kept;
# - GSVA/MLLMSeg GRES rule: a false "no target" on a non-empty GT still has
#   its mask scored; N-acc / T-acc from the decisions, gIoU over all
#   expressions, cIoU = sum I / sum U.
# This is the protocol of MLLMSeg's published gRefCOCO table (read gres_gIoU,
# gres_cIoU, N-acc). internvl8b_grefcoco.py is the clean protocol (one
# expression per sample, [SEG] teacher-forced, decision from the model's
# [REJ]-vs-[SEG] preference, ReLA rule).
_base_ = ['./internvl8b_grefcoco.py']
model = dict(
    backbone=dict(processor=dict(test_prompt_style='mllmseg_paper_eval',
                                 test_reject_no_target=True)),
    test_cfg=dict(use_rej=True, rej_decision='argmax_teacher_forced',
                  keep_rejected_masks=True, resize='probs'))
val_dataloader = dict(batch_size=1, dataset=dict(test_grouping='image_one_prompt'))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='RefSegMetric', gres=True, gres_rule='mllmseg', giou_mode='image',
    rec_iou_rule='>', rec_box_style='mllmseg')
test_evaluator = val_evaluator
