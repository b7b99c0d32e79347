# SELF1E 8B recipe (internvl3_8b_refcoco.py) with DeepSpeed ZeRO-2; the
# strategy is ../_base_/strategies/deepspeed_zero2_bf16.py.
_base_ = [
    './internvl3_8b_refcoco.py',
    '../_base_/strategies/deepspeed_zero2_bf16.py'
]
strategy = dict(
    gradient_clipping={{_base_.optim_wrapper.clip_grad.max_norm}},
    gradient_accumulation_steps={{_base_.optim_wrapper.accumulative_counts}},
    train_micro_batch_size_per_gpu={{_base_.train_dataloader.batch_size}})
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}})
