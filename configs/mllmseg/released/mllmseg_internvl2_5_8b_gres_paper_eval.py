# Released MLLMSeg InternVL2.5-8B GRES weights evaluated with the MLLMSeg
# paper's protocol (see ../internvl8b_grefcoco_paper_eval.py): per-image
# prompt with the GROUND-TRUTH [SEG]/[REJ] teacher-forced, "no target" where
# argmax over the vocabulary before the slot is [REJ], masks from a second
# pass with [REJ] -> [SEG], GSVA/MLLMSeg GRES rule. The protocol of the
# published gRefCOCO table (gres_gIoU, gres_cIoU, N-acc).
#   python tools/test.py \
#       configs/mllmseg/released/mllmseg_internvl2_5_8b_gres_paper_eval.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_GRES-mmrefseg/mmrefseg.pth
_base_ = ['./mllmseg_internvl2_5_8b_gres.py']
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
