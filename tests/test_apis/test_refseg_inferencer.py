# Copyright (c) mmrefseg contributors.
"""RefSegInferencer on the tiny configs of the three methods (random
weights: the tests check the contract, not the quality)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmrefseg.apis import (
    RefSegInferencer,
    inference_model,
    init_model,
    rles_to_masks,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = dict(
    mllmseg=osp.join(ROOT, 'configs/mllmseg/mllmseg_tiny_synth.py'),
    self1e=osp.join(ROOT, 'configs/self1e/self1e_tiny_synth.py'),
    text4seg=osp.join(ROOT, 'configs/text4seg/text4seg_tiny_synth.py'))
PHRASES = ['the red circle', 'a big blue square on the left',
           'the small green star']


def _image(h=90, w=130, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3),
                                                dtype=np.uint8)


@pytest.fixture(scope='module')
def inferencers():
    opts = dict(text4seg={'model.decode_head.max_new_tokens': 24})
    return {name: RefSegInferencer(cfg, device='cpu',
                                   cfg_options=opts.get(name),
                                   show_progress=False)
            for name, cfg in CONFIGS.items()}


@pytest.mark.parametrize('method', ['mllmseg', 'self1e', 'text4seg'])
def test_several_phrases_per_image(inferencers, method, tmp_path):
    image = _image()
    path = str(tmp_path / 'scene.png')
    cv2.imwrite(path, image[..., ::-1])
    result = inferencers[method]([path, image[:60]],
                                 [PHRASES, PHRASES[:2]], return_vis=True,
                                 out_dir=str(tmp_path / 'out'))
    first, second = result['predictions']
    assert first['phrases'] == PHRASES and second['phrases'] == PHRASES[:2]
    assert first['masks'].shape == (3, 90, 130)
    assert first['masks'].dtype == bool
    assert second['masks'].shape == (2, 60, 130)
    for pred in (first, second):
        k = len(pred['phrases'])
        assert len(pred['scores']) == len(pred['boxes']) == k
        assert pred['areas'] == [int(m.sum()) for m in pred['masks']]
        for mask, box, nt in zip(pred['masks'], pred['boxes'],
                                 pred['no_target']):
            if not mask.any():
                assert box == [0, 0, 0, 0]
            else:
                ys, xs = np.nonzero(mask)
                assert box == [xs.min(), ys.min(), xs.max() + 1,
                               ys.max() + 1]
    if method == 'text4seg':
        assert all(isinstance(s, str) for s in first['parse_status'])
    else:
        assert first['parse_status'] == [None] * 3
    # one picture per image, wider than the image (legend, enlargement)
    assert len(result['visualization']) == 2
    assert result['visualization'][0].shape[0] > 90
    # files: the JSON's RLE masks decode to the returned masks
    record = json.load(open(tmp_path / 'out' / 'preds' / 'scene.json'))
    assert (rles_to_masks(record['masks']) == first['masks']).all()
    assert record['phrases'] == PHRASES
    assert osp.isfile(tmp_path / 'out' / 'vis' / 'image_1.png')
    png = cv2.imread(str(tmp_path / 'out' / 'masks' / 'scene_2.png'), 0)
    assert ((png > 0) == first['masks'][2]).all()


def test_no_target_path(inferencers):
    """A threshold above every probability empties every mask: SELF1E's
    rule turns that into "no target" with score 0 and an empty box."""
    inf = RefSegInferencer(CONFIGS['self1e'], device='cpu',
                           cfg_options={'model.test_cfg.threshold': 1.01},
                           show_progress=False)
    pred = inf(_image(), PHRASES[:2])['predictions'][0]
    assert pred['no_target'] == [True, True]
    assert pred['scores'] == [0.0, 0.0]
    assert pred['boxes'] == [[0, 0, 0, 0]] * 2
    # and a threshold of 0 selects every pixel: full box, score = mean prob
    inf = RefSegInferencer(CONFIGS['self1e'], device='cpu',
                           cfg_options={'model.test_cfg.threshold': 0.0},
                           show_progress=False)
    pred = inf(_image(), PHRASES[:1])['predictions'][0]
    assert pred['no_target'] == [False]
    assert pred['boxes'] == [[0, 0, 130, 90]]
    assert 0 < pred['scores'][0] < 1


def test_same_phrases_answer_the_same_alone_or_together(inferencers):
    """Each phrase is its own conversation: its mask does not depend on
    the other phrases of the call."""
    inf = inferencers['mllmseg']
    together = inf(_image(), PHRASES)['predictions'][0]
    alone = inf(_image(), [PHRASES[1]])['predictions'][0]
    assert (together['masks'][1] == alone['masks'][0]).all()


def test_bad_inputs(inferencers, tmp_path):
    inf = inferencers['self1e']
    with pytest.raises(ValueError, match='non-empty'):
        inf(_image(), ['the cat', '   '])
    with pytest.raises(ValueError, match='one list of strings per image'):
        inf([_image(), _image()], [['a'], ['b'], ['c']])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inf(str(tmp_path / 'missing.png'), 'a cat')
    with pytest.raises(FileNotFoundError, match='nope.py'):
        RefSegInferencer(str(tmp_path / 'nope.py'))
    # grey and RGBA arrays are accepted
    grey = _image()[..., 0]
    assert inf(grey, 'a')['predictions'][0]['masks'].shape == (1, 90, 130)


def test_init_model_and_inference_model():
    model = init_model(CONFIGS['self1e'], device='cpu')
    pred = inference_model(model, _image(), ['a', 'b'])
    assert pred['masks'].shape == (2, 90, 130)


def test_checkpoint_of_another_config_is_refused(inferencers, tmp_path):
    import torch

    from mmrefseg.engine.hooks import CheckpointMismatchError
    ckpt = str(tmp_path / 'mllmseg.pth')
    torch.save(dict(state_dict=inferencers['mllmseg'].model.state_dict()),
               ckpt)
    with pytest.raises(CheckpointMismatchError, match='does not match'):
        RefSegInferencer(CONFIGS['self1e'], weights=ckpt, device='cpu')
    # the right config loads it and predicts what the source model does
    same = RefSegInferencer(CONFIGS['mllmseg'], weights=ckpt, device='cpu',
                            show_progress=False)
    a = same(_image(), PHRASES[:1])['predictions'][0]['masks']
    b = inferencers['mllmseg'](_image(), PHRASES[:1])['predictions'][0][
        'masks']
    assert (a == b).all()


def test_an_exported_folder_is_a_whole_model(inferencers, tmp_path):
    """The folder of refsegmentor_to_hf.py loads with nothing else and
    predicts what the checkpoint it came from predicts."""
    import torch

    from mmrefseg.converters import export_refsegmentor
    source = inferencers['self1e']
    ckpt = str(tmp_path / 'self1e.pth')
    torch.save(dict(state_dict=source.model.state_dict()), ckpt)
    out = str(tmp_path / 'export')
    export_refsegmentor(CONFIGS['self1e'], ckpt, out, log=lambda msg: None)
    exported = RefSegInferencer(out, device='cpu', show_progress=False)
    want = source(_image(), PHRASES)['predictions'][0]
    got = exported(_image(), PHRASES)['predictions'][0]
    assert (got['masks'] == want['masks']).all()
    assert got['scores'] == pytest.approx(want['scores'], abs=1e-5)
    with pytest.raises(ValueError, match='holds its weights'):
        RefSegInferencer(out, weights=ckpt)
