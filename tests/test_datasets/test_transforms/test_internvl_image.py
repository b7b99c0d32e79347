# Copyright (c) mmrefseg contributors.
import numpy as np
from PIL import Image

from mmrefseg.datasets.transforms import InternVLImageTransform
from mmrefseg.datasets.transforms.internvl_image import closest_tile_grid


def test_squash_matches_pil_bicubic_and_imagenet_norm():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    out = InternVLImageTransform(image_size=28)(dict(img=img))
    assert out['pixel_values'].shape == (1, 3, 28, 28)
    assert out['num_tiles'] == 1 and out['tile_grid'] == (1, 1)
    ref = np.asarray(Image.fromarray(img).resize((28, 28), Image.BICUBIC),
                     np.float32) / 255.
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    expected = ((ref - mean) / std).transpose(2, 0, 1)
    assert np.allclose(out['pixel_values'][0], expected, atol=1e-5)


def test_dynamic_tiles_follow_aspect_ratio_and_add_thumbnail():
    img = np.zeros((20, 62, 3), np.uint8)
    img[:, 31:] = 255  # right half white
    t = InternVLImageTransform(image_size=14, mode='dynamic', max_tiles=6)
    out = t(dict(img=img))
    assert out['tile_grid'] == (1, 3)  # aspect 3.1 → 3 columns, 1 row
    assert out['num_tiles'] == 4  # + thumbnail
    px = out['pixel_values']
    assert px[0].mean() < px[2].mean()  # left tile dark, right tile bright


def test_closest_tile_grid():
    # Ties between equal aspect ratios go to the bigger grid only for an
    # image with enough pixels to fill more than half of it.
    assert closest_tile_grid(100, 100, 1, 12, 448) == (1, 1)
    assert closest_tile_grid(2000, 2000, 1, 12, 448) == (3, 3)
    assert closest_tile_grid(200, 100, 1, 12, 448) == (2, 1)
    assert closest_tile_grid(100, 300, 1, 12, 448) == (1, 3)
    assert closest_tile_grid(1000, 100, 1, 6, 448) == (6, 1)
