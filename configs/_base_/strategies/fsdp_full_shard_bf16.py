# FSDP for the 8B recipes: MMEngine's FlexibleRunner + FSDPStrategy, bf16
# compute, gradient checkpointing (HF, inside each FSDP unit), LoRA.
# Inherit it next to a recipe; the recipe's config then sets
#   model = dict(backbone=dict(torch_dtype='float32'))
# and swaps its optim_wrapper for ShardedGradOptimWrapper (its optimizer,
# clip_grad and accumulative_counts kept). docs/scaling.md has the commands
# and what was run.
#
# Frozen bf16 + trainable fp32 parameters: FSDP flattens the parameters of
# a unit into one tensor and requires ONE dtype per flat parameter, also
# with use_orig_params=True (which only lifts the same-requires_grad rule).
# A wrap policy cannot separate them either: NewTokenEmbedding holds the
# frozen bf16 table and the trainable fp32 new rows in one module. So here
# every parameter is stored float32 and sharded (torch_dtype='float32'),
# FSDP's MixedPrecision gathers them as bf16 for compute, and gradients are
# reduced in float32. use_orig_params=True lets frozen and LoRA parameters
# share a unit. Memory: 4 bytes x 8B / N GPUs of shards (8 GB each on 4)
# instead of a 16 GB bf16 replica per GPU under DDP, plus one gathered bf16
# layer at a time. MixedPrecision does the bf16 casts (no autocast);
# ShardedGradOptimWrapper clips by the global norm of the sharded gradients.
#
# Not run on CPU: torch 2.13's FSDP refuses CPU-only processes ("FSDP needs
# a non-CPU accelerator device"); tools/train.py says so at start. On CPU
# the plain config trains with DDP over gloo (tools/dist_train.sh).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        sharding_strategy='FULL_SHARD',
        # One FSDP unit per ViT/LLM layer (mmrefseg/engine/fsdp).
        auto_wrap_policy='mmrefseg_layer_wrap_policy',
        mixed_precision=dict(param_dtype='bfloat16',
                             reduce_dtype='float32',
                             buffer_dtype='bfloat16')),
    # Checkpoints as one full state dict on rank 0 (loadable without FSDP).
    state_dict_cfg='full')
