# MLLMSeg 8B recipe (internvl8b_refcoco.py) for one smaller GPU: the frozen
# LLM's Linear weights in 4-bit NF4 (bitsandbytes, double quantization, bf16
# compute), LoRA r64 on top as in the recipe. The ViT, projector,
# embeddings, lm_head (trained [SEG]/[REJ] rows) and LLM norms are not
# quantized (the norms go to float32, the QLoRA recipe). Needs the extra:
#   pip install -r requirements/quant.txt    (or mmrefseg[quant])
# 8-bit instead: --cfg-options model.backbone.quantization_config.bits=8
#
# Weights at rest (estimate_weight_bytes on the meta model,
# tests/test_models/test_backbones/test_quantization.py recomputes them):
#   bf16 (the plain recipe)      16.15 GB
#   4-bit NF4 (this config)       5.79 GB = 3.60 quantized + 2.19 bf16
#   8-bit LLM.int8()              9.18 GB = 6.98 quantized + 2.19 bf16
# plus float32 trainable parameters (LoRA r64, new rows, DSFF, decoder).
# Not run on a GPU yet (docs/scaling.md, "Low memory"). FSDP cannot shard
# bitsandbytes weights: combining this with *_fsdp.py is refused at start.
_base_ = ['./internvl8b_refcoco.py']
model = dict(backbone=dict(quantization_config=dict(bits=4)))
