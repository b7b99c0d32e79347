# Copyright (c) mmrefseg contributors.
"""Where Text4Seg's grouped generation spends its time (issue #19).

Two measurements, both on the CPU the benchmark runs on:

1. **One LLM linear at decode batch sizes**: ``F.linear`` with the 8B
   MLP's 14336 x 4096 float32 weight on M rows, for M = 1 (one
   conversation decoding), K (K conversations decoding together, both the
   grouped loop and ``generate`` on K samples) and 20 K (a prompt pass).
   A GEMM over a few rows can cost nearly what a full prompt pass costs
   (the weight is streamed, and packed, once per call whatever M is).
2. **Prompt vs decode** of the two generation paths on the Text4Seg 8B
   proxy (``--llm-layers``, widths of InternVL2.5-8B): the grouped loop
   (:func:`shared_prefix_generate`, the image's prefix once) and the
   per-expression path (``RefSegmentor.generate_answers``: transformers'
   ``generate`` on K samples). Each runs with 1 and with
   ``--max-new-tokens`` new tokens; the difference over the extra tokens
   is the cost of one decode step of the K conversations.

    flock /tmp/mmrefseg-cpu.lock python benchmarks/decode_step_cost.py

Nothing is downloaded (random weights, a random 448 px image).
"""
import argparse
import time
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from mmrefseg.datasets.transforms.text_only import build_text_only_batch
from mmrefseg.models.backbones.shared_prefix import (
    ImageGroups,
    shared_prefix_generate,
)
from mmrefseg.registry import MODELS
from mmrefseg.testing.multi_expression import prepare_model, speed_config
from mmrefseg.utils import register_all_modules

TEXT4SEG = 'configs/text4seg/text4seg_tiny_synth.py'
PHRASES = ('the red square on the left', 'blue circle',
           'the green thing at the top right corner', 'small yellow triangle',
           'left object', 'the one in the middle', 'big dark shape')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--expressions', type=int, default=7, help='K')
    p.add_argument('--max-new-tokens', type=int, default=16)
    p.add_argument('--llm-layers', type=int, default=1,
                   help='proxy depth (ViT layers follow the 3:4 ratio, at '
                   'least 1); the per-step costs scale with it')
    p.add_argument('--repeats', type=int, default=3,
                   help='timed calls of each linear (median)')
    p.add_argument('--skip-model', action='store_true',
                   help='only the linear table')
    return p.parse_args(argv)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def linear_rows(k: int, repeats: int) -> List[dict]:
    """Time of the 14336 x 4096 linear at M = 1, K, 20 K rows."""
    weight = torch.randn(14336, 4096)
    rows = []
    for m in (1, k, 20 * k):
        x = torch.randn(m, 4096)
        ms = _median_ms(lambda: F.linear(x, weight), repeats)
        rows.append(dict(rows=m, ms=ms,
                         gbs=weight.numel() * 4 / ms / 1e6,
                         gflops=2 * weight.numel() * m / ms / 1e6))
    return rows


def _timed(fn: Callable[[], torch.Tensor]):
    start = time.perf_counter()
    new = fn()
    return time.perf_counter() - start, int(new.shape[1])


def generation_rows(args: argparse.Namespace) -> List[dict]:
    """Prompt and per-step decode seconds of both generation paths."""
    cfg = speed_config(TEXT4SEG, 'proxy8b')
    arch = cfg.model.backbone.config
    arch['text_config']['num_hidden_layers'] = args.llm_layers
    arch['vision_config']['num_hidden_layers'] = max(
        1, round(args.llm_layers * 3 / 4))
    torch.manual_seed(0)
    model = prepare_model(MODELS.build(cfg.model), 'cpu', 'float32')
    image = np.random.default_rng(0).integers(0, 255, (448, 448, 3),
                                              dtype=np.uint8)
    phrases = [PHRASES[i % len(PHRASES)] for i in range(args.expressions)]
    stops = model.backbone.processor.stop_token_ids

    def grouped(tokens: int) -> torch.Tensor:
        batch = build_text_only_batch(cfg, image, phrases, 'image')
        inputs = model.data_preprocessor(batch, False)['inputs']
        groups = ImageGroups.build(inputs['conv_to_image'],
                                   inputs['num_tiles'])
        prompts = [inputs['input_ids'][b, :int(n)]
                   for b, n in enumerate(inputs['prompt_lengths'])]
        return shared_prefix_generate(model.backbone,
                                      inputs['pixel_values'], prompts,
                                      groups, tokens, stops)

    def per_expression(tokens: int) -> torch.Tensor:
        batch = build_text_only_batch(cfg, image, phrases, 'expression')
        inputs = model.data_preprocessor(batch, False)['inputs']
        return model.generate_answers(inputs, max_new_tokens=tokens)[1]

    rows = []
    with torch.no_grad():
        for name, fn in (('grouped (shared prefix)', grouped),
                         ('per expression (generate, batch K)',
                          per_expression)):
            t1, n1 = _timed(lambda: fn(1))
            tn, nn = _timed(lambda: fn(args.max_new_tokens))
            steps = max(nn - n1, 1)
            rows.append(dict(path=name, prompt_s=t1, total_s=tn,
                             new_tokens=nn, step_s=(tn - t1) / steps))
    return rows


def main(argv: Optional[List[str]] = None) -> dict:
    """Print both tables; returns their rows."""
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    print(f'\n### 14336 x 4096 float32 linear, {torch.get_num_threads()} '
          'threads\n')
    print('| rows M | ms | weight GB/s | GFLOP/s |\n|---|---|---|---|')
    lin = linear_rows(args.expressions, args.repeats)
    for r in lin:
        print(f"| {r['rows']} | {r['ms']:.1f} | {r['gbs']:.1f} | "
              f"{r['gflops']:.1f} |", flush=True)
    gen = []
    if not args.skip_model:
        print(f'\n### Text4Seg 8B proxy, {args.llm_layers} LLM layer(s), '
              f'K = {args.expressions}\n')
        print('| path | 1 new token s | max new tokens s | new tokens | '
              'one decode step s |\n|---|---|---|---|---|')
        gen = generation_rows(args)
        for r in gen:
            print(f"| {r['path']} | {r['prompt_s']:.2f} | "
                  f"{r['total_s']:.2f} | {r['new_tokens']} | "
                  f"{r['step_s']:.3f} |", flush=True)
    return dict(linear=lin, generation=gen)


if __name__ == '__main__':
    main()
