# Copyright (c) mmrefseg contributors.
"""Run K expressions of one image per expression and grouped by image.

The pieces of ``benchmarks/multi_expression_speed.py`` that its test reuses:
the tiny / 8B-proxy model configs, one timed grouping, and the comparison
of the two groupings' predictions. The grouped path ('image') must give the
per-expression path's masks (issue #19): it only encodes the image once.
"""
import copy
import os.path as osp
import statistics
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config

from mmrefseg.datasets.transforms.text_only import build_text_only_batch
from .internvl_flops import flop_counter

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROXY_CONFIG = 'configs/_base_/models/internvl2_5_8b_proxy.py'
#: The real InternVL2.5-8B, for the full-depth FLOP bound.
FULL_8B_CONFIG = 'configs/_base_/models/internvl2_5_8b.py'
#: Real LM-head rows of InternVL2.5-8B (InternLM2 vocabulary).
FULL_8B_VOCAB = 92553
#: Parts of a RefSegmentor that run once per expression after the LLM.
HEAD_MODULES = ('RefSegmentor.neck', 'RefSegmentor.decode_head',
                'RefSegmentor.auxiliary_head')


def _resolve(path: str) -> str:
    return path if osp.isfile(path) else osp.join(REPO, path)


def _set_image_size(cfg: Config, size: int) -> None:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for transform in dataset.get('pipeline') or []:
            if transform.get('type') == 'InternVLImageTransform':
                transform['image_size'] = size


def speed_config(config: str, model: str = 'tiny', full_depth: bool = False,
                 dry_run: bool = False,
                 max_new_tokens: Optional[int] = None) -> Config:
    """A method's tiny config, or the same method on the 8B-shaped proxy.

    Args:
        config (str): The method's tiny config (``configs/<m>/*_tiny_*.py``).
        model (str): 'tiny' (the config as it is) or 'proxy8b' (the backbone
            of :data:`PROXY_CONFIG`, 448 px tiles, MLLMSeg's neck and
            decoder at their released width).
        full_depth (bool): proxy8b only: InternVL2.5-8B's 24 ViT and 32 LLM
            layers and its 92,553 vocabulary rows (for a GPU).
        dry_run (bool): proxy8b only: one ViT and one LLM layer (widths
            kept), to check that everything runs.
        max_new_tokens (int, optional): Generation budget of an answer head
            (Text4Seg); a small one keeps the timing on the prefill.

    Returns:
        Config: The config, with ``_proxy_info`` (depths and widths) for
        proxy8b.
    """
    if model not in ('tiny', 'proxy8b'):
        raise ValueError(f"model must be 'tiny' or 'proxy8b', got {model!r}")
    cfg = Config.fromfile(_resolve(config))
    head = cfg.model.decode_head
    if max_new_tokens is not None and 'max_new_tokens' in head:
        head.max_new_tokens = int(max_new_tokens)
    if model == 'tiny':
        return cfg
    proxy = Config.fromfile(_resolve(PROXY_CONFIG))
    arch = copy.deepcopy(proxy.backbone_arch.to_dict())
    vit, llm = arch['vision_config'], arch['text_config']
    if full_depth:
        vit['num_hidden_layers'] = proxy.full_vit_layers
        llm['num_hidden_layers'] = proxy.full_llm_layers
        llm['vocab_size'] = FULL_8B_VOCAB
    elif dry_run:
        vit['num_hidden_layers'] = llm['num_hidden_layers'] = 1
    backbone = cfg.model.backbone
    backbone.config = arch
    backbone.tokenizer = proxy.backbone.tokenizer
    backbone.attn_implementation = proxy.backbone.attn_implementation
    processor = dict(backbone.get('processor') or {})
    processor.update(proxy.backbone.processor)
    backbone.processor = processor
    for part in ('neck', 'decode_head'):
        module = cfg.model.get(part)
        if module is not None and 'embed_dims' in module:
            module.update(proxy.mllmseg_decoder)
    _set_image_size(cfg, proxy.image_size)
    cfg._proxy_info = dict(vit_layers=vit['num_hidden_layers'],
                           llm_layers=llm['num_hidden_layers'],
                           full_vit_layers=proxy.full_vit_layers,
                           full_llm_layers=proxy.full_llm_layers)
    return cfg


def prepare_model(model: torch.nn.Module, device: str,
                  dtype: str) -> torch.nn.Module:
    """Move a built segmentor to ``device`` / ``dtype`` for evaluation."""
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    model.data_preprocessor.pixel_dtype = getattr(torch, dtype)
    return model


@dataclass
class GroupingRun:
    """One grouping's predictions and cost for K expressions of an image.

    Attributes:
        probs (Tensor): [K, H, W] float32 probabilities, phrase order.
        masks (Tensor): [K, H, W] bool masks.
        seconds (list[float]): Wall time of each timed ``test_step``.
        flops (float | None): FLOPs that ``flop_counter()`` counted for
            the whole step (None when not counted).
        head_flops (float | None): Of which in the neck and heads.
        texts (list[str] | None): K generated answers (answer heads such
            as Text4Seg), else None.
    """
    probs: torch.Tensor
    masks: torch.Tensor
    texts: Optional[List[str]] = None
    seconds: List[float] = field(default_factory=list)
    flops: Optional[float] = None
    head_flops: Optional[float] = None

    @property
    def expressions_per_s(self) -> float:
        """K over the median timed step (nan when untimed)."""
        if not self.seconds:
            return float('nan')
        return self.probs.shape[0] / statistics.median(self.seconds)


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _stack(outputs: Sequence, k: int, where: str) -> GroupingRun:
    probs = torch.cat([o.pred_probs.float().cpu() for o in outputs])
    masks = torch.cat([o.pred_masks.bool().cpu() for o in outputs])
    if probs.shape[0] != k:
        raise RuntimeError(f'{where}: {k} phrases gave {probs.shape[0]} '
                           'predictions')
    texts = None
    if all('generated_texts' in o for o in outputs):
        texts = [t for o in outputs for t in o.generated_texts]
    return GroupingRun(probs, masks, texts=texts)


def run_grouping(model: torch.nn.Module, cfg: Config, image: np.ndarray,
                 phrases: Sequence[str], grouping: str, repeats: int = 0,
                 warmup: int = 0, count_flops: bool = True,
                 device: str = 'cpu',
                 one_per_step: bool = False) -> GroupingRun:
    """Predict ``phrases`` on ``image`` with one grouping, and time it.

    The batch is built once, outside the timing: the timed part is
    ``model.test_step`` (data preprocessor, model, post-processing).

    Args:
        model (nn.Module): A built ``RefSegmentor`` in eval mode.
        cfg (Config): Its config (for the test pipeline).
        image (np.ndarray): H x W x 3 uint8 RGB.
        phrases (Sequence[str]): The K phrases.
        grouping (str): 'expression' (K samples) or 'image' (one sample).
        repeats (int): Timed steps.
        warmup (int): Untimed steps before them.
        count_flops (bool): Run one extra untimed step under
            ``flop_counter()`` first (it also warms up).
        device (str): For synchronising CUDA around each timed step.
        one_per_step (bool): 'expression' only: one ``test_step`` per
            phrase (batch 1, as the peers' demo and evaluation scripts run)
            instead of one batch of K samples.

    Returns:
        GroupingRun: The last step's predictions, times and FLOPs.
    """
    if one_per_step and grouping == 'expression':
        batches = [build_text_only_batch(cfg, image, [p], grouping)
                   for p in phrases]
    else:
        batches = [build_text_only_batch(cfg, image, phrases, grouping)]

    def step() -> list:
        return [o for batch in batches for o in model.test_step(batch)]

    where = f'grouping={grouping!r}, K={len(phrases)}'
    run = None
    with torch.no_grad():
        if count_flops:
            with flop_counter() as counter:
                outputs = step()
            run = _stack(outputs, len(phrases), where)
            run.flops = float(counter.get_total_flops())
            counts = counter.get_flop_counts()
            run.head_flops = float(
                sum(sum(counts.get(name, {}).values())
                    for name in HEAD_MODULES))
        for _ in range(warmup):
            step()
        seconds, outputs = [], None
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            outputs = step()
            _sync(device)
            seconds.append(time.perf_counter() - start)
        if outputs is None and run is None:
            outputs = step()
        if outputs is not None:  # the last step's predictions
            last = _stack(outputs, len(phrases), where)
            if run is not None:
                last.flops, last.head_flops = run.flops, run.head_flops
            run = last
    run.seconds = seconds
    return run


def compare_runs(reference: GroupingRun, other: GroupingRun) -> dict:
    """How far one grouping's predictions are from the other's.

    Args:
        reference (GroupingRun): Per-expression predictions.
        other (GroupingRun): Grouped predictions of the same phrases.

    Returns:
        dict: ``max_prob_diff`` (largest |probability difference| of any
        pixel), ``mask_pixels_differ`` (pixels whose binary mask differs),
        ``identical_masks`` (expressions whose binary masks are equal),
        ``expressions`` and, when both generated answers,
        ``identical_texts``.
    """
    if reference.probs.shape != other.probs.shape:
        raise ValueError('The groupings predicted different shapes: '
                         f'{tuple(reference.probs.shape)} vs '
                         f'{tuple(other.probs.shape)}')
    diff = (reference.probs - other.probs).abs()
    differ = reference.masks != other.masks
    result = dict(
        max_prob_diff=float(diff.max()) if diff.numel() else 0.0,
        mask_pixels_differ=int(differ.sum()),
        identical_masks=int((~differ.flatten(1).any(1)).sum()),
        expressions=int(reference.probs.shape[0]))
    if reference.texts is not None and other.texts is not None:
        result['identical_texts'] = sum(
            a == b for a, b in zip(reference.texts, other.texts))
    return result


def prompt_tokens(model: torch.nn.Module, cfg: Config, image: np.ndarray,
                  phrase: str) -> dict:
    """Prefix / suffix token counts of one per-expression conversation.

    Args:
        model (nn.Module): The built segmentor (its data preprocessor
            writes the conversation).
        cfg (Config): Its config.
        image (np.ndarray): The image.
        phrase (str): One phrase.

    Returns:
        dict: ``prefix`` (tokens up to the last image token: system turn and
        image, what K expressions of an image can share) and ``suffix``
        (the rest: question and, teacher-forced, the answer; for a
        generating head the prompt only).
    """
    batch = build_text_only_batch(cfg, image, [phrase], 'expression')
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
    inputs = data['inputs']
    ids = inputs['input_ids'][0]
    mask = inputs.get('attention_mask')
    length = int(mask[0].sum()) if mask is not None else ids.numel()
    lengths = inputs.get('prompt_lengths')
    if model.decode_head.mask_source == 'answers' and lengths is not None:
        length = int(lengths[0])
    image_id = model.backbone.processor.chat.img_context_id
    where = (ids[:length] == image_id).nonzero()
    if not len(where):
        raise RuntimeError('The prompt has no image token')
    prefix = int(where[-1]) + 1
    return dict(prefix=prefix, suffix=length - prefix)
