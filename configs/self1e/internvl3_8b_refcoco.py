# SELF1E on InternVL3-8B, referring segmentation (see _base_/self1e_recipe.py).
# Weights: a native HF InternVL directory at `checkpoint` (e.g. the published
# OpenGVLab/InternVL3-8B-hf, or tools/model_converters/internvl_chat_to_hf.py
# applied to OpenGVLab/InternVL3-8B); nothing is downloaded. For released
# SELF1E weights see tools/model_converters/self1e_to_mmrefseg.py.
_base_ = ['./_base_/self1e_recipe.py', '../_base_/models/internvl3_8b.py']
model = dict(backbone={{_base_.backbone}})
