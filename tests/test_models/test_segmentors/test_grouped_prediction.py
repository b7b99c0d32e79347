# Copyright (c) mmrefseg contributors.
"""Evaluation grouped by image (test_grouping='image') gives the predictions
of one sample per expression, with the image encoded once.

Each method's tiny config on a few synthetic val images with 3+ expressions:
the prefix-shared path (pure MLLMSeg: causal, image first), the batched path
(hybrid MLLMSeg and SELF1E: question first / dual perception) and the
shared-prefix greedy generation (Text4Seg).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmrefseg.registry import DATASETS, MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIGS = {
    'mllmseg': ('configs/mllmseg/mllmseg_tiny_synth.py', 'prefix'),
    'mllmseg_hybrid': ('configs/mllmseg/mllmseg_hybrid_tiny_synth.py',
                       'batched'),
    'self1e': ('configs/self1e/self1e_tiny_synth.py', 'batched'),
    'text4seg': ('configs/text4seg/text4seg_tiny_synth.py', 'prefix'),
}
NUM_IMAGES = 2
MIN_EXPRESSIONS = 3
# Probabilities agree to float32 rounding (~1e-7); a pixel can only change
# side where its probability is that close to the threshold. The
# per-expression path itself does so between batch sizes (BLAS blocking),
# so masks are compared wherever the decision is not a rounding tie.
PROB_ATOL = 1e-4


def assert_same_mask(mask, ref_mask, ref_probs, threshold=0.5):
    """Identical binary masks away from rounding ties at the threshold."""
    decisive = (ref_probs - threshold).abs() > PROB_ATOL
    assert torch.equal(mask[decisive], ref_mask[decisive])
    # Ties are rare: at most one pixel in 10^5 may differ.
    assert int((mask != ref_mask).sum()) <= max(1, mask.numel() // 10**5)


def _model(name):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[name][0]))
    if name == 'text4seg':
        # A random model rarely ends its answer: keep generation short.
        cfg.model.decode_head.max_new_tokens = 12
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model).eval()


def _datasets(cfg, root):
    base = dict(cfg.test_dataloader.dataset, data_root=root, indices=None)
    return (DATASETS.build(dict(base, test_grouping='image')),
            DATASETS.build(dict(base, test_grouping='expression')))


def _paired_batches(cfg, root):
    """A batch of NUM_IMAGES images (3+ expressions each) grouped by image
    and the batch of the same expressions one per sample, same order."""
    by_image, by_expr = _datasets(cfg, root)
    picked = [i for i in range(len(by_image)) if len(
        by_image.get_data_info(i)['expressions']) >= MIN_EXPRESSIONS]
    picked = picked[:NUM_IMAGES]
    assert len(picked) == NUM_IMAGES
    where = {by_expr.get_data_info(i)['expressions'][0]['sent_id']: i
             for i in range(len(by_expr))}
    sents = [e['sent_id'] for i in picked
             for e in by_image.get_data_info(i)['expressions']]
    return (pseudo_collate([by_image[i] for i in picked]),
            pseudo_collate([by_expr[where[s]] for s in sents]))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_image_grouping_equals_per_expression(name, synthetic_root):
    cfg, model = _model(name)
    grouped, single = _paired_batches(cfg, synthetic_root)
    inputs = model.data_preprocessor(grouped)['inputs']
    assert len(inputs['conv_to_image']) == len(single['data_samples'])
    assert model.grouped_path(inputs) == CONFIGS[name][1]
    with torch.no_grad():
        by_image = model.test_step(grouped)
        by_expr = model.test_step(single)
    assert len(by_image) == NUM_IMAGES
    flat = [(s, k) for s in by_image for k in range(s.num_expressions)]
    assert len(flat) == len(by_expr)
    for (sample, k), ref in zip(flat, by_expr):
        assert sample.texts[k] == ref.texts[0]
        assert sample.pred_masks.shape[0] == sample.num_expressions
        assert_same_mask(sample.pred_masks[k], ref.pred_masks[0],
                         ref.pred_probs[0])
        assert torch.allclose(sample.pred_probs[k], ref.pred_probs[0],
                              atol=PROB_ATOL, rtol=0)
        assert bool(sample.pred_no_target[k]) == bool(ref.pred_no_target[0])
        assert torch.equal(sample.pred_sem_seg.data[k].bool(),
                           sample.pred_masks[k])
        if name == 'text4seg':
            assert sample.generated_texts[k] == ref.generated_texts[0]
            assert sample.parse_status[k] == ref.parse_status[0]
    if name != 'text4seg':
        # Not vacuous: the random models paint foreground somewhere.
        assert any(bool(r.pred_masks.any()) for r in by_expr)


class _Calls:
    """Counts a module's calls and records the batch/length of each."""

    def __init__(self, module, key):
        self.shapes = []
        self.key = key
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, _module, args, kwargs):
        x = kwargs.get(self.key, args[0] if args else None)
        self.shapes.append(tuple(x.shape[:2]))


def _count(model, grouped):
    hf = model.backbone.hf.model
    vit = _Calls(hf.vision_tower, 'pixel_values')
    llm = _Calls(hf.language_model, 'inputs_embeds')
    try:
        with torch.no_grad():
            model.test_step(grouped)
    finally:
        vit.handle.remove()
        llm.handle.remove()
    return vit.shapes, llm.shapes


def test_prefix_path_encodes_each_image_once(synthetic_root):
    cfg, model = _model('mllmseg')
    grouped, single = _paired_batches(cfg, synthetic_root)
    convs = len(single['data_samples'])
    tiles = sum(int(x.shape[0]) for x in grouped['inputs']['pixel_values'])
    vit, llm = _count(model, grouped)
    # ViT once, over each image's tiles (not once per expression).
    assert vit == [(tiles, 3)]
    # LLM: the shared prefix once per image, then the suffixes.
    n_img_tok = model.backbone.num_image_tokens
    assert len(llm) == 2
    (b_prefix, l_prefix), (b_suffix, l_suffix) = llm
    assert b_prefix == NUM_IMAGES and l_prefix > n_img_tok
    assert b_suffix == convs and l_suffix < n_img_tok
    # The per-expression path pays the image once per expression.
    vit, llm = _count(model, single)
    assert vit == [(convs, 3)] and llm[0][0] == convs
    assert llm[0][1] > n_img_tok


def test_batched_path_shares_the_vit(synthetic_root):
    cfg, model = _model('self1e')
    grouped, single = _paired_batches(cfg, synthetic_root)
    tiles = sum(int(x.shape[0]) for x in grouped['inputs']['pixel_values'])
    vit, llm = _count(model, grouped)
    assert vit == [(tiles, 3)]
    assert len(llm) == 1 and llm[0][0] == len(single['data_samples'])


def test_generation_decodes_all_expressions_together(synthetic_root):
    cfg, model = _model('text4seg')
    grouped, single = _paired_batches(cfg, synthetic_root)
    tiles = sum(int(x.shape[0]) for x in grouped['inputs']['pixel_values'])
    vit, llm = _count(model, grouped)
    assert vit == [(tiles, 3)]
    convs = len(single['data_samples'])
    # Prefix once per image, the prompts' suffixes, then one token per
    # step for every conversation of the batch at once.
    assert llm[0][0] == NUM_IMAGES
    assert all(b == convs for b, _ in llm[1:])
    assert all(n == 1 for _, n in llm[2:])
    # T new tokens take T - 1 decode passes: none after the budget's last.
    assert len(llm) <= 1 + model.decode_head.max_new_tokens


def test_one_and_several_phrases_in_one_batch():
    """A user's image with one phrase next to one with three (text-only
    samples, as the inferencer builds them)."""
    import numpy as np

    from mmrefseg.datasets.transforms import build_text_only_batch
    cfg, model = _model('mllmseg')
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (30, 41, 3), np.uint8),
              rng.randint(0, 256, (25, 33, 3), np.uint8)]
    phrases = [['the red circle'],
               ['the star', 'a small blue square', 'the left one']]

    def batch(grouping):
        parts = [build_text_only_batch(cfg, img, p, grouping=grouping)
                 for img, p in zip(images, phrases)]
        return dict(inputs={k: [v for b in parts for v in b['inputs'][k]]
                            for k in parts[0]['inputs']},
                    data_samples=[s for b in parts
                                  for s in b['data_samples']])

    with torch.no_grad():
        by_image = model.test_step(batch('image'))
        by_expr = model.test_step(batch('expression'))
    assert [p.pred_masks.shape for p in by_image] == [(1, 30, 41),
                                                      (3, 25, 33)]
    flat = [p.pred_masks[k] for p in by_image
            for k in range(p.num_expressions)]
    for mask, ref in zip(flat, by_expr):
        assert_same_mask(mask, ref.pred_masks[0], ref.pred_probs[0])


def test_grouped_batch_needs_its_samples(synthetic_root):
    cfg, model = _model('mllmseg')
    grouped, _ = _paired_batches(cfg, synthetic_root)
    data = model.data_preprocessor(grouped)
    with pytest.raises(ValueError, match='data samples'):
        model.predict(data['inputs'], None)


def test_generate_mode_runs_per_conversation(synthetic_root):
    """test_cfg.mode='generate' has its own backbone calls: each
    conversation gets a copy of its tiles, the results stay the same."""
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['mllmseg'][0]))
    cfg.model.test_cfg = dict(mode='generate', max_new_tokens=4)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    grouped, single = _paired_batches(cfg, synthetic_root)
    vit, _ = _count(model, grouped)
    assert vit[0][0] == len(single['data_samples'])
    with torch.no_grad():
        by_image = model.test_step(grouped)
        by_expr = model.test_step(single)
    flat = [(s, k) for s in by_image for k in range(s.num_expressions)]
    for (sample, k), ref in zip(flat, by_expr):
        assert_same_mask(sample.pred_masks[k], ref.pred_masks[0],
                         ref.pred_probs[0])
        assert bool(sample.pred_no_target[k]) == bool(ref.pred_no_target[0])


def test_generation_config_processors_fall_back(synthetic_root):
    """A checkpoint's generation config with a logits processor (here a
    repetition penalty) is honoured: transformers' generate per
    conversation, the same answers."""
    cfg, model = _model('text4seg')
    model.backbone.hf.generation_config.repetition_penalty = 1.3
    grouped, single = _paired_batches(cfg, synthetic_root)
    vit, _ = _count(model, grouped)
    assert vit[0][0] == len(single['data_samples'])
    with torch.no_grad():
        by_image = model.test_step(grouped)
        by_expr = model.test_step(single)
    assert [t for p in by_image for t in p.generated_texts] == \
        [p.generated_texts[0] for p in by_expr]
