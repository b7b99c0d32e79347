# Copyright (c) mmrefseg contributors.
"""RefSegmentor with the MLLMSeg neck/head on the synthetic dataset."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmrefseg.registry import DATASETS, MODELS

TOK = dict(type='tiny_bpe', vocab_size=1024)
NUM_IMAGE_TOKENS = 4  # 56 px tiles, patch 14, pixel shuffle 0.5


def _pipeline(test_mode: bool):
    return [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMasks'),
        dict(type='InternVLImageTransform', image_size=56),
        dict(type='PackRefSegInputs'),
    ]


def _dataset(root, split, test_mode, **kw):
    return DATASETS.build(
        dict(type='RefCOCODataset', data_root=root,
             dataset_name='synthrefcoco', split=split, test_mode=test_mode,
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=_pipeline(test_mode), **kw))


@pytest.fixture
def segmentor_cfg(tiny_backbone_cfg):
    return dict(
        type='RefSegmentor',
        data_preprocessor=dict(type='RefSegDataPreProcessor'),
        backbone=tiny_backbone_cfg,
        neck=dict(type='DSFFNeck', embed_dims=32, num_heads=2,
                  ffn_channels=32, dropout=0.0),
        decode_head=dict(type='LightMaskDecoderHead', embed_dims=32,
                         num_heads=2, ffn_channels=32, dropout=0.0))


def test_widths_are_filled_from_backbone(segmentor_cfg):
    model = MODELS.build(segmentor_cfg)
    assert model.neck.img_llm_down.in_features == 64  # llm width
    assert model.decode_head.text_down.in_features == 64
    assert model.decode_head.conv1[0].out_channels == 14 * 14  # patch²


def test_loss_and_predict_on_synthetic_data(segmentor_cfg, synthetic_root):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_cfg)
    train = _dataset(synthetic_root, 'train', False,
                     max_expressions_per_sample=3)
    batch = pseudo_collate([train[i] for i in range(4)])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_lm', 'loss_focal', 'loss_dice'}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.decode_head.conv2.weight.grad is not None
    assert model.backbone.hf.model.vision_tower.embeddings.patch_embeddings \
        .projection.weight.grad.abs().sum() > 0

    model.eval()
    val = _dataset(synthetic_root, 'val', True)
    samples = [val[i] for i in range(3)]
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(samples), False)
        preds = model(**data, mode='predict')
    for pred, sample in zip(preds, samples):
        gt = sample['data_samples'].gt_masks
        assert pred.pred_masks.shape == gt.shape  # [1, H, W]
        assert pred.pred_masks.dtype == torch.bool
        assert pred.pred_probs.shape == gt.shape
        assert pred.pred_no_target.tolist() == [False]
        probs = pred.pred_probs
        assert torch.equal(pred.pred_masks, probs > 0.5)
        # MMSeg's fields mirror them.
        assert torch.equal(pred.pred_sem_seg.data.bool(), pred.pred_masks)
        assert torch.equal(pred.seg_logits.data, probs)


def test_dual_perception_option_of_the_mllmseg_head(segmentor_cfg,
                                                    synthetic_root):
    """With ``dual_perception=True`` the LLM runs SELF1E's mask: image
    tokens read the later ``[SEG]``, so their states change with the
    expression written after the image; the default stays causal (the
    released model) and they do not."""
    torch.manual_seed(0)
    cfg = copy.deepcopy(segmentor_cfg)
    cfg['decode_head']['dual_perception'] = True
    # Read the image states in place (the released -1 shift would read
    # <img>, a causal text token, for the first cell).
    cfg['backbone']['image_state_offset'] = 0
    model = MODELS.build(cfg).eval()
    assert MODELS.build(segmentor_cfg).decode_head.llm_attention == 'causal'
    assert model.decode_head.llm_attention == 'dual_perception'
    inputs = model.data_preprocessor(pseudo_collate(
        [_dataset(synthetic_root, 'val', True)[0]]), False)['inputs']
    ids = inputs['input_ids'][0]
    img = torch.nonzero(ids == model.backbone.image_token_id).flatten()
    seg = int(torch.nonzero(ids == model.backbone.seg_token_id)[0])
    assert len(img) == NUM_IMAGE_TOKENS and seg > img[-1] + 3
    other = copy.deepcopy(inputs)
    # A token between the image and [SEG] (the expression) changes.
    k = int(img[-1]) + 3
    other['input_ids'][0, k] = (ids[k] + 1) % 900 + 10

    def image_states(batch, dual):
        model.decode_head.dual_perception = dual
        with torch.no_grad():
            return model.extract_feat(batch).llm_image_states

    for dual in (True, False):
        differ = not torch.allclose(image_states(inputs, dual),
                                    image_states(other, dual), atol=1e-5)
        assert differ == dual


def test_rej_slots_get_no_mask_loss(segmentor_cfg, synthetic_root):
    """A [REJ] expression contributes no mask to the loss, only text."""
    model = MODELS.build(segmentor_cfg)
    train = _dataset(synthetic_root, 'train', False)
    sample = copy.deepcopy(train[0])
    out = model.extract_feat(model.data_preprocessor(
        pseudo_collate([sample]), True)['inputs'])
    masks = model._gt_masks_for_seg_slots(out, [sample['data_samples']])
    assert len(masks) == 1
    # Same sample with its expression marked as no-target: [REJ] instead.
    sample['data_samples'].gt_no_target = torch.tensor([True])
    data = model.data_preprocessor(pseudo_collate([sample]), True)
    assert int((data['inputs']['input_ids'] ==
                model.backbone.rej_token_id).sum()) == 1
    out = model.extract_feat(model.data_preprocessor(
        pseudo_collate([sample]), True)['inputs'])
    assert model._gt_masks_for_seg_slots(out, [sample['data_samples']]) == []
    losses = model.loss(model.data_preprocessor(pseudo_collate([sample]),
                                                True)['inputs'],
                        [sample['data_samples']])
    assert float(losses['loss_mask']) == 0.0


def test_use_rej_empties_rejected_masks(segmentor_cfg, synthetic_root):
    val = _dataset(synthetic_root, 'val', True)
    for use_rej in (True, False):
        torch.manual_seed(0)
        model = MODELS.build(dict(segmentor_cfg,
                                  test_cfg=dict(use_rej=use_rej,
                                                threshold=-1.0))).eval()
        extract = model.extract_feat

        def prefers_rej(inputs):
            out = extract(inputs)
            out.slot_rej_score = torch.ones_like(out.slot_rej_score)
            return out

        model.extract_feat = prefers_rej
        data = model.data_preprocessor(pseudo_collate([val[0]]), False)
        with torch.no_grad():
            pred = model(**data, mode='predict')[0]
        # threshold -1 makes every pixel foreground unless rejected.
        assert pred.pred_no_target.tolist() == [use_rej]
        assert bool(pred.pred_masks.any()) is (not use_rej)


def _paper_gres_sample(root):
    """One gRefCOCO image with all its sentences and the GT [SEG]/[REJ]."""
    ds = DATASETS.build(
        dict(type='GRefCOCODataset', data_root=root, split='val',
             test_mode=True, test_grouping='image_one_prompt',
             data_prefix=dict(img_path='images/synthetic'),
             pipeline=[
                 dict(type='LoadRefImage'),
                 dict(type='LoadRefMasks'),
                 dict(type='InternVLImageTransform', image_size=56),
                 dict(type='PackRefSegInputs'),
             ]))
    for i in range(len(ds)):
        sample = ds[i]
        gt_nt = sample['data_samples'].gt_no_target.tolist()
        if any(gt_nt) and not all(gt_nt):
            return sample, [bool(f) for f in gt_nt]
    raise AssertionError('no image with both kinds of expressions')


def _force_argmax_rej(model, inputs, want):
    """Make argmax(lm_head(h[p - 1])) == [REJ] exactly at slots ``want``.

    Every lm_head row is zeroed except [REJ]'s, set to v with
    h_s . v = +1 (rejected) or -1 (kept): kept slots then argmax to
    token 0. Only the output layer changes, so hidden states do not.
    """
    bb = model.backbone
    assert bb.hf.lm_head.weight is not bb.hf.get_input_embeddings().weight
    with torch.no_grad():
        out = model.extract_feat(inputs)
        pos = out.slot_positions
        h = out.last_hidden_state[pos[:, 0], pos[:, 1] - 1].double()
        y = torch.tensor([1.0 if w else -1.0 for w in want],
                         dtype=torch.float64)
        v = torch.linalg.lstsq(h, y[:, None]).solution[:, 0]
        assert torch.allclose(h @ v, y, atol=1e-6)
        bb.hf.lm_head.weight.zero_()
        bb.hf.lm_head.weight[bb.rej_token_id] = v.float()


@pytest.mark.parametrize('keep', [True, False])
def test_argmax_teacher_forced_decision_and_reeval(segmentor_cfg,
                                                   synthetic_root, keep):
    """MLLMSeg's GRES protocol: decision from the GT-answer pass (argmax
    over the vocabulary before each slot), masks from a second pass with
    every [REJ] turned into [SEG]."""
    from mmrefseg.evaluation.metrics import RefSegMetric
    sample, gt_nt = _paper_gres_sample(synthetic_root)
    torch.manual_seed(0)
    # The paper protocol's prompt: all sentences, the GT [SEG]/[REJ].
    segmentor_cfg['backbone']['processor'] = dict(
        test_prompt_style='mllmseg_paper_eval', test_reject_no_target=True)
    model = MODELS.build(dict(
        segmentor_cfg,
        test_cfg=dict(use_rej=True, rej_decision='argmax_teacher_forced',
                      keep_rejected_masks=keep))).eval()
    bb = model.backbone
    data = model.data_preprocessor(pseudo_collate([sample]), False)
    ids = data['inputs']['input_ids']
    assert int((ids == bb.rej_token_id).sum()) == sum(gt_nt)
    # Decisions disagreeing with the GT both ways: reject the first target
    # expression, accept the last no-target one.
    want = list(gt_nt)
    want[gt_nt.index(False)] = True
    want[len(gt_nt) - 1 - gt_nt[::-1].index(True)] = False
    _force_argmax_rej(model, data['inputs'], want)

    seen = []
    extract = model.extract_feat

    def recording(inputs):
        seen.append(inputs['input_ids'].clone())
        return extract(inputs)

    model.extract_feat = recording
    with torch.no_grad():
        pred = model(**copy.deepcopy(data), mode='predict')[0]
    assert len(seen) == 2
    assert torch.equal(seen[0], ids)
    assert torch.equal(
        seen[1], ids.masked_fill(ids == bb.rej_token_id, bb.seg_token_id))
    assert pred.pred_no_target.tolist() == want

    # The masks are those of a plain [SEG]-everywhere pass, for every
    # expression (GT [REJ] ones included).
    model.extract_feat = extract
    plain = copy.deepcopy(data)
    plain['inputs']['input_ids'] = seen[1]
    model.test_cfg.update(use_rej=False, rej_decision='seg_vs_rej')
    with torch.no_grad():
        ref = model(**plain, mode='predict')[0]
    probs, ref_probs = pred.seg_logits.data, ref.seg_logits.data
    for k, rejected in enumerate(want):
        if rejected and not keep:
            assert not probs[k].any() and not pred.pred_sem_seg.data[k].any()
        else:
            assert torch.equal(probs[k], ref_probs[k])
            assert probs[k].any()
    assert torch.equal(pred.pred_sem_seg.data.bool(),
                       (probs > 0.5) & (probs > 0).any(-1).any(-1)[:, None,
                                                                   None])

    # What the metric's GRES confusion counts see.
    metric = RefSegMetric(gres_rule='mllmseg')
    metric.process({}, [pred.to_dict()])
    sums = metric.local_state(size=1, rank=0, world_size=1)['sums']
    pairs = list(zip(gt_nt, want))
    assert sums['TP'] == pairs.count((True, True))
    assert sums['FN'] == pairs.count((True, False))
    assert sums['FP'] == pairs.count((False, True)) == 1
    assert sums['TN'] == pairs.count((False, False))


def test_argmax_teacher_forced_without_rej_runs_once(segmentor_cfg,
                                                     synthetic_root):
    """No [REJ] in the answer: no reeval pass; same masks as the default."""
    val = _dataset(synthetic_root, 'val', True)
    data = pseudo_collate([val[0]])
    torch.manual_seed(0)
    model = MODELS.build(dict(
        segmentor_cfg,
        test_cfg=dict(use_rej=True,
                      rej_decision='argmax_teacher_forced'))).eval()
    calls = []
    extract = model.extract_feat
    model.extract_feat = lambda inputs: calls.append(1) or extract(inputs)
    with torch.no_grad():
        pred = model(**model.data_preprocessor(copy.deepcopy(data), False),
                     mode='predict')[0]
        model.test_cfg.update(use_rej=False, rej_decision='seg_vs_rej')
        ref = model(**model.data_preprocessor(copy.deepcopy(data), False),
                    mode='predict')[0]
    assert len(calls) == 2  # one per predict call
    assert torch.equal(pred.seg_logits.data, ref.seg_logits.data)
    with pytest.raises(ValueError, match='rej_decision'):
        MODELS.build(dict(segmentor_cfg, test_cfg=dict(rej_decision='x')))


def test_resize_probs_follows_mllmseg(segmentor_cfg, synthetic_root):
    """resize='probs': bilinear resize of sigmoid probabilities, >= thr."""
    import torch.nn.functional as F
    val = _dataset(synthetic_root, 'val', True)
    torch.manual_seed(0)
    model = MODELS.build(dict(segmentor_cfg,
                              test_cfg=dict(resize='probs'))).eval()
    data = model.data_preprocessor(pseudo_collate([val[0]]), False)
    with torch.no_grad():
        pred = model(**copy.deepcopy(data), mode='predict')[0]
        logits = torch.cat(model._forward(data['inputs']))
    h, w = pred.metainfo['ori_shape'][:2]
    probs = F.interpolate(logits.float().sigmoid(), size=(h, w),
                          mode='bilinear', align_corners=False)[:, 0]
    assert torch.equal(pred.seg_logits.data, probs)
    assert torch.equal(pred.pred_sem_seg.data.bool(), probs >= 0.5)
    with pytest.raises(ValueError, match='resize'):
        MODELS.build(dict(segmentor_cfg, test_cfg=dict(resize='x')))


def test_auxiliary_head_adds_losses_and_never_predicts(segmentor_cfg,
                                                       synthetic_root):
    torch.manual_seed(0)
    plain = MODELS.build(segmentor_cfg)
    cfg = copy.deepcopy(segmentor_cfg)
    cfg['auxiliary_head'] = dict(type='LLMStateAuxHead', embed_dims=16)
    model = MODELS.build(cfg)
    assert model.with_auxiliary_head
    assert model.auxiliary_head.image_proj.in_features == 64  # filled in
    model.init_weights()
    missing, unexpected = plain.load_state_dict(model.state_dict(),
                                                strict=False)
    assert not missing
    assert unexpected and all(k.startswith('auxiliary_head.')
                              for k in unexpected)

    train = _dataset(synthetic_root, 'train', False)
    data = model.data_preprocessor(
        pseudo_collate([train[i] for i in range(4)]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_lm', 'loss_focal', 'loss_dice',
                           'aux.loss_cross_entropy', 'aux.loss_dice'}
    plain_losses = plain(**data, mode='loss')
    for key in plain_losses:
        torch.testing.assert_close(losses[key], plain_losses[key])
    # The auxiliary loss alone reaches the LLM through the image states.
    losses['aux.loss_dice'].backward(retain_graph=True)
    assert model.auxiliary_head.image_proj.weight.grad.abs().sum() > 0
    llm_grad = [p.grad for n, p in model.backbone.named_parameters()
                if '.language_model.' in n and p.grad is not None]
    assert llm_grad and sum(g.abs().sum() for g in llm_grad) > 0

    model.eval()
    plain.eval()
    val = _dataset(synthetic_root, 'val', True)
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate([val[i] for i in range(2)]), False)
        preds = model(**data, mode='predict')
        plain_preds = plain(**data, mode='predict')
    for a, b in zip(preds, plain_preds):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)


def test_auxiliary_head_of_a_seg_free_protocol_needs_a_learned_query(
        tiny_backbone_cfg):
    with pytest.raises(ValueError, match="query='learned'"):
        MODELS.build(dict(type='RefSegmentor', backbone=tiny_backbone_cfg,
                          decode_head=dict(type='Self1EHead'),
                          auxiliary_head=dict(type='LLMStateAuxHead')))


def test_the_segmentor_calls_only_the_declared_interface(segmentor_cfg):
    """A head must be a BaseRefHead; what it declares reaches the
    backbone; generation cannot run a non-causal attention policy."""
    with pytest.raises(TypeError, match='BaseRefHead'):
        MODELS.build(dict(segmentor_cfg, neck=None,
                          decode_head=dict(type='LLMStateAuxHead')))
    cfg = copy.deepcopy(segmentor_cfg)
    cfg['decode_head']['dual_perception'] = True
    with pytest.raises(ValueError, match='generate'):
        MODELS.build(dict(cfg, test_cfg=dict(mode='generate')))
    model = MODELS.build(cfg)
    seen = {}
    forward = model.backbone.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return forward(*args, **kwargs)

    model.backbone.forward = spy
    ids = torch.tensor([[1, 2]])
    with pytest.raises(ValueError):  # no image tokens: fails after the spy
        model.extract_feat(dict(pixel_values=torch.zeros(1, 3, 56, 56),
                                input_ids=ids))
    assert seen['llm_attention'] == 'dual_perception'
    assert seen['uncompressed_vision'] is False


def test_no_model_module_imports_datasets_or_hands_heads_the_backbone():
    """In code (not prose): nothing under mmrefseg/models imports
    mmrefseg.datasets, and no head names a backbone or a tokenizer."""
    import ast
    import glob
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    models = osp.join(root, 'mmrefseg', 'models')
    banned = {'backbone', 'tokenizer'}
    paths = glob.glob(osp.join(models, '**', '*.py'), recursive=True)
    assert len(paths) > 20
    for path in paths:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or '').startswith(
                    'mmrefseg.datasets'), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith('mmrefseg.datasets')
                               for a in node.names), path
            if osp.basename(osp.dirname(path)) != 'heads':
                continue
            if isinstance(node, ast.ImportFrom):
                assert 'backbones' not in (node.module or ''), path
            names = {getattr(node, 'id', None), getattr(node, 'attr', None),
                     getattr(node, 'arg', None)}
            assert not names & banned, (path, getattr(node, 'lineno', 0))
