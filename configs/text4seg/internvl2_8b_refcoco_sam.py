# Text4Seg InternVL2-8B RES, tested with the SAM-H mask refiner (the paper's
# "w/ SAM" rows): each non-empty coarse mask prompts SAM with its logits and
# 10 + 10 random points, 3 passes, everything in SAM's aspect-correct frame.
#   python tools/test.py configs/text4seg/internvl2_8b_refcoco_sam.py \
#       work_dirs/internvl2_8b_refcoco/iter_135700.pth
# `sam_checkpoint` is a local transformers SamModel directory (e.g. a saved
# facebook/sam-vit-huge); it is loaded on the first refinement only.
_base_ = ['./internvl2_8b_refcoco.py']
sam_checkpoint = 'checkpoints/sam-vit-huge'
model = dict(
    decode_head=dict(
        refiner=dict(type='SamMaskRefiner', checkpoint=sam_checkpoint,
                     num_pos_points=10, num_neg_points=10, num_passes=3,
                     mask_prompt='fullres')))
