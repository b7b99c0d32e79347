# Released MLLMSeg InternVL2.5-8B RES weights evaluated with the MLLMSeg
# paper's protocol (see ../internvl8b_refcoco_paper_eval.py): one sample per
# image with all its sentences in one teacher-forced prompt, per-image gIoU,
# MLLMSeg's REC box rules. The protocol of the published RES (cIoU) and REC
# (Acc@0.5) tables.
#   python tools/test.py \
#       configs/mllmseg/released/mllmseg_internvl2_5_8b_res_paper_eval.py \
#       checkpoints/MLLMSeg_InternVL2_5_8B_RES-mmrefseg/mmrefseg.pth
_base_ = ['./mllmseg_internvl2_5_8b_res.py']
paper_eval_conversation = dict(
    type='BuildConversation', tokenizer={{_base_.tokenizer}},
    num_image_tokens={{_base_.num_image_tokens}},
    prompt_style='mllmseg_paper_eval',
    extra_special_tokens={{_base_.special_tokens}},
    system_message={{_base_.system_message}},
    bos=True, test_mode=True)
test_pipeline = [
    dict(type='LoadRefImage'), dict(type='LoadRefMasks'),
    dict(type='InternVLImageTransform', image_size=448, mode='squash'),
    paper_eval_conversation, dict(type='PackRefSegInputs')
]
model = dict(test_cfg=dict(resize='probs'))
val_dataloader = dict(
    batch_size=1,
    dataset=dict(test_grouping='image', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='RefSegMetric', giou_mode='image', rec_iou_rule='>',
    rec_box_style='mllmseg')
test_evaluator = val_evaluator
