# Copyright (c) mmrefseg contributors.
"""Quick start: synthetic data -> train a tiny model -> metrics -> a picture.

    python tools/quickstart.py [--iters 250] [--config CONFIG]

1. Generates the synthetic REFER dataset under data/synthetic (once).
2. Trains the tiny MLLMSeg hybrid at 168 px (configs/mllmseg/
   mllmseg_hybrid_tiny_synth_quickstart.py) from scratch for a fixed
   number of iterations, with a progress bar and ETA. Iterations, not
   minutes: the table below is the same on a fast or a busy machine, only
   the wait differs.
3. Prints val cIoU with the real expressions and with each expression
   swapped for another object's of the same image (the control): the gap
   is how much the masks follow the words.
4. Segments two phrases of a val image (two different objects) with the
   trained model through ``RefSegInferencer`` and writes the picture
   (masks in legend colours, phrases written under them); prints its path
   and the demo command.
"""
import argparse
import os
import os.path as osp
import sys
import time

# Idle OpenMP threads sleep instead of spinning, so a second busy process
# slows training down in proportion instead of several-fold (must be set
# before torch loads; docs/experiments.md, "CPU threads").
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'mllmseg',
                          'mllmseg_hybrid_tiny_synth_quickstart.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    # 250: 8.6 min on an idle 2-core CPU, real / shuffled cIoU 40.7 / 19.4
    # (docs/experiments.md, "Quick start at 168 px").
    parser.add_argument('--iters', type=int, default=250,
                        help='training iterations (evaluated at half and '
                        'at the end)')
    parser.add_argument('--val-samples', type=int, default=200)
    parser.add_argument('--data-root',
                        default=osp.join(ROOT, 'data', 'synthetic'))
    parser.add_argument('--work-dir',
                        default=osp.join(ROOT, 'work_dirs', 'quickstart'))
    return parser.parse_args(argv)


def _grounding_curve():
    """benchmarks/grounding_curve.py as a module (benchmarks/ is not a
    package: it is never installed)."""
    import importlib.util
    path = osp.join(ROOT, 'benchmarks', 'grounding_curve.py')
    spec = importlib.util.spec_from_file_location('grounding_curve', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_phrases(val_dataset: dict):
    """The first val image with two objects that have expressions, and one
    expression of each (two different objects show that the masks follow
    the words; two phrases of one object would draw one mask twice)."""
    from mmrefseg.registry import DATASETS
    dataset = DATASETS.build(dict(val_dataset, pipeline=[], indices=None,
                                  test_grouping='image'))
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        first_of_each = {}
        for expr in info['expressions']:
            if expr['ann_ids']:  # an object, not a no-target phrase
                first_of_each.setdefault(tuple(expr['ann_ids']), expr['text'])
        if len(first_of_each) >= 2:
            return info['img_path'], list(first_of_each.values())[:2]
    raise RuntimeError('no val image with expressions of two objects')


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    curve = _grounding_curve()
    marks = sorted({max(1, args.iters // 2), args.iters})
    cfg = curve.build_cfg(curve.parse_args([
        args.config, '--iters', *map(str, marks), '--val-samples',
        str(args.val_samples), '--data-root', args.data_root, '--work-dir',
        args.work_dir
    ]))
    val_dataset = cfg.custom_hooks[-1]['dataloaders']['real']['dataset']
    cfg.custom_hooks.append(dict(type='TrainProgressBarHook',
                                 total=args.iters))
    print(f'Training {osp.relpath(args.config, ROOT)} for {args.iters} '
          'iterations on the synthetic data (progress bar below).')
    runner, rows = curve.train_and_evaluate(cfg)
    ckpt = osp.join(args.work_dir, f'quickstart_iter_{args.iters}.pth')
    runner.save_checkpoint(args.work_dir, osp.basename(ckpt))
    print('\nval cIoU, real expressions vs the shuffled control:\n')
    print(curve.format_table(rows))

    from mmrefseg.apis import RefSegInferencer
    image, phrases = demo_phrases(val_dataset)
    inferencer = RefSegInferencer(args.config, weights=ckpt, device='cpu',
                                  show_progress=False)
    result = inferencer(image, phrases, return_vis=True,
                        out_dir=osp.join(args.work_dir, 'demo'))
    picture = osp.join(args.work_dir, 'demo', 'vis',
                       osp.splitext(osp.basename(image))[0] + '.png')
    for phrase, nt, area in zip(phrases, result['predictions'][0]
                                ['no_target'], result['predictions'][0]
                                ['areas']):
        print(f'  {phrase!r}: ' + ('no target' if nt else f'{area} px'))
    print(f'\nPicture: {picture}')
    print('Try your own image and phrases:\n  python demo/image_demo.py '
          f'{image} "{phrases[0]}" --config {osp.relpath(args.config, ROOT)}'
          f' --checkpoint {osp.relpath(ckpt, ROOT)} --device cpu '
          '--out-file my_result.png')
    print(f'\nquick start done in {(time.time() - start) / 60:.1f} min')
    return 0


if __name__ == '__main__':
    sys.exit(main())
