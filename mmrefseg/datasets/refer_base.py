# Copyright (c) mmrefseg contributors.
"""Shared machinery of the REFER-format datasets (RefCOCO family, gRefCOCO).

Subclasses only say where the refs file is, how a split is selected and how
a ref names its annotations; sample building and the train-time expression
draw live here.
"""
import os.path as osp
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.dist import get_rank
from torch.utils import data as torch_data

from .refer_io import (
    load_instances,
    load_refs_file,
    sentence_text,
    union_bbox_xyxy,
)

COCO_IMG_PREFIX = 'images/mscoco/images/train2014'
REFCLEF_IMG_PREFIX = 'images/saiapr_tc-12'
TEST_GROUPINGS = ('expression', 'image', 'image_one_prompt')


def default_img_prefix(dataset_name: str) -> str:
    """Image folder (relative to ``data_root``) of a REFER dataset name."""
    return REFCLEF_IMG_PREFIX if dataset_name == 'refclef' else COCO_IMG_PREFIX


class BaseReferDataset(BaseDataset):
    """Base of datasets read from a REFER-style refs file + instances.json.

    Samples (see docs/design.md §1) depend on the mode:

    - ``test_mode=True``, ``test_grouping='expression'`` (default): one
      sample per (ref, sentence), K = 1, file order.
    - ``test_mode=True``, ``test_grouping='image'``: one sample per image
      carrying every sentence of every ref of that image in the split, K >=
      1, refs and sentences in file order, images in order of first
      appearance. The model still answers each expression in its own
      conversation (LISA's per-expression protocol, the same predictions
      as 'expression') but encodes the image once: grouping for speed.
    - ``test_mode=True``, ``test_grouping='image_one_prompt'``: the same
      samples, written as one conversation holding all K expressions. This
      is the evaluation unit of MLLMSeg's ``ValDataset`` (all expressions
      of an image in one teacher-forced prompt); use it with
      ``prompt_style='mllmseg_paper_eval'`` to reproduce its tables.
    - training, ``max_expressions_per_sample == 1``: one sample per ref; the
      sentence is drawn when the sample is fetched.
    - training, ``max_expressions_per_sample = N > 1``: one sample per image;
      up to N (ref, sentence) pairs are drawn without replacement among all
      sentences of all refs of that image.

    The draw uses a generator seeded from ``(seed, index, rank, dataloader
    worker id, that worker's per-epoch torch seed, how many times this
    process has drawn this index)``: reproducible under a seed, different
    across ranks and workers, and different from one epoch to the next both
    with persistent workers (the count grows) and without them (torch gives
    fresh workers a fresh seed every epoch).

    Args:
        data_root (str): Root holding ``<dataset_name>/`` and the images.
        dataset_name (str): Folder of the annotation files, e.g. 'refcoco',
            'refcoco+', 'refcocog', 'refclef', 'grefcoco' or any other name.
        split_by (str): 'unc', 'umd', 'google', 'berkeley', ...
        split (str): Split to load.
        data_prefix (dict, optional): ``dict(img_path=...)`` relative to
            ``data_root``. Defaults to the COCO train2014 folder
            (``images/saiapr_tc-12`` for refclef).
        ann_file (str): Refs file overriding the default one; relative paths
            are joined with ``data_root``.
        instances_file (str): ``instances.json`` overriding
            ``<data_root>/<dataset_name>/instances.json``.
        pipeline (Sequence[dict | Callable]): Transforms.
        test_mode (bool): Evaluation samples (see ``test_grouping``).
        test_grouping (str): 'expression' (one test sample per (ref,
            sentence)), 'image' (one test sample per image with all its
            sentences, one conversation each) or 'image_one_prompt' (the
            same samples, one conversation for all). Test samples carry it
            as ``test_grouping``, so the model knows how to write them.
            Only read when ``test_mode`` is True.
        max_expressions_per_sample (int): N of the training-time packing.
        seed (int, optional): Seed of the training-time draw. None follows
            ``torch.initial_seed()``, i.e. the runner's ``randomness.seed``.
        metainfo (dict, optional): Extra meta information.
        **kwargs: ``indices``, ``serialize_data``, ``lazy_init``,
            ``max_refetch``, ``filter_cfg`` of :class:`BaseDataset`.
    """

    METAINFO: dict = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 data_root: str = '',
                 dataset_name: str = 'refcoco',
                 split_by: str = 'unc',
                 split: str = 'train',
                 data_prefix: Optional[dict] = None,
                 ann_file: str = '',
                 instances_file: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 test_grouping: str = 'expression',
                 max_expressions_per_sample: int = 1,
                 seed: Optional[int] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs: Any) -> None:
        if max_expressions_per_sample < 1:
            raise ValueError('max_expressions_per_sample must be >= 1, got '
                             f'{max_expressions_per_sample}')
        if test_grouping not in TEST_GROUPINGS:
            raise ValueError(f'test_grouping must be one of {TEST_GROUPINGS}, '
                             f'got {test_grouping!r}')
        if seed is None:
            seed = torch.initial_seed()
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
        self.dataset_name = dataset_name
        self.split_by = split_by
        self.split = split
        self.test_grouping = test_grouping
        self.max_expressions_per_sample = int(max_expressions_per_sample)
        self.seed = int(seed) % 2**64
        self._draw_counts: Dict[int, int] = {}
        if instances_file and not osp.isabs(instances_file):
            instances_file = osp.join(data_root, instances_file)
        self.instances_file = instances_file or osp.join(
            data_root, dataset_name, 'instances.json')
        if data_prefix is None:
            data_prefix = dict(img_path=default_img_prefix(dataset_name))
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=list(pipeline),
            test_mode=test_mode,
            **kwargs)
        self._metainfo.update(
            dataset_name=dataset_name, split_by=split_by, split=split)

    # -- hooks for subclasses -------------------------------------------------
    def default_refs_file(self) -> str:
        """Refs file used when ``ann_file`` is empty."""
        raise NotImplementedError

    def select_split(self, refs: List[dict]) -> List[dict]:
        """Refs of ``self.split``."""
        raise NotImplementedError

    def ref_ann_ids(self, ref: dict) -> List[int]:
        """Annotation ids a ref points at ([] for a no-target ref)."""
        raise NotImplementedError

    # -- loading --------------------------------------------------------------
    @property
    def refs_file(self) -> str:
        """The refs file this dataset reads."""
        return self.ann_file or self.default_refs_file()

    def load_data_list(self) -> List[dict]:
        """Read refs + instances and build the samples of the mode.

        Returns:
            list[dict]: Samples; training ones keep their candidate refs under
            ``_refs`` until :meth:`get_data_info` draws the expressions.
        """
        refs_file = self.refs_file
        all_refs = load_refs_file(refs_file)
        refs = self.select_split(all_refs)
        if not refs:
            present = sorted({str(r.get('split')) for r in all_refs})
            raise ValueError(f'Split {self.split!r} selects no refs in '
                             f'{refs_file}; splits present: {present}')
        coco = load_instances(self.instances_file)
        images = {img['id']: img for img in coco['images']}
        anns = {ann['id']: ann for ann in coco['annotations']}

        records = [
            self._ref_record(ref, images, anns, refs_file) for ref in refs
        ]
        image_infos = {
            rec['image_id']: self._image_info(images[rec['image_id']])
            for rec in records
        }
        return self.samples_from_records(records, image_infos)

    def samples_from_records(self, records: List[dict],
                             image_infos: Dict[Any, dict]) -> List[dict]:
        """Group ref records into the samples of the mode.

        Shared by every reader whose annotations come as "refs" (one target
        set, several sentences): the REFER files here, the JSON Lines format
        of :class:`RefSegJsonlDataset`.

        Args:
            records (list[dict]): One per ref, with ``ref_id``, ``image_id``,
                ``ann_ids``, ``no_target``, ``bbox``, ``segmentations`` and
                ``sentences`` (list of ``(sent_id, text)``), in file order.
            image_infos (dict): ``image_id`` -> the image part of a sample
                (``img_path``, ``img_id``, ``height``, ``width``,
                ``dataset_name``).

        Returns:
            list[dict]: Samples; training ones keep their candidate refs under
            ``_refs`` until :meth:`get_data_info` draws the expressions.
        """
        if self.test_mode and self.test_grouping == 'expression':
            return [
                dict(
                    image_infos[rec['image_id']],
                    test_grouping=self.test_grouping,
                    expressions=[self._expression(rec, sent_id, text)])
                for rec in records for sent_id, text in rec['sentences']
            ]
        if not self.test_mode and self.max_expressions_per_sample == 1:
            return [
                dict(image_infos[rec['image_id']], _refs=[rec])
                for rec in records
            ]
        by_image: Dict[Any, List[dict]] = OrderedDict()
        for rec in records:
            by_image.setdefault(rec['image_id'], []).append(rec)
        if self.test_mode:
            return [
                dict(image_infos[image_id],
                     test_grouping=self.test_grouping,
                     expressions=[
                         self._expression(rec, sent_id, text)
                         for rec in recs for sent_id, text in rec['sentences']
                     ]) for image_id, recs in by_image.items()
            ]
        return [
            dict(image_infos[image_id], _refs=recs)
            for image_id, recs in by_image.items()
        ]

    def _ref_record(self, ref: dict, images: dict, anns: dict,
                    refs_file: str) -> dict:
        ref_id = ref.get('ref_id')
        image_id = ref.get('image_id')
        if image_id not in images:
            raise ValueError(f'ref_id {ref_id} (in {refs_file}) points at '
                             f'image_id {image_id}, which is not among the '
                             f'images of {self.instances_file}')
        ann_ids = self.ref_ann_ids(ref)
        for ann_id in ann_ids:
            ann = anns.get(ann_id)
            if ann is None:
                raise ValueError(f'ref_id {ref_id} (in {refs_file}) points at '
                                 f'ann_id {ann_id}, which is not among the '
                                 f'annotations of {self.instances_file}')
            if ann.get('image_id') != image_id:
                raise ValueError(
                    f'ref_id {ref_id}: ann_id {ann_id} belongs to '
                    f'image_id {ann.get("image_id")}, not to the '
                    f"ref's image_id {image_id}")
        sentences = [(int(s['sent_id']), sentence_text(s, ref_id))
                     for s in ref.get('sentences', [])]
        if not sentences:
            raise ValueError(f'ref_id {ref_id} (in {refs_file}) has no '
                             'sentences')
        return dict(
            ref_id=int(ref_id),
            image_id=image_id,
            ann_ids=[int(a) for a in ann_ids],
            no_target=not ann_ids,
            bbox=union_bbox_xyxy([anns[a]['bbox'] for a in ann_ids]),
            segmentations=[anns[a]['segmentation'] for a in ann_ids],
            sentences=sentences)

    def _image_info(self, img: dict) -> dict:
        return dict(
            img_path=osp.join(self.data_prefix['img_path'], img['file_name']),
            img_id=int(img['id']),
            height=int(img['height']),
            width=int(img['width']),
            dataset_name=self.dataset_name)

    @staticmethod
    def _expression(rec: dict, sent_id: int, text: str) -> dict:
        return dict(
            text=text,
            ref_id=rec['ref_id'],
            sent_id=sent_id,
            ann_ids=list(rec['ann_ids']),
            no_target=rec['no_target'],
            bbox=list(rec['bbox']),
            segmentations=rec['segmentations'])

    # -- fetching -------------------------------------------------------------
    def get_data_info(self, idx: int) -> dict:
        """Sample ``idx``; training samples get their expressions drawn here.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The sample of docs/design.md §1 (plus ``sample_idx``).
        """
        info = super().get_data_info(idx)
        records = info.pop('_refs', None)
        if records is not None:
            info['expressions'] = self._draw_expressions(
                records, info['sample_idx'])
        return info

    def _draw_rng(self, idx: int) -> np.random.Generator:
        count = self._draw_counts.get(idx, 0)
        self._draw_counts[idx] = count + 1
        worker = torch_data.get_worker_info()
        # Worker ids are shifted by one so that 0 means the main process.
        worker_id = worker.id + 1 if worker is not None else 0
        worker_seed = worker.seed % 2**64 if worker is not None else 0
        entropy = [self.seed, idx, get_rank(), worker_id, worker_seed, count]
        return np.random.default_rng(entropy)

    def _draw_expressions(self, records: List[dict], idx: int) -> List[dict]:
        pairs = [(rec, sent) for rec in records for sent in rec['sentences']]
        k = min(self.max_expressions_per_sample, len(pairs))
        picks = self._draw_rng(idx).choice(len(pairs), size=k, replace=False)
        return [self._expression(pairs[i][0], *pairs[i][1]) for i in picks]
