# Copyright (c) mmrefseg contributors.
"""RefSegDataPreProcessor writes each sample's conversation with the
backbone's processor."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmrefseg.datasets.transforms import PackRefSegInputs
from mmrefseg.models.data_preprocessor import RefSegDataPreProcessor
from mmrefseg.models.processors import InternVLProcessor
from mmrefseg.utils.tokenizer import build_tokenizer

TOK = dict(type='tiny_bpe', vocab_size=1024)


def _packed(texts, no_target, tiles=1, seed=0):
    np.random.seed(seed)
    return PackRefSegInputs()(dict(
        pixel_values=np.zeros((tiles, 3, 4, 4), np.float32),
        img=np.zeros((5, 7, 3), np.uint8), img_path=f'{texts[0]}.jpg',
        texts=texts, gt_masks=np.zeros((len(texts), 5, 7), np.uint8),
        no_target=np.array(no_target), num_tiles=tiles))


def _preprocessor():
    pre = RefSegDataPreProcessor()
    proc = InternVLProcessor(build_tokenizer(TOK, ['[SEG]', '[REJ]']), 4)
    pre.set_processor(proc)
    return pre, proc


def test_conversations_match_the_processor_token_for_token():
    pre, proc = _preprocessor()
    samples = [_packed(['the red circle'], [False], seed=1),
               _packed(['a star', 'the blue one'], [False, True], tiles=2,
                       seed=2)]
    for training in (True, False):
        batch = pre(pseudo_collate(samples), training)['inputs']
        for b, sample in enumerate(samples):
            ds = sample['data_samples']
            want = proc(ds.texts, num_tiles=b + 1,
                        no_target=ds.gt_no_target.tolist(),
                        training=training,
                        seed=ds.metainfo['template_seed'])
            n = len(want['input_ids'])
            assert torch.equal(batch['input_ids'][b, :n], want['input_ids'])
            assert torch.equal(batch['labels'][b, :n], want['labels'])
            assert bool((batch['labels'][b, n:] == -100).all())
            assert int(batch['attention_mask'][b].sum()) == n
            assert batch['prompt_lengths'][b] == want['prompt_length']
        assert batch['num_tiles'] == [1, 2]
        assert batch['pixel_values'].shape[0] == 3
        assert batch['images'][0].shape == (5, 7, 3)
    # [REJ] is written for the no-target expression only in training.
    rej = proc.tokenizer.convert_tokens_to_ids('[REJ]')
    train = pre(pseudo_collate(samples), True)['inputs']['input_ids']
    test = pre(pseudo_collate(samples), False)['inputs']['input_ids']
    assert int((train == rej).sum()) == 1 and int((test == rej).sum()) == 0


def test_without_a_processor_the_error_says_what_to_do():
    with pytest.raises(RuntimeError, match='RefSegmentor'):
        RefSegDataPreProcessor()(pseudo_collate([_packed(['a'], [False])]))
