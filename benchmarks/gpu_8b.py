# Copyright (c) mmrefseg contributors.
"""Training-step time, peak memory and evaluation speed of the 8B recipes.

Random weights at the real shapes of ``configs/mllmseg/internvl8b_refcoco.py``
(InternVL2.5-8B, LoRA r64) and ``configs/self1e/internvl3_8b_refcoco.py``
(InternVL3-8B, LoRA r128 on LLM and ViT), bf16 base weights with float32
trainable parameters, the configs' own optimizer wrapper (AmpOptimWrapper,
bf16 autocast) and pipelines (448 px tile, 256 image tokens). Nothing is
downloaded: the tokenizer is the tiny BPE (prompt token counts therefore
differ a little from InternVL's tokenizer; the 256 image tokens dominate),
the images come from the synthetic REFER generator, and the vocabulary rows
keep the real sizes. Measures, per method:

* a training step (forward, backward, AdamW update, no accumulation) at
  batch 1/2/4 with and without gradient checkpointing: seconds per step
  (median of ``--steps`` after one warm-up step) and peak GPU memory;
* teacher-forced evaluation: expressions per second at ``--eval-batch``;
* the low-memory recipe (``configs/*/*_qlora.py``): the same model with the
  LLM's Linear weights in 4-bit NF4 (``nf4``) or 8-bit LLM.int8()
  (``int8``) through bitsandbytes, LoRA on top; training rows with gradient
  checkpointing only (the recipe), and evaluation. ``--weights`` picks the
  variants (default: all three). ``model GiB`` is the memory the built
  model holds (GPU: allocated after the build; CPU: its parameters).

The bf16 rows fit one call of 8 minutes on one H100 (two model builds of ~1
min each, the rest is steps); the quantized variants add four builds, so
on a tight budget run them as a second call (``--weights bf16`` in the
first, ``--weights nf4 int8`` in the second; not timed yet, no GPU was
lent). Each row is printed as soon as it is measured and the table
is also written to ``$OUT/gpu_8b.json`` when ``OUT`` is set.

    python benchmarks/gpu_8b.py                 # on a GPU
    python benchmarks/gpu_8b.py --dry-run       # CPU: builds every variant

``--dry-run`` builds both models at the full 8B shapes on the meta device
(parameter counts, LoRA, checkpointing switches), then runs every variant's
code path with a 1-layer, narrow model on the CPU; times and memory then
mean nothing. Quantized variants: at the 8B shapes the quantization config
is built and checked (bitsandbytes installed, a backend for the device)
but not applied, since meta tensors hold no values to quantize; the row
gives the computed weight size instead. The tiny CPU model is really
quantized (bitsandbytes' CPU backend) and trained. Never run in CI except
the dry run (tests/test_benchmarks).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = {
    'mllmseg': 'configs/mllmseg/internvl8b_refcoco.py',
    'self1e': 'configs/self1e/internvl3_8b_refcoco.py',
}
TINY_TOKENIZER = dict(type='tiny_bpe', vocab_size=1024)
TINY_IMAGE_TOKEN_ID = 5  # tiny_bpe's <IMG_CONTEXT>
#: Low-memory variants: name -> the backbone's ``quantization_config``.
QUANT = {'nf4': dict(bits=4), 'int8': dict(bits=8)}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 2, 4])
    parser.add_argument('--steps', type=int, default=3,
                        help='timed training steps per variant')
    parser.add_argument('--eval-batch', type=int, default=4)
    parser.add_argument('--eval-batches', type=int, default=3)
    parser.add_argument('--weights', nargs='+',
                        default=['bf16'] + list(QUANT),
                        choices=['bf16'] + list(QUANT),
                        help='LLM weights: bf16, 4-bit NF4, 8-bit')
    parser.add_argument('--dry-run', action='store_true',
                        help='meta-device build at 8B shapes + tiny CPU run')
    return parser.parse_args(argv)


def load_cfg(method: str, tiny: bool):
    """The method's 8B config with random weights and the tiny tokenizer.

    Args:
        method (str): A key of :data:`METHODS`.
        tiny (bool): Shrink depth and width to a CPU-sized model.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, METHODS[method]))
    backbone = cfg.model.backbone
    backbone.pretrained = None
    backbone.tokenizer = TINY_TOKENIZER
    arch = backbone.config
    arch.image_token_id = TINY_IMAGE_TOKEN_ID
    for loader in ('train_dataloader', 'test_dataloader'):
        for t in cfg[loader].dataset.pipeline:
            if t['type'] == 'BuildConversation':
                t['tokenizer'] = TINY_TOKENIZER
    if tiny:
        # 56 px tiles (4 image tokens) instead of 448 (256): CPU seconds.
        size, tokens = 56, 4
        arch.image_seq_length = tokens
        arch.vision_config.update(hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=1, intermediate_size=64,
                                  image_size=size)
        for loader in ('train_dataloader', 'test_dataloader'):
            for t in cfg[loader].dataset.pipeline:
                if t['type'] == 'InternVLImageTransform':
                    t['image_size'] = size
                if t['type'] == 'BuildConversation':
                    t['num_image_tokens'] = tokens
        arch.text_config.update(hidden_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1,
                                intermediate_size=128, vocab_size=1024)
        for key in ('neck', 'decode_head'):
            part = cfg.model.get(key) or {}
            for name in ('embed_dims', 'ffn_channels'):
                if name in part:
                    part[name] = 32
            if 'num_heads' in part:
                part['num_heads'] = 2
    return cfg


def build_model(cfg, device: str):
    """Build the segmentor with its parameters created on ``device``."""
    from mmrefseg.registry import MODELS
    with torch.device(device):
        model = MODELS.build(cfg.model)
    return model if device == 'meta' else model.to(device)


def count_params(model) -> Dict[str, float]:
    """Total and trainable parameters, in billions / millions."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lora = sum(p.numel() for n, p in model.named_parameters()
               if 'lora_' in n)
    return dict(params_B=total / 1e9, trainable_M=train / 1e6,
                lora_M=lora / 1e6)


def set_checkpointing(model, enabled: bool) -> None:
    """Switch activation checkpointing of the HF ViT and LLM."""
    hf = model.backbone.hf
    if enabled:
        hf.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=dict(use_reentrant=False))
    else:
        hf.gradient_checkpointing_disable()


def make_batch(cfg, data_root: str, batch_size: int, train: bool) -> dict:
    """A collated batch of synthetic samples through the config pipeline."""
    from mmengine.dataset import pseudo_collate

    from mmrefseg.registry import DATASETS
    loader = cfg.train_dataloader if train else cfg.test_dataloader
    max_expr = 1
    inner = loader.dataset.get('datasets') or [loader.dataset]
    max_expr = inner[0].get('max_expressions_per_sample', max_expr)
    dataset = DATASETS.build(
        dict(type='RefCOCODataset', data_root=data_root,
             dataset_name='synthrefcoco', split_by='unc',
             split='train' if train else 'val',
             data_prefix=dict(img_path='images/synthetic'),
             max_expressions_per_sample=max_expr, test_mode=not train,
             pipeline=loader.dataset.pipeline))
    return pseudo_collate([dataset[i] for i in range(batch_size)])


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_train(model, optim_wrapper, data: dict, steps: int,
               device: str) -> Dict[str, float]:
    """Median step time and peak memory of ``steps`` steps after a warm-up.
    """
    model.train()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**30
            if device.startswith('cuda') else float('nan'))
    return dict(step_s=statistics.median(times), peak_GiB=peak)


def time_eval(model, batches: List[dict], device: str) -> Dict[str, float]:
    """Expressions per second of teacher-forced ``test_step``."""
    model.eval()
    num = 0
    with torch.no_grad(), torch.autocast(device.split(':')[0],
                                         dtype=torch.bfloat16):
        model.test_step(batches[0])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            out = model.test_step(batch)
            num += sum(len(s.metainfo.get('texts', [None])) for s in out)
        _sync(device)
    return dict(expr_per_s=num / (time.perf_counter() - start))


def build_optim_wrapper(model, cfg, device: str):
    """The config's optimizer wrapper, one step per update (no accum)."""
    from mmengine.optim import build_optim_wrapper as build
    optim_cfg = dict(cfg.optim_wrapper)
    optim_cfg.pop('accumulative_counts', None)
    if not device.startswith('cuda') and optim_cfg.get(
            'type') == 'AmpOptimWrapper':
        optim_cfg = dict(optim_cfg, type='AutocastOptimWrapper')
        optim_cfg.pop('loss_scale', None)
    return build(model, optim_cfg)


def model_gib(model, device: str) -> float:
    """Memory the built model holds, GiB (see the module docstring)."""
    if device.startswith('cuda'):
        _sync(device)
        return torch.cuda.memory_allocated() / 2**30
    from mmrefseg.models.backbones.quantization import weight_bytes
    return sum(weight_bytes(model).values()) / 2**30


def meta_weights_gb(model, quant: Optional[dict]) -> float:
    """Weights at rest of a meta-built segmentor, GB: its parameters, the
    backbone's LLM Linear layers counted at their quantized size."""
    from mmrefseg.models.backbones.quantization import (
        backbone_quantization,
        estimate_weight_bytes,
        weight_bytes,
    )
    if not quant:
        return sum(weight_bytes(model).values()) / 1e9
    # Checked (bitsandbytes present, a backend for this device), not
    # applied: meta tensors hold no values to quantize.
    bnb_config = backbone_quantization(quant, freeze_llm=True)
    hf = model.backbone.hf
    rest = sum(p.numel() * p.element_size() for n, p in
               model.named_parameters() if not n.startswith('backbone.hf.'))
    return (sum(estimate_weight_bytes(hf, bnb_config).values()) +
            rest) / 1e9


def run_method(method: str, args, device: str, data_root: str,
               emit) -> None:
    """Measure every variant of one method and ``emit`` each row."""
    for weights in args.weights:
        run_variant(method, weights, args, device, data_root, emit)


def run_variant(method: str, weights: str, args, device: str,
                data_root: str, emit) -> None:
    """One method with bf16 (``weights='bf16'``) or quantized LLM weights.
    """
    quant = QUANT.get(weights)
    cfg = load_cfg(method, tiny=args.dry_run)
    if quant:
        cfg.model.backbone.quantization_config = quant
    r = cfg.model.backbone.llm_lora['r']
    base = dict(method=method, weights=weights, lora_r=r)
    if args.dry_run:  # the real shapes, without memory
        meta = build_model(load_cfg(method, tiny=False), 'meta')
        if not quant:
            for gc in (True, False):
                set_checkpointing(meta, gc)
                assert meta.backbone.hf.is_gradient_checkpointing == gc
        emit(dict(base, kind='build@meta', weights_GB=meta_weights_gb(
            meta, quant), note='quantization checked, not applied (meta)'
            if quant else '', **count_params(meta)))
        del meta
    model = build_model(cfg, device)
    held = model_gib(model, device)
    optim_wrapper = build_optim_wrapper(model, cfg, device)
    # The quantized recipe trains with checkpointing only.
    for gc in (True, ) if quant else (True, False):
        set_checkpointing(model, gc)
        for bs in args.batches:
            row = dict(base, kind='train', batch=bs, grad_ckpt=gc,
                       model_GiB=held)
            try:
                data = make_batch(cfg, data_root, bs, train=True)
                row.update(time_train(model, optim_wrapper, data,
                                      args.steps, device))
            except torch.cuda.OutOfMemoryError:
                row.update(step_s=float('nan'), peak_GiB='OOM')
                torch.cuda.empty_cache()
            emit(row)
    batches = [
        make_batch(cfg, data_root, args.eval_batch, train=False)
        for _ in range(args.eval_batches)
    ]
    emit(dict(base, kind='eval', batch=args.eval_batch, model_GiB=held,
              **time_eval(model, batches, device)))
    del model, optim_wrapper
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def fmt_row(row: dict) -> str:
    """One table line."""

    def num(key, spec):
        value = row.get(key)
        return '' if value is None else (
            value if isinstance(value, str) else format(value, spec))

    line = (f"| {row['method']:8} | {row['weights']:7} | {row['kind']:10} | "
            f"{row['lora_r']:4} | {str(row.get('batch', '')):5} | "
            f"{str(row.get('grad_ckpt', '')):9} | {num('step_s', '.3f'):8} | "
            f"{num('peak_GiB', '.1f'):8} | {num('model_GiB', '.3g'):9} | "
            f"{num('expr_per_s', '.2f'):7} | {num('params_B', '.3f'):8} | "
            f"{num('trainable_M', '.1f'):8} | {num('weights_GB', '.2f'):10} |")
    return line + (f" {row['note']}" if row.get('note') else '')


HEADER = ('| method   | weights | kind       | r    | batch | grad_ckpt | '
          'step s   | peak GiB | model GiB | expr/s  | params B | train M  | '
          'weights GB |')


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Run the benchmark; print the table; return its rows."""
    args = parse_args(argv)
    if args.dry_run:
        args.steps = 1
    from mmengine.logging import MMLogger

    from mmrefseg.datasets.synthetic import generate_synthetic_refer
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    # Quiet MMEngine's per-parameter optimizer log lines.
    MMLogger.get_instance('gpu_8b', log_level='ERROR')
    if args.dry_run:
        device = 'cpu'
    elif torch.cuda.is_available():
        device = 'cuda'
    else:
        sys.exit('No CUDA device: run on a GPU, or pass --dry-run.')
    rows: List[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(fmt_row(row), flush=True)

    if device == 'cuda':
        print(f'# {torch.cuda.get_device_name()}, torch {torch.__version__}')
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as data_root:
        generate_synthetic_refer(data_root, num_train_images=8,
                                 num_val_images=16, num_test_images=2)
        for method in args.methods:
            run_method(method, args, device, data_root, emit)
    out = os.environ.get('OUT')
    if out and not args.dry_run:
        with open(osp.join(out, 'gpu_8b.json'), 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
