# Copyright (c) mmrefseg contributors.
"""Self1EHead: released names, RFR/RFA math, losses, end to end."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmrefseg.datasets.prompts import PROMPT_STYLES
from mmrefseg.models.backbones import MLLMOutputs
from mmrefseg.models.heads import Self1EHead
from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
SPECIAL = ['[SEG]', '[SEGT]']


def released_shapes(c: int) -> dict:
    """``combine_decode_proj*`` keys of the released SELF1E checkpoints."""
    shapes = {}
    for name, out in (('combine_decode_proj', c), ('combine_decode_proj_all',
                                                   4 * c),
                      ('combine_decode_proj_ori', 4 * c)):
        shapes.update({
            f'{name}.0.weight': (c, c),
            f'{name}.0.bias': (c, ),
            f'{name}.2.weight': (out, c),
            f'{name}.2.bias': (out, )
        })
    return shapes


@pytest.mark.parametrize('c,expected', [(1536, 28_329_984),
                                        (3584, 154_183_680)])
def test_released_names_and_parameter_count(c, expected):
    with torch.device('meta'):
        head = Self1EHead(llm_channels=c)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == released_shapes(c)
    count = sum(p.numel() for p in head.parameters())
    assert count == 12 * c * c + 12 * c == expected


@pytest.mark.parametrize('size,c', [('2b', 1536), ('8b', 3584)])
def test_real_configs_build_on_meta(size, c):
    cfg = Config.fromfile(f'configs/self1e/internvl3_{size}_refcoco.py')
    backbone = cfg.model.backbone
    # No checkpoint or tokenizer files: the inline architecture and the tiny
    # tokenizer (whose <IMG_CONTEXT> is id 5).
    backbone.update(pretrained=None, tokenizer=TOK)
    backbone.config['image_token_id'] = 5
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.llm_channels == c
    head_params = sum(p.numel() for p in model.decode_head.parameters())
    assert head_params == 12 * c * c + 12 * c
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any('language_model' in n and 'lora_A' in n for n in names)
    assert any('vision_tower' in n and 'lora_A' in n for n in names)
    assert any('multi_modal_projector' in n for n in names)
    lora_a = next(p for n, p in model.named_parameters() if 'lora_A' in n)
    assert lora_a.shape[0] == 128


# --------------------------------------------------------------- fakes
C, C_VIT = 8, 4


def _fake_backbone(projector: nn.Module):
    return SimpleNamespace(
        hf=SimpleNamespace(config=SimpleNamespace(vision_feature_layer=-1)),
        project=projector,
        dtype=torch.float32,
        image_state_offset=0,
        downsample_ratio=0.5)


def _fake_outputs(num_tiles, seg_owner, grid=2):
    n = sum(num_tiles)
    tile_to_sample = torch.repeat_interleave(torch.arange(len(num_tiles)),
                                             torch.tensor(num_tiles))
    owner = torch.tensor(seg_owner, dtype=torch.long)
    return MLLMOutputs(
        vit_features={-1: torch.randn(n, C_VIT, 2 * grid, 2 * grid)},
        image_embeds=torch.randn(n, C, grid, grid),
        llm_image_states=torch.randn(n, C, grid, grid),
        seg_states=torch.randn(len(seg_owner), C),
        seg_to_sample=owner,
        seg_to_image=owner,
        slot_positions=torch.stack([owner, torch.arange(len(owner))], 1),
        slot_is_seg=torch.ones(len(owner), dtype=torch.bool),
        slot_rej_score=None,
        tile_to_sample=tile_to_sample,
        last_hidden_state=torch.zeros(1),
        vit_grid=(2 * grid, 2 * grid),
        llm_grid=(grid, grid))


def _unshuffle_by_loops(x):
    """(h, w, 4c) -> (2h, 2w, c), one sub-pixel at a time."""
    h, w, ch = x.shape
    c = ch // 4
    out = x.new_zeros(2 * h, 2 * w, c)
    for dr in range(2):
        for dc in range(2):
            k = 2 * dr + dc
            out[dr::2, dc::2] = x[..., k * c:(k + 1) * c]
    return out


def test_forward_matches_a_direct_computation():
    """A 1x2 tile grid (non-square) and a single-tile conversation."""
    torch.manual_seed(0)
    head = Self1EHead(llm_channels=C)
    head.init_weights()
    projector = nn.Sequential(nn.LayerNorm(4 * C_VIT), nn.Linear(4 * C_VIT, C))
    backbone = _fake_backbone(projector)
    out = _fake_outputs([2, 1], [0, 0, 1])
    samples = [
        SegDataSample(metainfo=dict(tile_grid=(1, 2))),
        SegDataSample(metainfo=dict(tile_grid=(1, 1)))
    ]
    layouts = head.tile_layouts(samples, out)
    assert layouts == [(0, 1, 2), (2, 1, 1)]
    logits, aux = head(out, backbone, layouts, with_aux=True)
    assert logits[0].shape == (2, 1, 8, 16) and aux[0].shape == (2, 1, 4, 8)
    assert logits[1].shape == (1, 1, 8, 8)

    def grid(t, tiles):  # (n, C, h, w) tiles side by side, channels last
        return torch.cat([t[i].permute(1, 2, 0) for i in tiles], dim=1)

    p_dec = head.combine_decode_proj
    p_all = head.combine_decode_proj_all
    p_ori = head.combine_decode_proj_ori
    seg = p_dec(p_all(out.seg_states).view(-1, 4, C).mean(1))
    for b, tiles, queries in ((0, [0, 1], [0, 1]), (1, [2], [2])):
        wide = p_all(grid(out.llm_image_states, tiles))
        res = _unshuffle_by_loops(wide - p_ori(grid(out.image_embeds, tiles)))
        vit = grid(out.vit_features[-1], tiles)
        amp = _unshuffle_by_loops(p_ori(projector(vit.repeat(1, 1, 4))))
        up = F.interpolate(res.permute(2, 0, 1)[None],
                           size=amp.shape[:2],
                           mode='bilinear',
                           align_corners=False)[0]
        feats = p_dec(amp + up.permute(1, 2, 0))
        expected = torch.einsum('hwc,qc->qhw', feats, seg[queries])
        torch.testing.assert_close(logits[b][:, 0], expected / math.sqrt(C))
        low = torch.einsum('hwc,qc->qhw', _unshuffle_by_loops(wide),
                           seg[queries])
        torch.testing.assert_close(aux[b][:, 0], low / math.sqrt(C))

    # A trailing thumbnail tile is skipped by the pixel maps.
    thumb = [SegDataSample(metainfo=dict(tile_grid=(1, 2)))]
    assert head.tile_layouts(thumb, _fake_outputs([3], [0])) == [(0, 1, 2)]


def test_loss_follows_the_spec_formula():
    """2 BCE + 0.5 Dice(scale 1000) on full and aux logits, GT resized to
    short side 128, summed over masks and divided by the rows."""
    torch.manual_seed(0)
    head = Self1EHead(llm_channels=C)
    out = _fake_outputs([1, 1, 1], [0, 0, 1])  # row 2 has no [SEG]
    logits = [torch.randn(2, 1, 8, 8), torch.randn(1, 1, 8, 8), None]
    aux = [torch.randn(2, 1, 4, 4), torch.randn(1, 1, 4, 4), None]
    head.forward = lambda *args, **kwargs: (logits, aux)
    gts = [
        torch.rand(2, 200, 300) > 0.5,
        torch.rand(1, 200, 300) > 0.7,
        torch.zeros(0, 200, 300, dtype=torch.bool)
    ]
    samples = []
    for gt in gts:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=gt.to(torch.uint8))
        samples.append(sample)
    out.slot_positions = torch.tensor([[0, 0], [0, 1], [1, 0]])
    losses = head.loss_mllm(out, samples, backbone=None)
    assert set(losses) == {
        'loss_bce', 'loss_dice', 'loss_bce_aux', 'loss_dice_aux'
    }

    def dice(x, t):  # the original, scale 1000 and eps 1e-6
        p = x.sigmoid().flatten(1)
        t = t.flatten(1)
        num = 2 * (p / 1000 * t).sum(-1)
        den = (p / 1000).sum(-1) + (t / 1000).sum(-1)
        return 1 - (num + 1e-6) / (den + 1e-6)

    for suffix, maps in (('', logits), ('_aux', aux)):
        bce = dice_sum = 0.
        for b in range(2):
            target = F.interpolate(gts[b][:, None].float(),
                                   size=(128, 192),
                                   mode='bilinear',
                                   align_corners=False)
            pred = F.interpolate(maps[b],
                                 size=(128, 192),
                                 mode='bilinear',
                                 align_corners=False)
            bce = bce + F.binary_cross_entropy_with_logits(
                pred, target, reduction='none').mean((1, 2, 3)).sum()
            dice_sum = dice_sum + dice(pred, target).sum()
        torch.testing.assert_close(losses['loss_bce' + suffix], 2.0 * bce / 3)
        torch.testing.assert_close(losses['loss_dice' + suffix],
                                   0.5 * dice_sum / 3)


def test_batch_without_seg_gives_zero_connected_losses():
    head = Self1EHead(llm_channels=C)
    out = _fake_outputs([1], [])
    out.slot_positions = torch.zeros(0, 2, dtype=torch.long)
    losses = head.loss_mllm(out, [SegDataSample()], backbone=None)
    assert len(losses) == 4
    assert all(float(v) == 0 and v.requires_grad for v in losses.values())


def test_self1e_prompt_style():
    style = PROMPT_STYLES['self1e']
    assert style(['The red circle '], [False], None) == (
        'What is the red circle in this image? Please output segmentation '
        'mask.', '[SEG].')
    rng = np.random.default_rng(0)
    for _ in range(20):
        question, answer = style(['a b'], [True], rng)
        assert 'a b' in question and answer.count('[SEG]') == 1
        assert '[REJ]' not in answer
    _, answer = style(['x', 'y z'], [False, False], rng)
    assert answer.count('[SEG]') == 2 and 'x: [SEG], y z: [SEG]' in answer


# ---------------------------------------------------------- end to end
def _pipeline(test_mode: bool):
    return [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMasks'),
        dict(type='InternVLImageTransform', image_size=56),
        dict(type='BuildConversation',
             tokenizer=TOK,
             num_image_tokens=4,
             prompt_style='self1e',
             extra_special_tokens=SPECIAL,
             test_mode=test_mode),
        dict(type='PackRefSegInputs'),
    ]


def _dataset(root, split, test_mode, **kw):
    return DATASETS.build(
        dict(type='RefCOCODataset',
             data_root=root,
             dataset_name='synthrefcoco',
             split=split,
             test_mode=test_mode,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=_pipeline(test_mode),
             **kw))


@pytest.fixture
def segmentor_cfg(tiny_backbone_cfg):
    backbone = dict(tiny_backbone_cfg,
                    extra_special_tokens=SPECIAL,
                    image_state_offset=0,
                    seg_state_offset=-1)
    return dict(type='RefSegmentor',
                data_preprocessor=dict(type='RefSegDataPreProcessor'),
                backbone=backbone,
                decode_head=dict(type='Self1EHead'))


def test_train_and_predict_with_padding_and_several_segs(
        segmentor_cfg, synthetic_root):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg)
    model.init_weights()
    train = _dataset(synthetic_root,
                     'train',
                     False,
                     max_expressions_per_sample=3)
    items = [train[i] for i in range(4)]
    data = model.data_preprocessor(pseudo_collate(items), True)
    lengths = data['inputs']['attention_mask'].sum(1)
    assert len(set(lengths.tolist())) > 1  # padding in the batch
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'loss_lm', 'loss_bce', 'loss_dice', 'loss_bce_aux', 'loss_dice_aux'
    }
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    hf = model.backbone.hf.model
    for param in (
            model.decode_head.combine_decode_proj_ori[0].weight,
            hf.multi_modal_projector.linear_1.weight,
            hf.vision_tower.embeddings.patch_embeddings.projection.weight,
            hf.language_model.layers[0].mlp.up_proj.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0

    # Several [SEG] per conversation; each conversation's logits are the
    # same in the padded batch as alone.
    model.eval()
    inputs, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        out = model.extract_feat(inputs)
        layouts = model.decode_head.tile_layouts(samples, out)
        logits, _ = model.decode_head(out, model.backbone, layouts)
        assert [len(x) for x in logits
                ] == [len(s.metainfo['texts']) for s in samples]
        assert max(len(x) for x in logits) > 1
        b = int(lengths.argmin())
        alone = model.data_preprocessor(pseudo_collate([items[b]]), True)
        out1 = model.extract_feat(alone['inputs'])
        logits1, _ = model.decode_head(
            out1, model.backbone,
            model.decode_head.tile_layouts(alone['data_samples'], out1))
    torch.testing.assert_close(logits[b], logits1[0], atol=1e-4, rtol=1e-4)

    # The segmentor hands the head's mask to the LLM: image states differ
    # from a causal run.
    model.decode_head.dual_perception = False
    with torch.no_grad():
        causal = model.extract_feat(inputs)
    model.decode_head.dual_perception = True
    assert not torch.allclose(
        causal.llm_image_states, out.llm_image_states, atol=1e-4)

    val = _dataset(synthetic_root, 'val', True)
    items = [val[i] for i in range(3)]
    with torch.no_grad():
        preds = model(**model.data_preprocessor(pseudo_collate(items), False),
                      mode='predict')
    for pred, item in zip(preds, items):
        gt = item['data_samples'].gt_sem_seg.data
        assert pred.pred_sem_seg.data.shape == gt.shape
        probs = pred.seg_logits.data
        assert torch.equal(pred.pred_sem_seg.data.bool(), probs > 0.5)
        assert pred.metainfo['pred_no_target'] == [
            not bool(pred.pred_sem_seg.data.any())
        ]


def test_a_few_steps_reduce_the_loss(segmentor_cfg, synthetic_root):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg)
    model.init_weights()
    train = _dataset(synthetic_root, 'train', False)
    data = model.data_preprocessor(
        pseudo_collate([train[i] for i in range(4)]), True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(8):
        losses = model(**data, mode='loss')
        mask_loss = sum(v for k, v in losses.items() if k != 'loss_lm')
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
        history.append(float(mask_loss))
    assert all(b < a for a, b in zip(history, history[1:]))
    assert history[-1] < 0.85 * history[0]


def test_bf16_backbone_with_trained_projector_predicts_without_autocast(
        segmentor_cfg, synthetic_root):
    """The SELF1E recipe trains the projector (float32 master weights) on a
    bf16 model; evaluation runs without autocast."""
    segmentor_cfg['backbone'].update(torch_dtype='bfloat16',
                                     freeze_vit=True,
                                     freeze_projector=False,
                                     freeze_llm=True)
    model = MODELS.build(segmentor_cfg).eval()
    projector = model.backbone.hf.model.multi_modal_projector
    assert projector.linear_1.weight.dtype == torch.float32
    val = _dataset(synthetic_root, 'val', True)
    with torch.no_grad():
        pred = model(**model.data_preprocessor(pseudo_collate([val[0]]),
                                               False),
                     mode='predict')[0]
    assert torch.isfinite(pred.seg_logits.data).all()
