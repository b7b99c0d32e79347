# DeepSpeed ZeRO-2 for the 8B recipes: MMEngine's FlexibleRunner +
# DeepSpeedStrategy, bf16, gradient checkpointing (HF), LoRA. Needs the
# optional extra: pip install -r requirements/deepspeed.txt (GPU machines;
# see docs/scaling.md). Inherit it next to a recipe; the recipe's config
# then passes its clip norm, accumulation and batch size to the strategy
# and swaps its optim_wrapper for DeepSpeedOptimWrapper.
#
# Frozen bf16 + trainable fp32 parameters: with bf16 enabled DeepSpeed casts
# the whole module to bf16 and keeps float32 master copies of the trainable
# parameters (LoRA, new token rows, heads) in its ZeRO-2 optimizer, whose
# states and gradients are partitioned over the GPUs; the frozen weights
# stay a bf16 replica. This is the seed implementations' setup.
#
# Not run on CPU: MMEngine 0.10's DeepSpeedStrategy.setup_distributed always
# calls init_dist, which calls torch.cuda.set_device before creating the
# process group (no CPU path, unlike the DDP fix in mmrefseg/apis/runner.py),
# and DeepSpeed is not installed on the CPU machines. tools/train.py says
# so at start.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=int(5e8),
        reduce_bucket_size=int(5e8),
        overlap_comm=True,
        contiguous_gradients=True),
    # Frozen weights are not saved twice: checkpoints hold what trains.
    exclude_frozen_parameters=True)
