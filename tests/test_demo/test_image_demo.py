# Copyright (c) mmrefseg contributors.
"""demo/image_demo.py: one image, several phrases, a picture and files."""
import json
import os.path as osp

import cv2
import numpy as np
from repo_scripts import REPO, load_script


def test_image_demo_cli(tmp_path, capsys):
    demo = load_script('demo/image_demo.py')
    img = np.full((80, 120, 3), 120, np.uint8)
    path = str(tmp_path / 'photo.jpg')
    cv2.imwrite(path, img)
    out = str(tmp_path / 'out.png')
    assert demo.main([
        path, 'the left thing', 'a thing that is not there', '--config',
        osp.join(REPO, 'configs/self1e/self1e_tiny_synth.py'), '--device',
        'cpu', '--out-file', out, '--out-dir', str(tmp_path / 'files'),
        '--cfg-options', 'model.test_cfg.threshold=0.0'
    ]) == 0
    printed = capsys.readouterr().out
    assert "'the left thing': box [0, 0, 120, 80], area 9600 px" in printed
    assert f'picture written to {out}' in printed
    picture = cv2.imread(out)
    assert picture.shape[1] >= 448 and picture.shape[0] > 80
    record = json.load(open(tmp_path / 'files' / 'preds' / 'photo.json'))
    assert record['phrases'] == ['the left thing', 'a thing that is not there']
