# Copyright (c) mmrefseg contributors.
import json

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from mmrefseg.apis.prediction_io import (
    masks_to_rles,
    rles_to_masks,
    summarize_masks,
    write_prediction,
)


def _masks():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 37, 53)) > 0.6
    masks[1] = False
    masks[2] = False
    masks[2, 5:9, 40:50] = True
    return masks


def test_rle_round_trip_through_pycocotools():
    masks = _masks()
    rles = masks_to_rles(masks)
    assert all(isinstance(r['counts'], str) for r in rles)
    json.dumps(rles)  # JSON-ready
    assert (rles_to_masks(rles) == masks).all()
    # pycocotools reads them directly too
    one = mask_utils.decode(dict(size=rles[2]['size'],
                                 counts=rles[2]['counts'].encode()))
    assert (one.astype(bool) == masks[2]).all()


def test_summary_scores_boxes_and_no_target():
    masks = _masks()
    probs = np.where(masks, 0.8, 0.1)
    probs[2, 5:9, 40:45] = 0.6
    pred = summarize_masks(['a', 'b', 'c'], masks, probs)
    assert pred['no_target'] == [False, True, False]
    assert pred['areas'] == [int(masks[0].sum()), 0, 40]
    assert pred['boxes'][1] == [0, 0, 0, 0]
    assert pred['boxes'][2] == [40, 5, 50, 9]  # COCO pixel edges
    assert pred['scores'][0] == pytest.approx(0.8)
    assert pred['scores'][1] == 0.0
    assert pred['scores'][2] == pytest.approx(0.7)
    with pytest.raises(ValueError, match='2 phrases'):
        summarize_masks(['a', 'b'], masks)


def test_write_prediction_files(tmp_path):
    masks = _masks()
    pred = summarize_masks(['a', 'b', 'c'], masks, parse_status=['ok'] * 3)
    pic = np.zeros((10, 10, 3), np.uint8)
    paths = write_prediction(str(tmp_path), 'img1', pred, pic)
    record = json.load(open(paths['json']))
    assert record['phrases'] == ['a', 'b', 'c']
    assert (rles_to_masks(record['masks']) == masks).all()
    png = cv2.imread(paths['mask_2'], cv2.IMREAD_GRAYSCALE)
    assert ((png == 255) == masks[2]).all()
    assert cv2.imread(paths['vis']).shape == (10, 10, 3)
