# Copyright (c) mmrefseg contributors.
"""RefSegmentor: InternVL backbone + optional neck + segmentation head."""
import inspect
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix
from torch import Tensor

from mmrefseg.registry import MODELS
from ..backbones.mllm_outputs import MLLMOutputs

SampleList = List[SegDataSample]
REJ_DECISIONS = ('seg_vs_rej', 'argmax_teacher_forced')


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
        auxiliary_head (dict, optional): a training-only head on the
            backbone outputs, e.g. ``LLMStateAuxHead``; its losses are added
            with the prefix ``aux.`` (as MMSeg's ``EncoderDecoder`` does)
            and it never predicts. Heads with their own protocol
            (``loss_mllm``) take only a ``query='learned'`` one, scored on
            each conversation's single expression.
        lm_loss_weight (float): weight of the LLM next-token loss.
        vit_layer (int): ViT layer fed to the neck (HF index, -1 = last).
        train_cfg (dict, optional): unused, kept for MMSeg compatibility.
        test_cfg (dict, optional): evaluation options (query-based heads;
            heads with ``predict_mllm`` read what they need themselves):

            - ``mode``: 'teacher_forced' (default) or 'generate'.
            - ``use_rej`` (bool): read the model's no-target decision at
              each answer slot (gRefCOCO) and write it to
              ``pred_no_target``. Default False.
            - ``rej_decision``: how that decision is made.
              ``'seg_vs_rej'`` (default): logit([REJ]) > logit([SEG]) at
              the token before the slot
              (:attr:`MLLMOutputs.slot_rej_score`), one forward over the
              answer as the pipeline wrote it ([SEG] everywhere at test by
              default). ``'argmax_teacher_forced'`` (MLLMSeg's
              ``test_mllmseg_gres.py``): the argmax over the whole
              vocabulary at the token before the slot is [REJ]; the
              pipeline writes the GT answer (``BuildConversation(
              reject_no_target=True)``: [REJ] for empty targets), and when
              that answer holds any [REJ] a second "reeval" forward with
              every [REJ] replaced by [SEG] gives the masks of all
              expressions. Needs a ``[REJ]`` token.
            - ``keep_rejected_masks`` (bool): False (default) empties the
              mask of an expression decided "no target". True keeps its
              predicted mask, as MLLMSeg's protocol does: RES metrics
              score it, and ``RefSegMetric(gres_rule='mllmseg')`` scores it
              for a false positive (non-empty GT) while a true positive
              (empty GT) still counts as IoU 1.
            - ``max_new_tokens`` (generate mode), ``threshold`` (on sigmoid
              probabilities, default 0.5).
            - ``resize``: 'logits' (default; sigmoid after the bilinear
              resize to the original size, foreground where probability >
              ``threshold``, i.e. logit > 0 for 0.5, as SELF1E) or 'probs'
              (MLLMSeg's test scripts: bilinear resize of the sigmoid
              probabilities, foreground where probability >= ``threshold``).
              They differ only on boundary pixels.
        data_preprocessor (dict): ``RefSegDataPreProcessor`` config.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None,
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
        if auxiliary_head is not None:
            self.auxiliary_head = MODELS.build(
                self._fill(auxiliary_head, widths))
            if hasattr(self.decode_head, 'loss_mllm') and getattr(
                    self.auxiliary_head, 'query', None) != 'learned':
                raise ValueError(
                    f'{type(self.decode_head).__name__} computes its own '
                    'losses (loss_mllm), so the segmentor has no [SEG] '
                    "queries to give an auxiliary_head: use query='learned'")
        self.lm_loss_weight = lm_loss_weight
        self.vit_layer = vit_layer
        self.train_cfg = train_cfg or {}
        self.test_cfg = dict(mode='teacher_forced', use_rej=False,
                             rej_decision='seg_vs_rej',
                             keep_rejected_masks=False, resize='logits',
                             threshold=0.5, max_new_tokens=64)
        # A misspelt key (test_cfg.treshold) would otherwise be ignored.
        unknown = sorted(set(test_cfg or {}) - set(self.test_cfg))
        if unknown:
            raise ValueError(f'Unknown test_cfg key(s) {unknown}; '
                             f'RefSegmentor reads {sorted(self.test_cfg)}')
        self.test_cfg.update(test_cfg or {})
        if self.test_cfg['rej_decision'] not in REJ_DECISIONS:
            raise ValueError(f'test_cfg.rej_decision must be one of '
                             f'{REJ_DECISIONS}, got '
                             f"{self.test_cfg['rej_decision']!r}")
        if self.test_cfg['resize'] not in ('logits', 'probs'):
            raise ValueError("test_cfg.resize must be 'logits' or 'probs', "
                             f"got {self.test_cfg['resize']!r}")
        # mmseg's EncoderDecoder exposes these; keep them for tools that look.
        self.align_corners = False
        self.out_channels = 1

    @staticmethod
    def _fill(cfg: dict, widths: Dict[str, int]) -> dict:
        """Fill width arguments that the config leaves out."""
        cfg = dict(cfg)
        obj_cls = MODELS.get(cfg['type'])
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
        global_tiles = self._global_tiles(out)
        # The neck/head keep float32 weights while a frozen backbone may run
        # in bf16; outside autocast (ValLoop/TestLoop) the inputs must be
        # cast, under autocast this is a no-op for the matmuls.
        param = next(self.decode_head.parameters(), None)
        dtype = param.dtype if param is not None else out.seg_states.dtype
        vit = out.vit_features[self.vit_layer][global_tiles].to(dtype)
        llm = out.llm_image_states[global_tiles].to(dtype)
        feats = self.neck(vit, llm) if self.with_neck else vit
        return self.decode_head(feats, out.seg_states.to(dtype),
                                out.seg_to_sample)

    @staticmethod
    def _global_tiles(out: MLLMOutputs) -> Tensor:
        """[B] index of each conversation's global view (its last tile)."""
        return torch.cumsum(torch.bincount(out.tile_to_sample), 0) - 1

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
            if self.with_auxiliary_head:
                losses.update(add_prefix(
                    self._learned_query_aux_loss(out, data_samples), 'aux'))
            return losses
        gt_masks = self._gt_masks_for_seg_slots(out, data_samples)
        if len(gt_masks) == 0:
            # No [SEG] in the batch (all no-target): keep every mask
            # parameter in the graph so DDP does not complain.
            heads = [self.decode_head]
            if self.with_auxiliary_head:
                heads.append(self.auxiliary_head)
            zero = sum(p.sum() * 0. for head in heads
                       for p in head.parameters())
            losses['loss_mask'] = zero
            return losses
        logits = self._mask_logits(out)
        losses.update(self.decode_head.loss_by_feat(logits, gt_masks))
        if self.with_auxiliary_head:
            aux = self.auxiliary_head.loss(out.llm_image_states,
                                           out.seg_states, out.seg_to_image,
                                           gt_masks)
            losses.update(add_prefix(aux, 'aux'))
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

    def _learned_query_aux_loss(self, out: MLLMOutputs,
                                data_samples: SampleList) -> dict:
        """Auxiliary loss of a learned-query head: each conversation's
        global view against its one expression's GT mask."""
        masks = []
        for sample in data_samples:
            gt = sample.gt_sem_seg.data
            if gt.shape[0] != 1:
                raise ValueError(
                    "An auxiliary_head with query='learned' needs one "
                    f'expression per conversation; '
                    f'{sample.metainfo.get("img_path")} has {gt.shape[0]} '
                    '(max_expressions_per_sample=1).')
            masks.append(gt[0])
        return self.auxiliary_head.loss(out.llm_image_states, None,
                                        self._global_tiles(out), masks)

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
        slot_rejected = None
        if self.test_cfg['rej_decision'] == 'argmax_teacher_forced':
            slot_rejected = self._argmax_rej(out)
            out = self._reeval(inputs, out)
        logits = self._mask_logits(out) if len(out.seg_states) else None
        return self.postprocess_result(logits, data_samples, out,
                                       slot_rejected=slot_rejected)

    def _argmax_rej(self, out: MLLMOutputs) -> Tensor:
        """[S] bool: the most likely next token before each slot is [REJ].

        The decision of MLLMSeg's GRES test: with the GT answer
        teacher-forced, slot k's decision sees the GT tokens of the slots
        before it (the protocol's label leakage, kept for parity).
        """
        rej_id = self.backbone.rej_token_id
        if rej_id < 0:
            raise ValueError("test_cfg.rej_decision='argmax_teacher_forced' "
                             'needs [REJ] in the backbone\'s '
                             'extra_special_tokens.')
        pos = out.slot_positions
        if len(pos) == 0:
            return torch.zeros(0, dtype=torch.bool, device=pos.device)
        before = out.last_hidden_state[pos[:, 0], (pos[:, 1] - 1).clamp(min=0)]
        return self.backbone.lm_logits(before).argmax(-1) == rej_id

    def _reeval(self, inputs: dict, out: MLLMOutputs) -> MLLMOutputs:
        """Forward again with every [REJ] turned into [SEG] (if any).

        Tokens are replaced in place, so the slots keep their positions and
        order and the first pass's decisions still line up with them.
        """
        ids = inputs['input_ids']
        is_rej = ids == self.backbone.rej_token_id
        if not bool(is_rej.any()):
            return out
        inputs = dict(inputs, labels=None,
                      input_ids=ids.masked_fill(is_rej,
                                                self.backbone.seg_token_id))
        return self.extract_feat(inputs)

    def postprocess_result(self, seg_logits: Optional[Tensor],
                           data_samples: SampleList,
                           out: Optional[MLLMOutputs] = None,
                           slot_rejected: Optional[Tensor] = None
                           ) -> SampleList:
        """Resize each query's logits to its image and threshold.

        Expressions without a ``[SEG]`` (the model answered ``[REJ]``, or
        generation produced fewer slots) get an empty mask and
        ``pred_no_target`` True. With ``test_cfg.use_rej`` an expression
        the model rejects gets ``pred_no_target`` True too, and an empty
        mask unless ``test_cfg.keep_rejected_masks``.

        Args:
            seg_logits (Tensor, optional): mask logits of every ``[SEG]``
                slot [Q, 1, h, w] (None when there is none).
            data_samples (list[SegDataSample]): samples to fill in.
            out (MLLMOutputs): the backbone output the logits come from.
            slot_rejected (Tensor, optional): [S] bool no-target decision
                per slot; defaults to ``out.slot_rej_score > 0``.

        Returns:
            list[SegDataSample]: ``seg_logits`` (probabilities),
            ``pred_sem_seg`` [K, H, W] and metainfo ``pred_no_target``.
        """
        thr = self.test_cfg['threshold']
        use_rej = self.test_cfg['use_rej']
        keep_rejected = self.test_cfg.get('keep_rejected_masks', False)
        resize_probs = self.test_cfg.get('resize', 'logits') == 'probs'
        if slot_rejected is None and out.slot_rej_score is not None:
            slot_rejected = out.slot_rej_score > 0
        slots = self._slots_per_sample(out, len(data_samples))
        seg_index = torch.cumsum(out.slot_is_seg.long(), 0) - 1
        for b, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('ori_shape', out.vit_grid)[:2]
            k_expr = len(meta.get('texts', [])) or len(slots[b])
            probs = torch.zeros((k_expr, h, w), device=out.seg_states.device)
            pred_nt = [True] * k_expr
            empty = [True] * k_expr
            for k, s in enumerate(slots[b].tolist()[:k_expr]):
                rejected = bool(use_rej and slot_rejected is not None and
                                slot_rejected[s])
                if not out.slot_is_seg[s] or (rejected and not keep_rejected):
                    continue
                logit = seg_logits[seg_index[s]][None].float()
                if resize_probs:
                    probs[k] = F.interpolate(
                        logit.sigmoid(), size=(h, w), mode='bilinear',
                        align_corners=False)[0, 0]
                else:
                    probs[k] = F.interpolate(
                        logit, size=(h, w), mode='bilinear',
                        align_corners=False)[0, 0].sigmoid()
                pred_nt[k] = rejected
                empty[k] = False
            pred = probs >= thr if resize_probs else probs > thr
            pred[torch.as_tensor(empty, dtype=torch.bool)] = False
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
