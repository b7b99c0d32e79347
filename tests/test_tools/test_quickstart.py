# Copyright (c) mmrefseg contributors.
"""tools/quickstart.py end to end at 2 iterations on a small dataset."""
import os.path as osp
import re

import cv2
import numpy as np
from repo_scripts import load_script

from mmrefseg.datasets.synthetic import generate_synthetic_refer
from mmrefseg.visualization import expression_color


def _load_quickstart():
    return load_script('tools/quickstart.py')


def test_quickstart_trains_tables_and_draws(tmp_path, capsys):
    data = str(tmp_path / 'data')
    generate_synthetic_refer(data, 6, 3, 1, seed=1)
    work = tmp_path / 'work'
    rc = _load_quickstart().main([
        '--iters', '2', '--val-samples', '4', '--data-root', data,
        '--work-dir', str(work)
    ])
    assert rc == 0
    out = capsys.readouterr().out
    # The default is the 168 px quick-start model.
    assert 'mllmseg_hybrid_tiny_synth_quickstart.py' in out
    # Marks at half and at the end: iterations 1 and 2, one row each.
    table = out.split('real expressions vs the shuffled control')[1]
    rows = re.findall(r'^\| [\d.]+ \| (\d+) \| ([\d.]+) \| ([\d.]+) \|',
                      table.split('Picture:')[0], flags=re.M)
    assert [r[0] for r in rows] == ['1', '2'], out
    assert osp.isfile(work / 'quickstart_iter_2.pth')
    picture = re.search(r'^Picture: (.+\.png)$', out, flags=re.M).group(1)
    pic = cv2.imread(picture)
    assert pic is not None, picture
    pic = pic[..., ::-1]
    # Both phrases have a legend swatch in their own colour.
    for k in range(2):
        colour = np.array(expression_color(k), dtype=np.uint8)
        assert (pic == colour).all(-1).sum() >= 25, k
    # The demo command points at the checkpoint just written.
    assert 'demo/image_demo.py' in out and 'quickstart_iter_2.pth' in out
