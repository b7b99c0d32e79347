# Copyright (c) mmrefseg contributors.
"""Triplet folder -> refseg JSON Lines -> RefSegJsonlDataset."""
import cv2
import numpy as np
import pytest

from mmrefseg.datasets import RefSegJsonlDataset
from mmrefseg.datasets.refseg_format import (
    dump_refseg_jsonl,
    mask_folder_to_records,
)
from mmrefseg.datasets.transforms import LoadRefMasks


@pytest.fixture
def triplets(tmp_path):
    for sub in ('images', 'masks', 'phrases'):
        (tmp_path / sub).mkdir()
    cv2.imwrite(str(tmp_path / 'images' / '0001.jpg'),
                np.full((16, 24, 3), 100, np.uint8))
    cv2.imwrite(str(tmp_path / 'images' / '0002.png'),
                np.full((12, 10, 3), 100, np.uint8))
    cat = np.zeros((12, 10), np.uint8)
    cat[1:4, 2:5] = 255
    dog = np.zeros((12, 10), np.uint8)
    dog[6:11, 0:10] = 1
    one = np.zeros((16, 24), np.uint8)
    one[0:2, 0:3] = 7
    cv2.imwrite(str(tmp_path / 'masks' / '0001.png'), one)
    cv2.imwrite(str(tmp_path / 'masks' / '0002__cat.png'), cat)
    cv2.imwrite(str(tmp_path / 'masks' / '0002__dog.png'), dog)
    (tmp_path / 'phrases' / '0001.txt').write_text('top left corner\n')
    (tmp_path / 'phrases' / '0002__cat.txt').write_text(
        'the cat\n\n  small animal  \n')
    (tmp_path / 'phrases' / '0002__dog.txt').write_text('the dog\n')
    (tmp_path / 'phrases' / '0002__zebra.txt').write_text('a zebra\n')
    return tmp_path


@pytest.mark.parametrize('embed_rle', [False, True])
def test_triplets_convert_and_load(triplets, embed_rle):
    records = list(mask_folder_to_records(str(triplets), split='train',
                                          embed_rle=embed_rle))
    assert [r['id'] for r in records] == [
        '0001', '0002__cat', '0002__dog', '0002__zebra']
    assert records[1]['phrases'] == ['the cat', 'small animal']
    assert records[1]['image'] == 'images/0002.png'
    assert (records[1]['height'], records[1]['width']) == (12, 10)
    assert records[3]['targets'] == []
    key = 'rle' if embed_rle else 'mask'
    assert list(records[0]['targets'][0]) == [key]
    out = str(triplets / 'data.jsonl')
    dump_refseg_jsonl(records, out)
    ds = RefSegJsonlDataset(ann_file=out, data_root=str(triplets),
                            split='train', test_mode=True)
    samples = [LoadRefMasks()(ds.get_data_info(i)) for i in range(len(ds))]
    assert [s['texts'][0] for s in samples] == [
        'top left corner', 'the cat', 'small animal', 'the dog', 'a zebra']
    assert samples[0]['gt_masks'][0].sum() == 6
    assert samples[1]['gt_masks'][0].sum() == 9
    assert samples[1]['gt_bboxes'][0].tolist() == [2, 1, 5, 4]
    assert samples[3]['gt_masks'][0].sum() == 50
    assert samples[4]['no_target'].tolist() == [True]
    assert samples[1]['img_id'] == samples[4]['img_id'] != samples[0]['img_id']


def test_orphans_and_missing_images_are_named(triplets):
    (triplets / 'phrases' / '0002__dog.txt').unlink()
    with pytest.raises(ValueError, match=r"no phrase file .*'0002__dog'"):
        list(mask_folder_to_records(str(triplets)))
    (triplets / 'phrases' / '0002__dog.txt').write_text('the dog\n')
    (triplets / 'phrases' / '0003.txt').write_text('nothing\n')
    with pytest.raises(ValueError, match=r'0003.txt: no image 0003\.'):
        list(mask_folder_to_records(str(triplets)))
    (triplets / 'phrases' / '0003.txt').write_text('\n \n')
    (triplets / 'images' / '0003.jpg').write_bytes(
        (triplets / 'images' / '0001.jpg').read_bytes())
    with pytest.raises(ValueError, match='0003.txt holds no phrase'):
        list(mask_folder_to_records(str(triplets)))
