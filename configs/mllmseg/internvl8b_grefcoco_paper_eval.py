# MLLMSeg on InternVL2.5-8B, GRES on gRefCOCO, evaluated with the papers'
# protocol (MLLMSeg's released test_mllmseg_gres.py):
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
paper_eval_conversation = dict(
    type='BuildConversation', tokenizer={{_base_.tokenizer}},
    num_image_tokens={{_base_.num_image_tokens}},
    prompt_style='mllmseg_paper_eval',
    extra_special_tokens={{_base_.special_tokens}},
    system_message={{_base_.system_message}},
    bos=True, test_mode=True, reject_no_target=True)
# Restated (not inherited): see internvl8b_refcoco_paper_eval.py.
test_pipeline = [
    dict(type='LoadRefImage'), dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=448, mode='squash'),
    paper_eval_conversation, dict(type='PackRefSegInputs')
]
model = dict(
    test_cfg=dict(use_rej=True, rej_decision='argmax_teacher_forced',
                  keep_rejected_masks=True, resize='probs'))
val_dataloader = dict(
    batch_size=1,
    dataset=dict(test_grouping='image', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='RefSegMetric', gres=True, gres_rule='mllmseg', giou_mode='image',
    rec_iou_rule='>', rec_box_style='mllmseg')
test_evaluator = val_evaluator
