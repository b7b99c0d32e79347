# Copyright (c) mmrefseg contributors.
"""tools/test.py with test_grouping=image gives the metric dict of
test_grouping=expression (the same expressions, grouped for speed)."""
import torch
from mmengine.config import Config
from test_tools_cli import REPO, load_tool

from mmrefseg.registry import DATASETS, MODELS

CONFIG = f'{REPO}/configs/mllmseg/mllmseg_tiny_synth.py'
NUM_IMAGES = 3


def _subsets(root):
    """Indices of the first images and of their expressions."""
    base = dict(Config.fromfile(CONFIG).test_dataloader.dataset,
                data_root=root, pipeline=[], indices=None)
    by_image = DATASETS.build(dict(base, test_grouping='image'))
    by_expr = DATASETS.build(dict(base, test_grouping='expression'))
    images = list(range(NUM_IMAGES))
    sents = {e['sent_id'] for i in images
             for e in by_image.get_data_info(i)['expressions']}
    exprs = [i for i in range(len(by_expr)) if
             by_expr.get_data_info(i)['expressions'][0]['sent_id'] in sents]
    return images, exprs


def _metrics(ckpt, root, work_dir, grouping, indices):
    tool = load_tool('test')
    cfg = tool.build_cfg(tool.parse_args([
        CONFIG, ckpt, '--work-dir', work_dir, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.test_grouping={grouping}',
        'test_dataloader.dataset.indices=[' +
        ','.join(map(str, indices)) + ']',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']))
    return tool.build_runner(cfg).test()


def test_image_grouping_gives_the_same_metrics(synthetic_root, tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    images, exprs = _subsets(synthetic_root)
    assert len(exprs) > len(images)
    by_expr = _metrics(ckpt, synthetic_root, str(tmp_path / 'e'),
                       'expression', exprs)
    by_image = _metrics(ckpt, synthetic_root, str(tmp_path / 'i'), 'image',
                        images)
    assert by_expr['refseg/num_expressions'] == len(exprs)
    assert by_image.keys() == by_expr.keys()
    assert by_expr['refseg/cIoU'] > 0
    # Same masks give the same metrics to the last digit (RefSegMetric sums
    # exactly, tests/test_evaluation); a random model's logits sit near 0,
    # so a float32 rounding tie at the threshold may move a pixel (as
    # between batch sizes of the per-expression path): 1e-4 points.
    for key, value in by_expr.items():
        assert abs(by_image[key] - value) <= 1e-4, key
