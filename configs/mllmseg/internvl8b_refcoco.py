# MLLMSeg on InternVL2.5-8B, RES stage (see _base_/mllmseg_res_recipe.py).
# Weights: a native HF InternVL directory at `checkpoint` (e.g. converted by
# tools/model_converters/internvl_chat_to_hf.py); nothing is downloaded.
_base_ = [
    './_base_/mllmseg_res_recipe.py', '../_base_/models/internvl2_5_8b.py'
]
model = dict(backbone={{_base_.backbone}})
