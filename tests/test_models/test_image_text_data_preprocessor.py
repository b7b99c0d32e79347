# Copyright (c) mmrefseg contributors.
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmrefseg.models import ImageTextDataPreProcessor
from mmrefseg.utils.tokenizer import build_tokenizer

TOKENIZER = dict(type='tiny_bpe', vocab_size=1024)


def _sample(texts, size=(8, 6), with_gt=True, path='a.jpg'):
    sample = SegDataSample(metainfo=dict(texts=texts, img_path=path))
    if with_gt:
        sample.gt_sem_seg = PixelData(
            data=torch.zeros((len(texts), 5, 7), dtype=torch.uint8))
    return sample


def _batch(*samples, sizes=None):
    sizes = sizes or [(8, 6)] * len(samples)
    imgs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
            for h, w in sizes]
    return dict(inputs=imgs, data_samples=list(samples))


def test_normalises_stacks_and_tokenises():
    pre = ImageTextDataPreProcessor(tokenizer=TOKENIZER, mean=(10, 20, 30),
                                    std=(2, 4, 8))
    data = _batch(_sample(['the red circle', 'a star']),
                  _sample(['the biggest blue square on the left']))
    raw = [img.clone() for img in data['inputs']]
    out = pre(data)
    inputs = out['inputs']
    assert inputs['imgs'].shape == (2, 3, 8, 6)
    expected = (raw[1].float() - torch.tensor([10., 20., 30.]).view(3, 1, 1)
                ) / torch.tensor([2., 4., 8.]).view(3, 1, 1)
    torch.testing.assert_close(inputs['imgs'][1], expected)
    assert inputs['text_to_image'].tolist() == [0, 0, 1]
    tok = build_tokenizer(TOKENIZER)
    q, length = inputs['input_ids'].shape
    assert q == 3
    # Sentence 2 is the longest: no padding; the others are right-padded.
    assert inputs['attention_mask'][2].all()
    assert length == len(tok('the biggest blue square on the left')
                         ['input_ids'])
    n_star = len(tok('a star')['input_ids'])
    assert inputs['attention_mask'][1].sum() == n_star
    assert (inputs['input_ids'][1, n_star:] == tok.pad_token_id).all()
    assert tok.decode(inputs['input_ids'][0][
        inputs['attention_mask'][0].bool()]) == 'the red circle'
    assert out['data_samples'][0].metainfo['batch_input_shape'] == (8, 6)


def test_truncates_to_max_length():
    pre = ImageTextDataPreProcessor(tokenizer=TOKENIZER, max_length=3)
    out = pre(_batch(_sample(['the biggest blue square on the left'])))
    assert out['inputs']['input_ids'].shape == (1, 3)


def test_errors_name_the_sample():
    pre = ImageTextDataPreProcessor(tokenizer=TOKENIZER)
    with pytest.raises(ValueError, match='b.jpg'):
        pre(_batch(_sample(['x']), _sample(['y'], path='b.jpg'),
                   sizes=[(8, 6), (6, 8)]))
    with pytest.raises(KeyError, match='c.jpg'):
        pre(_batch(_sample([], with_gt=False, path='c.jpg')))
    bad = _sample(['x', 'y'], path='d.jpg')
    bad.gt_sem_seg = PixelData(data=torch.zeros((3, 5, 7), dtype=torch.uint8))
    with pytest.raises(ValueError, match='d.jpg.*2 texts but 3'):
        pre(_batch(bad))
    with pytest.raises(ValueError, match='mean and std'):
        ImageTextDataPreProcessor(tokenizer=TOKENIZER, mean=(1, 2))
