# Copyright (c) mmrefseg contributors.
"""RefSegChecker: every error kind triggered by a crafted bad file."""
import json

import cv2
import numpy as np
import pytest

from mmrefseg.datasets.refseg_format import (
    ERROR_KINDS,
    RefSegChecker,
    phrase_budget_from_config,
)
from mmrefseg.utils.tokenizer import build_tokenizer

TINY = dict(type='tiny_bpe', vocab_size=1024)


@pytest.fixture
def bad_file(tmp_path):
    """A file whose record on line N has exactly the problem BAD[N]."""
    img = np.full((20, 30, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / 'a.jpg'), img)
    noise = np.random.default_rng(0).integers(0, 255, (80, 120, 3))
    cv2.imwrite(str(tmp_path / 'noise.jpg'), noise.astype(np.uint8))
    data = (tmp_path / 'noise.jpg').read_bytes()  # header << pixel data
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    good = np.zeros((20, 30), np.uint8)
    good[3:8, 4:9] = 1
    cv2.imwrite(str(tmp_path / 'good.png'), good)
    cv2.imwrite(str(tmp_path / 'empty.png'), np.zeros((20, 30), np.uint8))
    cv2.imwrite(str(tmp_path / 'small.png'), good[:10])
    (tmp_path / 'garbage.png').write_bytes(b'\x89PNG but not really')

    def rec(id_, targets=({'mask': 'good.png'}, ), **kw):
        out = dict(id=id_, image='a.jpg', phrases=['the thing'],
                   targets=list(targets))
        out.update(kw)
        return json.dumps(out)

    long_phrase = ' '.join(['zebra'] * 60)
    lines = [
        rec('ok'),                                              # 1
        rec('ok2', targets=[{'polygons': [[4, 3, 9, 3, 9, 8]]},
                            {'box': [1, 1, 5, 5]}]),            # 2
        '{"id": "broken", "image": ',                           # 3
        rec('ok'),                                              # 4
        rec('e', phrases=['fine', '  ']),                       # 5
        rec('long', phrases=[long_phrase]),                     # 6
        rec('noimg', image='nowhere.jpg'),                      # 7
        rec('trunc', image='truncated.jpg'),                    # 8
        rec('size', height=21, width=30),                       # 9
        rec('nomask', targets=[{'mask': 'nowhere.png'}]),       # 10
        rec('garbage', targets=[{'mask': 'garbage.png'}]),      # 11
        rec('small', targets=[{'mask': 'small.png'}]),          # 12
        rec('rle', targets=[{'rle': {'size': [10, 30],
                                     'counts': [300]}}]),       # 13
        rec('empty', targets=[{'mask': 'empty.png'}]),          # 14
        rec('poly_out', targets=[{'polygons': [[50, 50, 60, 50,
                                                60, 60]]}]),    # 15
        rec('box', targets=[{'box': [40, 40, 50, 50]}]),        # 16
        rec('bad', targets=[{'mask': 'good.png', 'value': 'x'}]),  # 17
    ]
    path = tmp_path / 'bad.jsonl'
    path.write_text('\n'.join(lines) + '\n')
    return str(tmp_path), str(path)


EXPECTED = {
    3: ('invalid_json', None),
    4: ('duplicate_id', 'also used on line 1'),
    5: ('empty_phrase', 'phrases[1] is empty'),
    6: ('phrase_too_long', 'phrases[0] has 60 tokens, more than 40'),
    7: ('missing_image', 'nowhere.jpg does not exist'),
    8: ('unreadable_image', 'cannot decode'),
    9: ('image_size_mismatch', 'say 21x30 but'),
    10: ('missing_mask', 'nowhere.png does not exist'),
    11: ('unreadable_mask', 'garbage.png'),
    12: ('mask_size_mismatch', 'is 10x30 (HxW) but the image is 20x30'),
    13: ('mask_size_mismatch', 'RLE size [10, 30]'),
    14: ('empty_mask', 'empty.png'),
    15: ('empty_mask', 'targets[0] (polygons)'),
    16: ('bad_box', 'outside the 20x30 image'),
    17: ('bad_record', 'value'),
}


def test_every_error_kind_is_reported_with_line_id_and_reason(bad_file):
    root, path = bad_file
    report = RefSegChecker(data_root=root, max_tokens=40).check_file(path)
    by_line = {}
    for issue in report.issues:
        by_line.setdefault(issue.line, []).append(issue)
    assert sorted(by_line) == sorted(EXPECTED)
    for line, (kind, text) in EXPECTED.items():
        issues = by_line[line]
        assert [i.kind for i in issues] == [kind], (line, issues)
        if text is not None:
            assert text in issues[0].message, (line, issues[0].message)
        if line != 3:  # a line that is not JSON has no id
            assert issues[0].record_id is not None
        assert str(issues[0]).startswith(f'line {line}')
    assert set(report.error_counts()) | {'unreadable_image'} >= set(
        k for k, _ in EXPECTED.values())
    assert set(report.error_counts()) <= set(ERROR_KINDS)
    assert not report.ok
    table = report.summary_table()
    assert 'error: mask_size_mismatch' in table and 'box-only records' in table
    row = [r for r in table.splitlines() if 'mask_size_mismatch' in r][0]
    assert row.split()[-1] == '2'
    # Lines 3 (not JSON), 5 and 17 (malformed) are not records.
    assert report.stats['records'] == 14


def test_header_only_mode_misses_truncated_images(bad_file):
    root, path = bad_file
    report = RefSegChecker(data_root=root,
                           decode_images=False).check_file(path)
    assert 'unreadable_image' not in report.error_counts()


def test_clean_file_passes_and_counts(tmp_path, bad_file):
    root, _ = bad_file
    path = tmp_path / 'clean.jsonl'
    path.write_text(json.dumps(dict(image='a.jpg', phrases=['the thing'],
                                    targets=[{'mask': 'good.png'}])) + '\n' +
                    json.dumps(dict(image='a.jpg', phrases=['a zebra'],
                                    targets=[])) + '\n')
    report = RefSegChecker(data_root=root).check_file(str(path))
    assert report.ok, report.issues
    assert report.stats['no-target records'] == 1
    assert report.stats['targets: mask'] == 1
    assert report.stats['records without split'] == 2


def test_tokenizer_counts_tokens_not_words(bad_file):
    root, path = bad_file
    tok = build_tokenizer(TINY)
    n = len(tok('zebra', add_special_tokens=False)['input_ids'])
    assert n > 1  # not a learned word of the tiny BPE
    checker = RefSegChecker(data_root=root, tokenizer=tok, max_tokens=60)
    report = checker.check_file(path)
    assert 'phrase_too_long' in report.error_counts()
    assert checker.count_tokens('zebra') == n


def test_phrase_budget_from_tiny_config():
    from mmengine.config import Config
    cfg = Config.fromfile('configs/mllmseg/mllmseg_tiny_synth.py')
    budget = phrase_budget_from_config(cfg)
    # 1024 context, 64 image tokens, one tile, one expression per sample.
    assert '(1024 context - 64 image tokens x 1 tile(s)' in budget.explanation
    assert 300 < budget.max_tokens < 480
    assert budget.tokenizer_cfg == TINY
    cfg.train_dataloader.dataset.max_expressions_per_sample = 5
    assert phrase_budget_from_config(cfg).max_tokens < budget.max_tokens / 4
