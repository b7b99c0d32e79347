# Copyright (c) mmrefseg contributors.
"""SamMaskRefiner on a tiny random transformers SamModel loaded from disk."""

import cv2
import numpy as np
import pytest
import torch

from mmrefseg.models.heads import Text4SegHead
from mmrefseg.models.utils import SamMaskRefiner
from mmrefseg.models.utils.sam_refiner import resized_shape
from mmrefseg.registry import MODELS

SAM_SIZE = 128  # input side; the mask prompt is 4 * 8 = 32 px


@pytest.fixture(scope='module')
def sam_dir(tmp_path_factory) -> str:
    from transformers import SamConfig, SamModel
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, mlp_dim=64,
                           image_size=SAM_SIZE, patch_size=16,
                           output_channels=32, num_pos_feats=16,
                           global_attn_indexes=[1], window_size=4),
        prompt_encoder_config=dict(hidden_size=32, image_size=SAM_SIZE,
                                   image_embedding_size=8, patch_size=16,
                                   mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2,
                                 mlp_dim=64, iou_head_hidden_dim=32))
    path = str(tmp_path_factory.mktemp('sam') / 'tiny_sam')
    SamModel(config).save_pretrained(path)
    return path


def _image_and_mask(h=60, w=100):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[10:30, 5:45] = True  # left part of a wide image
    return image, mask


def _spy(refiner):
    """Record the prompts of every SAM call."""
    calls = []
    sam = refiner.sam
    forward = sam.forward

    def spy(**kwargs):
        out = forward(**kwargs)
        calls.append(dict(kwargs, output=out.pred_masks))
        return out

    sam.forward = spy
    return calls


def test_refines_non_square_images_with_three_passes(sam_dir):
    refiner = MODELS.build(dict(type='SamMaskRefiner', checkpoint=sam_dir))
    image, mask = _image_and_mask()
    calls = _spy(refiner)
    out = refiner.refine(image, torch.from_numpy(mask))
    assert out.shape == (60, 100) and out.dtype == torch.bool
    assert len(calls) == 3
    new_h, new_w = resized_shape(60, 100, SAM_SIZE)  # (77, 128)
    points = calls[0]['input_points'][0, 0]
    labels = calls[0]['input_labels'][0, 0]
    assert labels.tolist().count(1) == 10 and labels.tolist().count(0) == 10
    # Points scaled into SAM's frame, positives inside the scaled mask.
    scale = torch.tensor([new_w / 100, new_h / 60])
    original = (points / scale).round().long()
    assert mask[original[labels == 1, 1], original[labels == 1, 0]].all()
    assert not mask[original[labels == 0, 1], original[labels == 0, 0]].any()
    assert (points[:, 0] < new_w).all() and (points[:, 1] < new_h).all()
    # Pass 1 gets the coarse mask, later passes the previous logits.
    first = calls[0]['input_masks']
    assert first.shape == (1, 1, 32, 32)
    for prev, call in zip(calls, calls[1:]):
        assert torch.equal(call['input_masks'], prev['output'][:, 0, :1])
        assert call['multimask_output'] is False
    assert torch.equal(calls[2]['input_points'], calls[0]['input_points'])


def test_mask_prompt_is_aspect_correct_and_padded(sam_dir):
    refiner = SamMaskRefiner(sam_dir, pad_value=0.0)
    image, mask = _image_and_mask()
    logits = refiner.mask_logits(torch.from_numpy(mask), 60, 100)[0, 0]
    mh, mw = resized_shape(60, 100, 32)  # (19, 32)
    assert torch.all(logits[mh:] == 0)  # padded rows below the image
    hi = np.log((1 - 1e-3) / 1e-3)
    expected = cv2.resize(np.where(mask, hi, -hi).astype(np.float32),
                          (mw, mh), interpolation=cv2.INTER_LINEAR)
    # The mask stays in the left ~45% of the valid width, not stretched.
    inside = (logits[:mh, :mw] > 0).nonzero()
    assert inside[:, 1].max() < 0.5 * mw
    assert np.abs(logits[:mh, :mw].numpy() - expected).max() < 1.5
    # The grid variant lands in the same region.
    grid = torch.zeros(4, 4, dtype=torch.bool)
    grid[:2, :2] = True
    from_grid = refiner.mask_logits(grid, 60, 100)[0, 0]
    assert torch.all(from_grid[mh:] == 0)
    assert (from_grid[:mh, :mw] > 0).nonzero()[:, 1].max() < 0.55 * mw


def test_preprocess_pads_bottom_right(sam_dir):
    refiner = SamMaskRefiner(sam_dir)
    image, _ = _image_and_mask()
    pixels, new_h, new_w = refiner.preprocess(image)
    assert pixels.shape == (1, 3, SAM_SIZE, SAM_SIZE)
    assert (new_h, new_w) == (77, 128)
    assert torch.all(pixels[..., new_h:, :] == 0)
    assert pixels[..., :new_h, :].abs().sum() > 0


def test_points_are_capped_and_seeded(sam_dir):
    refiner = SamMaskRefiner(sam_dir, num_pos_points=10, num_neg_points=3)
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[1, 2] = mask[3, 4] = True  # only two foreground pixels
    gen = torch.Generator().manual_seed(0)
    coords, labels = refiner.sample_points(mask, gen)
    assert labels.tolist() == [1, 1, 0, 0, 0]
    assert sorted(coords[:2].tolist()) == [[2.0, 1.0], [4.0, 3.0]]
    again = refiner.sample_points(mask, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], coords)


def test_empty_mask_skips_sam_and_bad_path_names_it(tmp_path):
    refiner = SamMaskRefiner(str(tmp_path / 'missing'))
    image, mask = _image_and_mask()
    out = refiner.refine(image, np.zeros_like(mask))
    assert not out.any() and refiner._sam is None  # never loaded
    with pytest.raises(FileNotFoundError, match='missing'):
        refiner.refine(image, mask)
    with pytest.raises(ValueError, match='mask_prompt'):
        SamMaskRefiner('x', mask_prompt='box')


def test_head_refines_with_the_image_of_the_batch(sam_dir):
    image, mask = _image_and_mask()
    head = Text4SegHead(grid_size=4, refiner=dict(
        type='SamMaskRefiner', checkpoint=sam_dir, mask_prompt='grid'))
    # SAM is not a submodule: it never enters our checkpoints.
    assert head.state_dict() == {}
    seen = {}
    refine = head.refiner.refine

    def spy(img, coarse, grid):
        seen.update(img=img, coarse=coarse, grid=grid)
        return refine(img, coarse, grid)

    head.refiner.refine = spy
    from mmrefseg.structures import RefSegDataSample
    sample = RefSegDataSample(metainfo=dict(ori_shape=(60, 100)))
    sample.texts = ['thing']
    answer = ("Sure:\n<seg>thing *2| others *2\n others *4\n others *4\n"
              ' others *4\n</seg>')
    pred = head.predict_by_answers([answer], [sample], images=[image])[0]
    assert seen['img'] is image  # the batch's RGB image, never the disk
    assert seen['grid'].tolist()[0] == [True, True, False, False]
    assert seen['coarse'].shape == (60, 100)
    assert pred.masks.shape == (1, 60, 100) and pred.masks.dtype == torch.bool
    assert pred.status == ['ok']
    with pytest.raises(ValueError, match='original image'):
        head.predict_by_answers([answer], [sample])


def test_geometry_matches_transformers_sam_processor(sam_dir):
    """Resize, point scaling and mask post-processing as SamProcessor."""
    from transformers import SamProcessor
    from transformers.models.sam.image_processing_pil_sam import (
        SamImageProcessorPil,
    )
    processor = SamProcessor(image_processor=SamImageProcessorPil(
        size=dict(longest_edge=SAM_SIZE),
        pad_size=dict(height=SAM_SIZE, width=SAM_SIZE)))
    image, _ = _image_and_mask()
    points = [[10.0, 20.0], [99.0, 59.0]]
    ref = processor(images=image, input_points=[[points]],
                    return_tensors='pt')
    refiner = SamMaskRefiner(sam_dir)
    pixels, new_h, new_w = refiner.preprocess(image)
    assert [new_h, new_w] == ref['reshaped_input_sizes'][0].tolist()
    assert (pixels - ref['pixel_values']).abs().max() < 0.05  # resampling
    ours = torch.tensor(points) * torch.tensor([new_w / 100, new_h / 60])
    assert torch.allclose(ours.double(), ref['input_points'][0, 0])
    low_res = torch.randn(1, 1, 32, 32)
    expected = processor.post_process_masks(
        low_res[None], ref['original_sizes'], ref['reshaped_input_sizes'],
        binarize=False)[0][0, 0] > 0
    assert torch.equal(refiner._postprocess(low_res, new_h, new_w, 60, 100),
                       expected)
