# SELF1E 8B recipe (internvl3_8b_refcoco.py) sharded with FSDP; the strategy,
# and why every parameter is stored float32, are in
# ../_base_/strategies/fsdp_full_shard_bf16.py.
_base_ = [
    './internvl3_8b_refcoco.py',
    '../_base_/strategies/fsdp_full_shard_bf16.py'
]
model = dict(backbone=dict(torch_dtype='float32'))
optim_wrapper = dict(
    _delete_=True,
    type='ShardedGradOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    clip_grad={{_base_.optim_wrapper.clip_grad}},
    accumulative_counts={{_base_.optim_wrapper.accumulative_counts}})
