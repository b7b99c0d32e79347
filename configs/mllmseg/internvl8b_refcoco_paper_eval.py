# MLLMSeg on InternVL2.5-8B, RES, evaluated with the papers' protocol
# (MLLMSeg's test_mllmseg_res.py): one evaluation sample per
# image carrying every sentence of every ref of that image in the split, one
# teacher-forced forward over
#   " What are {s1, s2, ...}in this image? Please output segmentation masks."
#   "Sure,{s1}:[SEG], {s2}:[SEG], ..."
# (sic: no space before "in", none after "Sure,"), batch 1, masks from the
# bilinearly resized probabilities (>= 0.5), gIoU averaged per image first,
# REC Acc@0.5 from mask boxes with MLLMSeg's box conventions and a strict
# IoU > 0.5. This is the protocol of MLLMSeg's published RES/REC tables; the
# prompt is not a training template and every expression of an image sees
# the others. internvl8b_refcoco.py is the clean per-expression protocol.
# Training settings are those of internvl8b_refcoco.py (this file only
# changes evaluation).
_base_ = ['./internvl8b_refcoco.py']
model = dict(
    backbone=dict(processor=dict(test_prompt_style='mllmseg_paper_eval')),
    test_cfg=dict(resize='probs'))
val_dataloader = dict(batch_size=1, dataset=dict(test_grouping='image_one_prompt'))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='RefSegMetric', giou_mode='image', rec_iou_rule='>',
    rec_box_style='mllmseg')
test_evaluator = val_evaluator
