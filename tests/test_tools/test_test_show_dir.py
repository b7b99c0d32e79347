# Copyright (c) mmrefseg contributors.
"""tools/test.py --show-dir: one picture per expression, phrase drawn."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from repo_scripts import REPO, load_script

from mmrefseg.datasets.synthetic import generate_synthetic_refer
from mmrefseg.registry import MODELS
from mmrefseg.visualization import expression_color

CONFIG = osp.join(REPO, 'configs/self1e/self1e_tiny_synth.py')


def _load_tool(name):
    return load_script(f'tools/{name}.py')


@pytest.fixture(scope='module')
def data_and_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp('show_dir')
    generate_synthetic_refer(str(root / 'data'), 2, 2, 1, seed=3)
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = str(root / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    return root, ckpt


def test_one_picture_per_expression_with_its_phrase(data_and_checkpoint):
    root, ckpt = data_and_checkpoint
    show = root / 'show'
    data = str(root / 'data')
    _load_tool('test').main([
        CONFIG, ckpt, '--show-dir', str(show), '--work-dir',
        str(root / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.dataset.indices=5', 'test_dataloader.batch_size=2',
        # every pixel above threshold: the masks are known to be full
        'model.test_cfg.threshold=0.0'
    ])
    files = sorted(glob.glob(str(show / '*.png')))
    assert len(files) == 5, files  # one per expression, none overwritten
    for path in files:
        pic = cv2.imread(path)[..., ::-1]
        img_name = osp.basename(path).rsplit('_', 1)[0]
        img = cv2.imread(glob.glob(osp.join(
            data, '**', img_name + '.*'), recursive=True)[0])[..., ::-1]
        h, w = img.shape[:2]
        scale = pic.shape[1] / (2 * w + 8) if pic.shape[1] > w * 2 else \
            pic.shape[1] / w
        # the prediction panel (right) is the image blended with colour 0
        panel_x = pic.shape[1] - int(round(w * scale))
        y, x = int(24 + h * scale * 0.3), panel_x + int(w * scale * 0.3)
        want = img[int(0.3 * h), int(0.3 * w)] * 0.5 + \
            np.asarray(expression_color(0)) * 0.5
        assert np.abs(pic[y, x].astype(float) - want).max() < 40
        # the legend under the panels: the swatch and written text
        legend = pic[24 + int(h * scale):]
        assert (legend == np.asarray(expression_color(0), np.uint8)).all(
            -1).sum() > 100
        assert (legend.max(-1) < 80).sum() > 100  # dark text pixels
