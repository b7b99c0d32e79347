# Text4Seg stage 2 (text4seg_tiny_synth_ft.py) for CPUs that multiply
# bfloat16 in hardware (AMX or AVX512-BF16; `lscpu | grep -o amx_bf16`):
# bfloat16 autocast, eager attention, and a cosine fitted to what 30
# minutes on 2 such cores hold. Everything else (stage-1 export, frozen
# ViT, image tokens read both ways, the paper's LR) is the base config's.
#
#   OMP_NUM_THREADS=1 bash tools/dist_train.sh \
#       configs/text4seg/text4seg_tiny_synth_ft_bf16.py 2
#
# Why eager attention: under CPU autocast, PyTorch's SDPA runs its flash
# kernel in bfloat16, and that kernel's backward took 7.4 ms per call
# against 2.8 in float32, eating what the bf16 matrix products gain. One
# process, one thread, batch 4 (Intel Xeon, AMX): 0.220 s per step in
# float32 (SDPA), 0.185 with bf16 autocast and SDPA, 0.165 with bf16 and
# eager attention (0.227 eager in float32). Two processes, whole loop:
# 0.22-0.24 s per iteration against 0.27-0.29 in float32, so 8,500
# iterations in 33 minutes against 5,800 in 27.
#
# Measured on that Xeon from its own stage 1 (600 val expressions, R-RLE
# 8x8, grid oracle 51.6; real / shuffled cIoU through the test loop):
# 35.3 / 3.9, 35.1 / 4.6 and 36.9 / 3.4 with seeds 42, 1 and 2 (mean 35.8,
# 69% of the oracle; 32.7-33.4 training minutes), against 31.9 / 4.0 for
# float32 with SDPA at the 5,800 iterations its 30 minutes hold there
# (docs/text4seg_two_stage.md, session 17).
# On a CPU without hardware bf16 the wrapper trains in float32 and says
# so: there use text4seg_tiny_synth_ft.py, whose 3,900 iterations are what
# 30 minutes hold on an AVX2 AMD EPYC (docs/text4seg_two_stage.md).
_base_ = ['./text4seg_tiny_synth_ft.py']

model = dict(backbone=dict(attn_implementation='eager'))

max_iters = 8500
warmup_iters = 50
optim_wrapper = dict(type='AutocastOptimWrapper', dtype='bfloat16')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000, max_keep_ckpts=1))
