# Copyright (c) mmrefseg contributors.
"""tools/dataset_converters: REFER -> JSON Lines -> checker, from the CLI."""
import json
import os.path as osp
import sys

import pytest
from repo_scripts import REPO, load_script


def _tool(name: str):
    return load_script(f'tools/dataset_converters/{name}.py')


def _run(monkeypatch, name: str, *argv: str):
    monkeypatch.setattr(sys, 'argv', [name, *argv])
    return _tool(name).main()


def test_convert_then_check(monkeypatch, capsys, synthetic_root, tmp_path):
    out = str(tmp_path / 'synth.jsonl')
    _run(monkeypatch, 'refer_to_refseg_jsonl',
         '--refs', osp.join(synthetic_root, 'grefcoco', 'grefs(unc).json'),
         '--instances', osp.join(synthetic_root, 'grefcoco', 'instances.json'),
         '--img-prefix', 'images/synthetic', '--splits', 'val', '--out', out)
    with open(out) as f:
        records = [json.loads(line) for line in f]
    assert records and {r['split'] for r in records} == {'val'}
    assert any(not r['targets'] for r in records)
    capsys.readouterr()
    code = _run(monkeypatch, 'check_refseg_data', out, '--data-root',
                synthetic_root, '--config',
                osp.join(REPO, 'configs', 'custom', 'mllmseg_tiny_custom.py'))
    text = capsys.readouterr().out
    assert code == 0, text
    assert 'phrase limit from' in text and text.rstrip().endswith('OK')
    assert 'records of split val  ' in text

    # One bad record: an empty mask, reported with its line and id.
    records[1]['targets'] = [{'polygons': [[900, 900, 910, 900, 910, 910]]}]
    records[1]['id'] = 'broken'
    with open(out, 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    code = _run(monkeypatch, 'check_refseg_data', out, '--data-root',
                synthetic_root, '--max-tokens', '3')
    text = capsys.readouterr().out
    assert code == 1
    assert "line 2 id='broken': empty_mask: targets[0] (polygons)" in text
    assert 'phrase_too_long' in text and 'FAILED' in text


def test_mask_folder_cli(monkeypatch, tmp_path):
    import cv2
    import numpy as np
    for sub in ('images', 'masks', 'phrases'):
        (tmp_path / sub).mkdir()
    cv2.imwrite(str(tmp_path / 'images' / 'a.png'), np.zeros((8, 8, 3),
                                                              np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 1
    cv2.imwrite(str(tmp_path / 'masks' / 'a.png'), mask)
    (tmp_path / 'phrases' / 'a.txt').write_text('the dot\n')
    out = str(tmp_path / 'a.jsonl')
    _run(monkeypatch, 'mask_folder_to_refseg_jsonl', str(tmp_path), '--out',
         out, '--split', 'train', '--embed-rle')
    with open(out) as f:
        record = json.loads(f.readline())
    assert record['split'] == 'train' and 'rle' in record['targets'][0]
    with pytest.raises(SystemExit):
        _run(monkeypatch, 'mask_folder_to_refseg_jsonl', str(tmp_path))
