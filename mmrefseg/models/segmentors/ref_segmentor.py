# Copyright (c) mmrefseg contributors.
"""RefSegmentor: InternVL backbone + optional neck + segmentation head."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.structures import SegDataSample
from torch import Tensor

from mmrefseg.registry import MODELS
from ..backbones.mllm_outputs import MLLMOutputs

SampleList = List[SegDataSample]


@MODELS.register_module()
class RefSegmentor(BaseSegmentor):
    """Referring segmentation with an MLLM backbone (an MMSeg segmentor).

    The backbone runs once per batch (ViT, projector, LLM). Query-based mask
    heads (MLLMSeg's light decoder) get the neck's fused features of each
    image's global view and one ``[SEG]`` state per expression. Heads with
    their own protocol (SELF1E, Text4Seg) implement ``loss_mllm`` /
    ``predict_mllm`` and get the whole :class:`MLLMOutputs`.

    Channel widths of the neck and head that are not given in their configs
    are filled in from the backbone (``vit_channels``, ``llm_channels``,
    ``patch_size``), so one config works for every backbone size.

    Args:
        backbone (dict): ``InternVLBackbone`` config.
        decode_head (dict): head config.
        neck (dict, optional): neck config (``DSFFNeck`` for MLLMSeg).
        lm_loss_weight (float): weight of the LLM next-token loss.
        vit_layer (int): ViT layer fed to the neck (HF index, -1 = last).
        train_cfg (dict, optional): unused, kept for MMSeg compatibility.
        test_cfg (dict, optional): ``mode`` ('teacher_forced' or 'generate'),
            ``use_rej`` (empty the mask where the model prefers ``[REJ]``;
            for gRefCOCO), ``max_new_tokens`` (generate mode),
            ``threshold`` (on sigmoid probabilities, default 0.5).
        data_preprocessor (dict): ``RefSegDataPreProcessor`` config.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: Optional[dict] = None,
                 lm_loss_weight: float = 1.0,
                 vit_layer: int = -1,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            # Build from our registry so that no default scope is needed.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        backbone = dict(backbone)
        if vit_layer not in backbone.get('vit_layers', (-1, )):
            backbone['vit_layers'] = tuple(backbone.get('vit_layers', ())) + \
                (vit_layer, )
        self.backbone = MODELS.build(backbone)
        widths = dict(vit_channels=self.backbone.vit_channels,
                      llm_channels=self.backbone.llm_channels,
                      patch_size=self.backbone.patch_size)
        if neck is not None:
            self.neck = MODELS.build(self._fill(neck, widths))
        self.decode_head = MODELS.build(self._fill(decode_head, widths))
        self.lm_loss_weight = lm_loss_weight
        self.vit_layer = vit_layer
        self.train_cfg = train_cfg or {}
        self.test_cfg = dict(mode='teacher_forced', use_rej=False,
                             threshold=0.5, max_new_tokens=64)
        self.test_cfg.update(test_cfg or {})
        # mmseg's EncoderDecoder exposes these; keep them for tools that look.
        self.align_corners = False
        self.out_channels = 1

    @staticmethod
    def _fill(cfg: dict, widths: Dict[str, int]) -> dict:
        """Fill width arguments that the config leaves out."""
        cfg = dict(cfg)
        obj_cls = MODELS.get(cfg['type'])
        import inspect
        params = inspect.signature(obj_cls.__init__).parameters
        for key, value in widths.items():
            if key in params and key not in cfg:
                cfg[key] = value
        return cfg

    # ------------------------------------------------------------ backbone
    def extract_feat(self, inputs: dict) -> MLLMOutputs:
        """Run the backbone on a batch from ``RefSegDataPreProcessor``.

        A head that defines ``llm_attention_mask(inputs, backbone)`` chooses
        the LLM's attention mask ([B, 1, L, L], e.g. SELF1E's
        dual-perception mask); when it returns None, or the head has no such
        method, the LLM stays causal.
        """
        llm_mask = None
        if hasattr(self.decode_head, 'llm_attention_mask'):
            llm_mask = self.decode_head.llm_attention_mask(
                inputs, self.backbone)
        return self.backbone(
            pixel_values=inputs['pixel_values'],
            input_ids=inputs['input_ids'],
            attention_mask=inputs.get('attention_mask'),
            labels=inputs.get('labels'),
            num_tiles=inputs.get('num_tiles'),
            llm_attention_mask=llm_mask)

    def _mask_logits(self, out: MLLMOutputs) -> Tensor:
        """Query-based head path: neck once per image, head per [SEG]."""
        global_tiles = torch.cumsum(
            torch.bincount(out.tile_to_sample), 0) - 1
        vit = out.vit_features[self.vit_layer][global_tiles]
        llm = out.llm_image_states[global_tiles]
        feats = self.neck(vit, llm) if self.with_neck else vit
        return self.decode_head(feats, out.seg_states, out.seg_to_sample)

    @staticmethod
    def _slots_per_sample(out: MLLMOutputs, num_samples: int) -> List[Tensor]:
        """Indices into the slot list for each conversation."""
        owner = out.slot_positions[:, 0]
        return [torch.nonzero(owner == b).flatten()
                for b in range(num_samples)]

    # ---------------------------------------------------------------- loss
    def loss(self, inputs: dict, data_samples: SampleList) -> dict:
        """LLM next-token loss plus the head's mask losses."""
        out = self.extract_feat(inputs)
        losses = dict(loss_lm=out.lm_loss * self.lm_loss_weight)
        if hasattr(self.decode_head, 'loss_mllm'):
            losses.update(self.decode_head.loss_mllm(out, data_samples,
                                                     self.backbone))
            return losses
        gt_masks = self._gt_masks_for_seg_slots(out, data_samples)
        if len(gt_masks) == 0:
            # No [SEG] in the batch (all no-target): keep every mask
            # parameter in the graph so DDP does not complain.
            zero = sum(p.sum() * 0. for p in self.decode_head.parameters())
            losses['loss_mask'] = zero
            return losses
        logits = self._mask_logits(out)
        losses.update(self.decode_head.loss_by_feat(logits, gt_masks))
        return losses

    def _gt_masks_for_seg_slots(self, out: MLLMOutputs,
                                data_samples: SampleList) -> List[Tensor]:
        masks = []
        for b, slots in enumerate(self._slots_per_sample(
                out, len(data_samples))):
            gt = data_samples[b].gt_sem_seg.data
            if len(slots) != gt.shape[0]:
                raise ValueError(
                    f'Sample {data_samples[b].metainfo.get("img_path")} has '
                    f'{gt.shape[0]} expressions but {len(slots)} [SEG]/[REJ] '
                    'slots in its conversation.')
            for k, s in enumerate(slots.tolist()):
                if out.slot_is_seg[s]:
                    masks.append(gt[k])
        return masks

    # ------------------------------------------------------------- predict
    def predict(self, inputs: dict,
                data_samples: Optional[SampleList] = None) -> SampleList:
        """Masks at original resolution in ``pred_sem_seg`` [K, H, W]."""
        if data_samples is None:
            data_samples = [SegDataSample() for _ in inputs['num_tiles']]
        if hasattr(self.decode_head, 'predict_mllm'):
            return self.decode_head.predict_mllm(inputs, data_samples,
                                                 self.backbone, self.test_cfg)
        if self.test_cfg['mode'] == 'generate':
            inputs = self._generate_answers(inputs)
        out = self.extract_feat(inputs)
        logits = self._mask_logits(out) if len(out.seg_states) else None
        return self.postprocess_result(logits, data_samples, out)

    def postprocess_result(self, seg_logits: Optional[Tensor],
                           data_samples: SampleList,
                           out: Optional[MLLMOutputs] = None) -> SampleList:
        """Resize each query's logits to its image and threshold.

        Expressions without a ``[SEG]`` (the model answered ``[REJ]``, or
        generation produced fewer slots) get an empty mask and
        ``pred_no_target`` True.
        """
        thr = self.test_cfg['threshold']
        slots = self._slots_per_sample(out, len(data_samples))
        seg_index = torch.cumsum(out.slot_is_seg.long(), 0) - 1
        for b, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('ori_shape', out.vit_grid)[:2]
            k_expr = len(meta.get('texts', [])) or len(slots[b])
            probs = torch.zeros((k_expr, h, w), device=out.seg_states.device)
            pred_nt = [True] * k_expr
            for k, s in enumerate(slots[b].tolist()[:k_expr]):
                rejected = bool(out.slot_rej_score is not None and
                                self.test_cfg['use_rej'] and
                                out.slot_rej_score[s] > 0)
                if not out.slot_is_seg[s] or rejected:
                    continue
                logit = seg_logits[seg_index[s]][None].float()
                probs[k] = F.interpolate(logit, size=(h, w), mode='bilinear',
                                         align_corners=False)[0, 0].sigmoid()
                pred_nt[k] = False
            pred = probs > thr
            pred[torch.as_tensor(pred_nt, dtype=torch.bool)] = False
            sample.set_data(dict(
                seg_logits=PixelData(data=probs),
                pred_sem_seg=PixelData(data=pred.to(torch.uint8))))
            sample.set_metainfo(dict(pred_no_target=pred_nt))
        return data_samples

    @torch.no_grad()
    def _generate_answers(self, inputs: dict) -> dict:
        """Let the model write its answer, then re-run it teacher-forced."""
        bb = self.backbone
        prompts = [ids[:n][mask[:n].bool()] for ids, mask, n in zip(
            inputs['input_ids'], inputs['attention_mask'],
            inputs['prompt_lengths'])]
        pad = bb.tokenizer.pad_token_id
        pre = self.data_preprocessor
        left = pre.pad_sequences(prompts, pad, 'left')
        left_mask = pre.pad_sequences(
            [torch.ones_like(p) for p in prompts], 0, 'left')
        new = bb.generate(inputs['pixel_values'], left, left_mask,
                          max_new_tokens=self.test_cfg['max_new_tokens'],
                          eos_token_id=bb.tokenizer.eos_token_id)
        seqs = []
        for p, g in zip(prompts, new):
            g = g[g != pad]
            seqs.append(torch.cat([p, g]))
        ids = pre.pad_sequences(seqs, pad, 'right')
        lengths = torch.as_tensor([len(s) for s in seqs], device=ids.device)
        mask = (torch.arange(ids.shape[1], device=ids.device)[None] <
                lengths[:, None]).long()
        out = dict(inputs)
        out.update(input_ids=ids, attention_mask=mask, labels=None)
        return out

    # ------------------------------------------------------ mmseg plumbing
    def _forward(self, inputs: dict, data_samples=None) -> Tensor:
        """Mask logits of every [SEG] query (``mode='tensor'``)."""
        return self._mask_logits(self.extract_feat(inputs))

    def encode_decode(self, inputs: dict, batch_img_metas: List[dict]):
        return self._forward(inputs)

    def aug_test(self, inputs, batch_img_metas, rescale=True):
        raise NotImplementedError('Test-time augmentation is not supported.')
