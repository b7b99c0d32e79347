# MLLMSeg 8B recipe (internvl8b_refcoco.py) sharded with FSDP; the strategy,
# and why every parameter is stored float32, are in
# ../_base_/strategies/fsdp_full_shard_bf16.py.
_base_ = [
    './internvl8b_refcoco.py', '../_base_/strategies/fsdp_full_shard_bf16.py'
]
model = dict(backbone=dict(torch_dtype='float32'))
optim_wrapper = dict(
    _delete_=True,
    type='ShardedGradOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}},
    clip_grad={{_base_.optim_wrapper.clip_grad}},
    accumulative_counts={{_base_.optim_wrapper.accumulative_counts}})
