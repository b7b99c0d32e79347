# SELF1E 8B recipe (internvl3_8b_refcoco.py) for one smaller GPU: the frozen
# LLM's Linear weights in 4-bit NF4 (bitsandbytes, double quantization, bf16
# compute), LoRA r128 on the LLM and the ViT as in the recipe. The ViT (its
# LoRA trains on the bf16 weights), the trained projector, embeddings,
# lm_head (trained [SEG] row) and LLM norms are not quantized (the norms go
# to float32, the QLoRA recipe). Needs the extra:
#   pip install -r requirements/quant.txt    (or mmrefseg[quant])
# 8-bit instead: --cfg-options model.backbone.quantization_config.bits=8
#
# Weights at rest (estimate_weight_bytes on the meta model,
# tests/test_models/test_backbones/test_quantization.py recomputes them):
#   bf16 (the plain recipe)      15.89 GB
#   4-bit NF4 (this config)       6.20 GB = 3.37 quantized + 2.84 bf16 (rounded)
#   8-bit LLM.int8()              9.37 GB = 6.53 quantized + 2.84 bf16
# plus float32 trainable parameters (LoRA r128 on LLM and ViT, new rows,
# head). Not run on a GPU yet (docs/scaling.md, "Low memory"). FSDP cannot
# shard bitsandbytes weights: combining this with *_fsdp.py is refused.
_base_ = ['./internvl3_8b_refcoco.py']
model = dict(backbone=dict(quantization_config=dict(bits=4)))
