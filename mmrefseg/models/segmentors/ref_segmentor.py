# Copyright (c) mmrefseg contributors.
"""RefSegmentor: InternVL backbone + optional neck + segmentation head."""
import inspect
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.utils import add_prefix
from torch import Tensor

from mmrefseg.registry import MODELS
from mmrefseg.structures import MLLMOutputs, RefSegDataSample
from ..heads.base_ref_head import BaseRefHead
from .answer_generation import AnswerGenerationMixin
from .grouped_prediction import GroupedPredictionMixin
from .rej_decision import REJ_DECISIONS, RejDecisionMixin

SampleList = List[RefSegDataSample]


@MODELS.register_module()
class RefSegmentor(AnswerGenerationMixin, GroupedPredictionMixin,
                   RejDecisionMixin, BaseSegmentor):
    """Referring segmentation with an MLLM backbone (an MMSeg segmentor).

    The only caller of the backbone (forward and ``generate``). The decode
    head is a :class:`BaseRefHead` and declares what it needs: its
    ``mask_source`` ('features': the neck's fused features of each
    conversation's global view plus the ``[SEG]`` states, MLLMSeg;
    'outputs': the whole :class:`MLLMOutputs`, SELF1E; 'answers': masks
    decoded from generated text, Text4Seg), its LLM attention policy, the
    uncompressed vision branch, its no-target rule and its generation
    settings. The segmentor matches GT masks to ``[SEG]`` slots, and
    resizes/thresholds every head's logits in one place
    (:meth:`postprocess_result`). The backbone's processor is handed to the
    data preprocessor, which writes each sample's conversation with it.

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
            (``mask_source`` other than 'features') take only a
            ``query='learned'`` one, scored on each conversation's single
            expression.
        lm_loss_weight (float): weight of the LLM next-token loss.
        vit_layer (int): ViT layer fed to the neck (HF index, -1 = last).
        train_cfg (dict, optional): unused, kept for MMSeg compatibility.
        test_cfg (dict, optional): evaluation options of heads that
            predict from backbone outputs:

            - ``mode``: 'teacher_forced' (default) or 'generate'.
            - ``use_rej`` (bool): read the model's no-target decision at
              each answer slot (gRefCOCO) and write it to
              ``pred_no_target``. Default False.
            - ``rej_decision``: how that decision is made.
              ``'seg_vs_rej'`` (default): logit([REJ]) > logit([SEG]) at
              the token before the slot
              (:attr:`MLLMOutputs.slot_rej_score`), one forward over the
              answer as the processor wrote it ([SEG] everywhere at test by
              default). ``'argmax_teacher_forced'`` (MLLMSeg's
              ``test_mllmseg_gres.py``): the argmax over the whole
              vocabulary at the token before the slot is [REJ]; the
              processor writes the GT answer (its
              ``test_reject_no_target=True``: [REJ] for empty targets), and
              when that answer holds any [REJ] a second "reeval" forward with
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
        data_preprocessor (dict, optional): ``RefSegDataPreProcessor``
            config (the default); it gets the backbone's processor.
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
        if data_preprocessor is None:
            data_preprocessor = dict(type='RefSegDataPreProcessor')
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
        self.data_preprocessor.set_processor(self.backbone.processor)
        widths = dict(vit_channels=self.backbone.vit_channels,
                      llm_channels=self.backbone.llm_channels,
                      patch_size=self.backbone.patch_size)
        if neck is not None:
            self.neck = MODELS.build(self._fill(neck, widths))
        self.decode_head = MODELS.build(self._fill(decode_head, widths))
        if not isinstance(self.decode_head, BaseRefHead):
            raise TypeError(f'{type(self.decode_head).__name__} is not a '
                            'BaseRefHead; RefSegmentor calls only that '
                            'interface.')
        self.decode_head.validate_declarations()
        if auxiliary_head is not None:
            self.auxiliary_head = MODELS.build(
                self._fill(auxiliary_head, widths))
            if self.decode_head.mask_source != 'features' and getattr(
                    self.auxiliary_head, 'query', None) != 'learned':
                raise ValueError(
                    f'{type(self.decode_head).__name__} reads no [SEG] '
                    "queries from the segmentor (mask_source="
                    f"{self.decode_head.mask_source!r}), so an "
                    "auxiliary_head must use query='learned'")
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
        if self.test_cfg['mode'] not in ('teacher_forced', 'generate'):
            raise ValueError("test_cfg.mode must be 'teacher_forced' or "
                             f"'generate', got {self.test_cfg['mode']!r}")
        if self.test_cfg['mode'] == 'generate' and \
                self.decode_head.llm_attention != 'causal':
            raise ValueError(
                "test_cfg.mode='generate' writes answers with transformers' "
                'causal generation loop, which cannot run the head\'s '
                f'{self.decode_head.llm_attention!r} attention; use '
                "mode='teacher_forced'.")
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

    def init_weights(self) -> None:
        """MMEngine's ``init_weights`` with 4/8-bit backbone weights set
        aside: it logs each parameter's mean, which integer tensors lack
        (they come from HF and get no MMEngine init anyway)."""
        from ..backbones.quantization import quantized_weights_set_aside
        with quantized_weights_set_aside(self):
            super().init_weights()

    # ------------------------------------------------------------ backbone
    def extract_feat(self, inputs: dict) -> MLLMOutputs:
        """Run the backbone on a batch from ``RefSegDataPreProcessor``, with
        the LLM attention and vision outputs the decode head declares."""
        if 'conv_to_image' in inputs:  # tiles shared by conversations
            return self._batched_grouped_outputs(inputs)
        head = self.decode_head
        return self.backbone(
            pixel_values=inputs['pixel_values'],
            input_ids=inputs['input_ids'],
            attention_mask=inputs.get('attention_mask'),
            labels=inputs.get('labels'),
            num_tiles=inputs.get('num_tiles'),
            llm_attention=head.llm_attention,
            uncompressed_vision=head.needs_uncompressed_vision)

    def _image_features(self, out: MLLMOutputs) -> Optional[Tensor]:
        """Neck features of each conversation's global view [B, C, h, w],
        for heads with ``mask_source='features'`` (else None)."""
        if self.decode_head.mask_source != 'features':
            return None
        global_tiles = self._global_tiles(out)
        # The neck/head keep float32 weights while a frozen backbone may run
        # in bf16; outside autocast (ValLoop/TestLoop) the inputs must be
        # cast, under autocast this is a no-op for the matmuls.
        param = next(self.decode_head.parameters(), None)
        dtype = param.dtype if param is not None else out.seg_states.dtype
        vit = out.vit_features[self.vit_layer][global_tiles].to(dtype)
        llm = out.llm_image_states[global_tiles].to(dtype)
        return self.neck(vit, llm) if self.with_neck else vit

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
        """LLM next-token loss plus the head's (and auxiliary head's) mask
        losses."""
        out = self.extract_feat(inputs)
        losses = dict(loss_lm=out.lm_loss * self.lm_loss_weight)
        head = self.decode_head
        if head.mask_source == 'answers':
            # The answer is the mask: loss_lm is the whole objective.
            losses.update(head.loss_by_outputs(out, [], data_samples))
            if self.with_auxiliary_head:
                losses.update(add_prefix(
                    self._learned_query_aux_loss(out, data_samples), 'aux'))
            return losses
        gt_masks = self._gt_masks_for_seg_slots(out, data_samples)
        feats = self._image_features(out) if len(gt_masks) else None
        losses.update(head.loss_by_outputs(out, gt_masks, data_samples,
                                           feats=feats))
        if not self.with_auxiliary_head:
            return losses
        if head.mask_source != 'features':
            aux = self._learned_query_aux_loss(out, data_samples)
        elif len(gt_masks) == 0:
            # Keep the auxiliary parameters in the graph (DDP).
            aux = dict(loss_mask=sum(p.sum() * 0. for p in
                                     self.auxiliary_head.parameters()))
        else:
            aux = self.auxiliary_head.loss(out.llm_image_states,
                                           out.seg_states, out.seg_to_image,
                                           gt_masks)
        losses.update(add_prefix(aux, 'aux'))
        return losses

    def _gt_masks_for_seg_slots(self, out: MLLMOutputs,
                                data_samples: SampleList) -> List[Tensor]:
        """GT mask of every ``[SEG]`` slot, in slot order (``[REJ]`` slots
        of no-target expressions get none)."""
        masks = []
        for b, slots in enumerate(self._slots_per_sample(
                out, len(data_samples))):
            gt = self._gt(data_samples[b])
            if len(slots) != gt.shape[0]:
                raise ValueError(
                    f'Sample {data_samples[b].metainfo.get("img_path")} has '
                    f'{gt.shape[0]} expressions but {len(slots)} [SEG]/[REJ] '
                    'slots in its conversation.')
            for k, s in enumerate(slots.tolist()):
                if out.slot_is_seg[s]:
                    masks.append(gt[k])
        return masks

    @staticmethod
    def _gt(sample: RefSegDataSample) -> Tensor:
        if 'gt_masks' not in sample:
            raise KeyError(
                f'Training sample {sample.metainfo.get("img_path")} has no '
                'gt_masks (LoadRefMasks needs annotated expressions).')
        return sample.gt_masks

    def _learned_query_aux_loss(self, out: MLLMOutputs,
                                data_samples: SampleList) -> dict:
        """Auxiliary loss of a learned-query head: each conversation's
        global view against its one expression's GT mask."""
        masks = []
        for sample in data_samples:
            gt = self._gt(sample)
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
        """Masks at the original resolution, per expression.

        A batch whose samples are grouped by image (``conv_to_image``, one
        conversation per expression) shares each image's encoding among its
        conversations (:class:`GroupedPredictionMixin`); the predictions are
        those of one sample per expression.

        Returns:
            list[RefSegDataSample]: ``pred_masks`` [K, H, W],
            ``pred_probs``, ``pred_no_target`` [K] (and for answer heads
            ``generated_texts``, ``parse_status``, ``parse_repairs``),
            plus MMSeg's ``pred_sem_seg`` / ``seg_logits``.
        """
        if 'conv_to_image' in inputs:
            return self._predict_grouped(inputs, data_samples or [])
        if data_samples is None:
            data_samples = [RefSegDataSample() for _ in inputs['num_tiles']]
        return self._predict_conversations(inputs, data_samples)

    def _predict_conversations(self, inputs: dict,
                               data_samples: SampleList) -> SampleList:
        """Predict a batch of one sample per conversation."""
        head = self.decode_head
        if head.mask_source == 'answers':
            return self._predict_from_answers(inputs, data_samples)
        if self.test_cfg['mode'] == 'generate':
            inputs = self._append_generated_answers(inputs)
        out = self.extract_feat(inputs)
        slot_rejected = None
        if self.test_cfg['rej_decision'] == 'argmax_teacher_forced':
            slot_rejected = self._argmax_rej(out)
            out = self._reeval(inputs, out)
        logits = head.predict_by_outputs(
            out, data_samples, feats=self._image_features(out)) \
            if len(out.seg_states) else None
        return self.postprocess_result(logits, data_samples, out,
                                       slot_rejected=slot_rejected)

    def postprocess_result(self, seg_logits: Optional[List[Tensor]],
                           data_samples: SampleList,
                           out: Optional[MLLMOutputs] = None,
                           slot_rejected: Optional[Tensor] = None
                           ) -> SampleList:
        """Resize each query's logits to its image and threshold.

        Expressions without a ``[SEG]`` (the model answered ``[REJ]``, or
        generation produced fewer slots) get an empty mask and
        ``pred_no_target`` True. With ``test_cfg.use_rej`` an expression
        the model rejects gets ``pred_no_target`` True too, and an empty
        mask unless ``test_cfg.keep_rejected_masks``. For a head whose
        ``no_target_rule`` is 'empty_mask' (SELF1E), "no target" is an
        empty predicted mask.

        Args:
            seg_logits (list[Tensor], optional): per conversation, the mask
                logits [K_b, 1, h, w] of its ``[SEG]`` slots in order (None
                when the batch has none).
            data_samples (list[RefSegDataSample]): samples to fill in.
            out (MLLMOutputs): the backbone output the logits come from.
            slot_rejected (Tensor, optional): [S] bool no-target decision
                per slot; defaults to ``out.slot_rej_score > 0``.

        Returns:
            list[RefSegDataSample]: with the prediction fields.
        """
        thr = self.test_cfg['threshold']
        use_rej = self.test_cfg['use_rej']
        keep_rejected = self.test_cfg.get('keep_rejected_masks', False)
        resize_probs = self.test_cfg.get('resize', 'logits') == 'probs'
        empty_is_no_target = self.decode_head.no_target_rule == 'empty_mask'
        if slot_rejected is None and out.slot_rej_score is not None:
            slot_rejected = out.slot_rej_score > 0
        slots = self._slots_per_sample(out, len(data_samples))
        for b, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('ori_shape', out.vit_grid)[:2]
            k_expr = sample.num_expressions or len(slots[b])
            probs = torch.zeros((k_expr, h, w), device=out.seg_states.device)
            pred_nt = [True] * k_expr
            empty = [True] * k_expr
            seg_rank = 0
            for k, s in enumerate(slots[b].tolist()[:k_expr]):
                if not out.slot_is_seg[s]:
                    continue
                rank, seg_rank = seg_rank, seg_rank + 1
                rejected = bool(use_rej and slot_rejected is not None and
                                slot_rejected[s])
                if rejected and not keep_rejected:
                    continue
                logit = seg_logits[b][rank][None].float()
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
            if empty_is_no_target:
                pred_nt = (~pred.flatten(1).any(1)).tolist()
            self._set_predictions(sample, probs, pred, pred_nt)
        return data_samples

    @staticmethod
    def _set_predictions(sample: RefSegDataSample, probs: Tensor,
                         masks: Tensor, no_target: List[bool]) -> None:
        """Write the typed prediction fields (and MMSeg's)."""
        sample.pred_probs = probs
        sample.pred_masks = masks.bool()
        sample.pred_no_target = torch.as_tensor(
            no_target, dtype=torch.bool, device=masks.device)
        sample.set_data(dict(
            seg_logits=PixelData(data=probs),
            pred_sem_seg=PixelData(data=masks.to(torch.uint8))))

    # ------------------------------------------------------ mmseg plumbing
    def _forward(self, inputs: dict, data_samples=None) -> List[Tensor]:
        """Mask logits of every conversation's [SEG] queries
        (``mode='tensor'``)."""
        out = self.extract_feat(inputs)
        samples = data_samples or [
            RefSegDataSample() for _ in inputs['num_tiles']]
        return self.decode_head.predict_by_outputs(
            out, samples, feats=self._image_features(out))

    def encode_decode(self, inputs: dict, batch_img_metas: List[dict]):
        return self._forward(inputs)

    def aug_test(self, inputs, batch_img_metas, rescale=True):
        raise NotImplementedError('Test-time augmentation is not supported.')
