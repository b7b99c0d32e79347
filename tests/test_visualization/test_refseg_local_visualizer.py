# Copyright (c) mmrefseg contributors.
import numpy as np
import pytest

from mmrefseg.visualization.refseg_local_visualizer import (
    RefSegLocalVisualizer,
    expression_color,
    overlay_masks,
)


def _scene(h=120, w=160):
    img = np.full((h, w, 3), 100, np.uint8)
    masks = np.zeros((3, h, w), bool)
    masks[0, 10:50, 10:60] = True
    masks[1, 60:110, 90:150] = True
    return img, masks  # masks[2] is empty: a "no target" phrase


def test_overlay_paints_each_mask_in_its_colour():
    img, masks = _scene()
    out = overlay_masks(img, masks, alpha=0.5)
    for k in (0, 1):
        ys, xs = np.nonzero(masks[k])
        inner = out[int(ys.mean()), int(xs.mean())].astype(int)
        want = (np.asarray(expression_color(k)) * 0.5 + 100 * 0.5)
        assert np.abs(inner - want).max() <= 1
    # outside every mask the image is untouched
    assert (out[0, -1] == img[0, -1]).all()
    assert expression_color(0) != expression_color(1)


def test_picture_layout_gt_beside_prediction_and_legend():
    img, masks = _scene()
    vis = RefSegLocalVisualizer(name='test_vis_layout', min_width=160,
                                font_size=12)
    texts = ['the left box', 'the right box', 'a unicorn']
    pred_only = vis.draw_expressions(img, texts, masks,
                                     ['p=0.9', 'p=0.8', 'no target'])
    both = vis.draw_expressions(img, texts, masks, None, masks,
                                ['', '', 'GT: no target'])
    # two panels and a gap side by side; legend rows below the image
    assert both.shape[1] == 2 * pred_only.shape[1] + 8
    legend_top = 18 + img.shape[0]
    assert pred_only.shape[0] > legend_top + 3 * 18
    legend = pred_only[legend_top:]
    # one colour swatch per phrase, the empty one included
    for k in range(3):
        assert (legend == np.asarray(expression_color(k), np.uint8)).all(
            -1).sum() >= 12 * 12 * 0.9
    # the phrases are written: dark pixels right of the swatches
    text_area = legend[:, 30:]
    assert (text_area.max(-1) < 80).sum() > 200


def test_small_images_are_enlarged_for_a_legible_legend():
    img, masks = _scene(40, 50)
    vis = RefSegLocalVisualizer(name='test_vis_small', min_width=200)
    out = vis.draw_expressions(img, ['a', 'b', 'c'], masks)
    assert out.shape[1] == 200
    # the first mask covers the enlarged area at 4x scale
    ys, xs = np.nonzero(masks[0])
    y, x = int(ys.mean() * 4) + 24, int(xs.mean() * 4)
    assert tuple(out[y + 6, x + 10]) != (100, 100, 100)


def test_mask_count_must_match_texts():
    img, masks = _scene()
    vis = RefSegLocalVisualizer(name='test_vis_mismatch')
    with pytest.raises(ValueError):
        vis.draw_expressions(img, ['only one'], masks)
