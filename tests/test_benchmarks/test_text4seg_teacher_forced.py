# Copyright (c) mmrefseg contributors.
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from repo_scripts import REPO, load_script

from mmrefseg.registry import MODELS


@pytest.fixture(scope='module')
def tf():
    return load_script('benchmarks/text4seg_teacher_forced.py')


# "Sure:\n<seg>others *16\n others *12| red *2| others *2\n others *16\n</seg>"
# cut into tokens the way a digit-splitting tokenizer does.
PIECES = ['Sure', ':\n', '<seg>', 'others', ' *', '1', '6', '\n',
          ' others', ' *', '1', '2', '|', ' red', ' *', '2', '|', ' others',
          ' *', '2', '\n', ' others', ' *', '1', '6', '\n', '</seg>']


def test_rows_skip_the_preamble(tf):
    rows = tf.answer_rows(PIECES)
    assert [text for _, text in rows] == [
        'others *16\n', ' others *12| red *2| others *2\n', ' others *16\n',
        '</seg>']
    assert rows[0][0] == [3, 4, 5, 6, 7]


def test_rows_of_a_tag_written_in_pieces(tf):
    pieces = ['Sure', ':', '\n', '<', 'seg', '>others', ' *', '1', '6', '\n',
              '</', 'seg', '>']
    rows = tf.answer_rows(pieces)
    assert [text for _, text in rows] == ['others *16\n', '</seg>']
    assert rows[0][0] == [5, 6, 7, 8, 9]
    assert tf.answer_rows(['no', ' tag']) == []


def test_tokens_are_scored_by_kind(tf):
    correct = [True] * len(PIECES)
    correct[10] = False  # the '1' of "12": where the object starts
    correct[19] = False  # a later count in the object row
    p_true = [0.5] * len(PIECES)
    totals = {kind: [0, 0, 0.0] for kind in tf.KINDS}
    tf.score_answer(PIECES, correct, p_true, totals)
    assert totals['background row'][:2] == [10, 10]
    assert totals['object row'][:2] == [11, 13]
    # digits 1, 2, 2, 2 of the object row
    assert totals['object row counts'][:2] == [2, 4]
    assert totals['first object row start'][:2] == [0, 1]
    assert totals['later object row start'][:2] == [0, 0]
    assert totals['object row'][2] == pytest.approx(6.5)


def test_runs_on_a_checkpoint(tf, synthetic_root, tmp_path, capsys):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'text4seg', 'text4seg_tiny_synth.py'))
    cfg.train_dataloader.dataset.data_root = synthetic_root
    cfg_path = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_path))
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    assert tf.main([str(cfg_path), str(ckpt), '--val-samples', '3',
                    '--batch-size', '2']) == 0
    table = capsys.readouterr().out
    # Every synthetic answer holds an object, so each of the 3 answers
    # has exactly one first object row.
    assert '| first object row start | 3 |' in table
    for kind in tf.KINDS[:3]:
        assert f'| {kind} | 0 |' not in table


# "<seg>others| red circle| others| red circle</seg>" in tokens.
FULL_PIECES = ['Sure', ':\n', '<seg>', 'others', '|', ' red', ' circle',
               '|', ' others', '| red', ' circle', '</seg>']


def test_full_answer_cells_name_their_deciding_token(tf):
    assert tf.answer_cells(FULL_PIECES) == [
        (3, 'others'), (5, 'red circle'), (8, 'others'), (9, 'red circle')]
    assert tf.answer_cells(['no', ' tag']) == []


def test_full_answer_cell_iou(tf):
    correct = [True] * len(FULL_PIECES)
    correct[9] = False  # second object cell missed
    correct[8] = False  # a background cell called object
    p_true = [0.25] * len(FULL_PIECES)
    totals = {kind: [0, 0, 0.0] for kind in tf.FULL_KINDS}
    tf.score_full_answer(FULL_PIECES, correct, p_true, totals)
    assert totals['object cell'] == [1, 2, 0.5]
    assert totals['background cell'] == [1, 2, 0.5]
    # TP 1, FN 1, FP 1
    assert tf.cell_iou(totals) == pytest.approx(100 / 3)
