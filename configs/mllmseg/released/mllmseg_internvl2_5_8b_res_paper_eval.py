# Released MLLMSeg InternVL2.5-8B RES weights evaluated with the MLLMSeg
# paper's protocol (see ../internvl8b_refcoco_paper_eval.py): one sample per
# image with all its sentences in one teacher-forced prompt, per-image gIoU,
# MLLMSeg's REC box rules. The protocol of the published RES (cIoU) and REC
# (Acc@0.5) tables.
#   python tools/test.py \
#       configs/mllmseg/released/mllmseg_internvl2_5_8b_res_paper_eval.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg/mmrefseg.pth
_base_ = ['./mllmseg_internvl2_5_8b_res.py']
model = dict(
    backbone=dict(processor=dict(test_prompt_style='mllmseg_paper_eval')),
    test_cfg=dict(resize='probs'))
val_dataloader = dict(batch_size=1, dataset=dict(test_grouping='image_one_prompt'))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='RefSegMetric', giou_mode='image', rec_iou_rule='>',
    rec_box_style='mllmseg')
test_evaluator = val_evaluator
