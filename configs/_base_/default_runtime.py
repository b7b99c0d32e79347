default_scope = 'mmrefseg'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='RefSegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# A checkpoint whose keys or shapes differ from the model fails to load
# (CheckpointMatchHook below); True loads the matching part and lists the
# rest, e.g. to fine-tune from another architecture (docs/safety.md).
load_from_partial = False
default_hooks = dict(
    checkpoint_match=dict(type='CheckpointMatchHook'),
    timer=dict(type='IterTimerHook'),
    # MMEngine's LoggerHook, except that under dist_test.sh only rank 0
    # writes the test metrics JSON (every rank did, to one file).
    logger=dict(type='mmrefseg.RankZeroLoggerHook', interval=50,
                log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RefSegVisualizationHook'))
randomness = dict(seed=42)
