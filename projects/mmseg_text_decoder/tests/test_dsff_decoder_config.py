# Copyright (c) mmrefseg contributors.
"""The project config's sizes agree with each other (run from the repository
root: ``pytest projects/mmseg_text_decoder/tests``). The one-step training
test of this config is tests/test_projects/test_mmseg_text_decoder.py."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

CFG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'dsff-decoder_r18-bert_synthrefcoco-160x160.py')


def test_masks_come_out_at_input_size_from_the_named_levels():
    from mmrefseg.registry import MODELS
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(CFG)
    size = cfg.image_size
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).eval()
    feats = model.extract_feat(torch.zeros(1, 3, size, size))
    fine, coarse = (feats[i] for i in cfg.model.decode_head.in_index)
    assert fine.shape[1:] == (cfg.stage_channels[cfg.fine_level],
                              size // cfg.fine_stride,
                              size // cfg.fine_stride)
    assert coarse.shape[-1] * 2 == fine.shape[-1]
    sample = SegDataSample(metainfo=dict(
        texts=['the red circle', 'the blue star'], img_path='x.jpg'))
    sample.gt_sem_seg = PixelData(
        data=torch.zeros((2, 7, 9), dtype=torch.uint8))
    data = dict(inputs=[torch.zeros(3, size, size, dtype=torch.uint8)],
                data_samples=[sample])
    batch = model.data_preprocessor(data)
    with torch.no_grad():
        logits = model(batch['inputs'], batch['data_samples'], mode='tensor')
    assert logits.shape == (2, 1, size, size)
