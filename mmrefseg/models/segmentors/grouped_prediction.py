# Copyright (c) mmrefseg contributors.
"""RefSegmentor's prediction of samples grouped by image.

A sample grouped by image (``test_grouping='image'``) carries K expressions
that ``RefSegDataPreProcessor`` wrote as K conversations sharing the
sample's tiles (``inputs['conv_to_image']``). Each expression is still
answered on its own (LISA's per-expression protocol), so the predictions
equal those of one sample per expression; what is shared is computed once:

- 'prefix': attention over the image cannot see the expression (the head's
  ``llm_attention`` is 'causal' and the processor writes the image before
  the question, as InternVL, the released MLLMSeg weights and Text4Seg
  do). ViT + projector once per image, LLM prefill over the tokens the K
  conversations share once per image, its KV cache reused by one batched
  pass over the K suffixes (:mod:`..backbones.shared_prefix`); the neck
  reads image states that are the same for the K, so it runs once too.
  Text4Seg generates greedily from that cache, all conversations of the
  batch at once.
- 'batched': anything else (SELF1E's dual-perception mask, question-first
  prompts): ViT + projector once per image, the K conversations in one
  padded LLM batch.

Nothing in a config chooses the path: :meth:`grouped_path` reads it from
the head's declaration and the processor's prompt layout.
"""
from typing import List, Optional

import torch
from torch import Tensor

from mmrefseg.structures import RefSegDataSample
from ..backbones.outputs_assembly import uncompressed_embeds
from ..backbones.shared_prefix import (
    ImageGroups,
    common_prefix_lengths,
    is_plain_greedy,
    prefix_covers_images,
    right_padded_lengths,
    shared_prefix_forward,
    shared_prefix_generate,
    shared_vision,
)

GROUPED_PATHS = ('prefix', 'batched')


class GroupedPredictionMixin:
    """The grouped half of :class:`RefSegmentor.predict`.

    Expects ``self.backbone``, ``self.decode_head``, ``self.test_cfg``,
    ``self.postprocess_result``, ``self._image_features``,
    ``self._set_predictions``, ``self._predict_conversations`` and the
    answer-generation methods of :class:`AnswerGenerationMixin`.
    """

    def grouped_path(self, inputs: dict) -> str:
        """'prefix' or 'batched' for a grouped batch (see the module).

        Args:
            inputs (dict): a batch with ``conv_to_image``.

        Returns:
            str: the path :meth:`predict` takes.
        """
        causal = self.decode_head.llm_attention == 'causal'
        image_first = not self.backbone.processor.chat.question_first
        if not (causal and image_first):
            return 'batched'
        # The layout says the prefix holds the image; check it on the
        # tokens (a padding side or template that breaks it falls back).
        lengths = right_padded_lengths(inputs['attention_mask'])
        if lengths is None:
            return 'batched'
        groups = self._groups(inputs)
        prefix = common_prefix_lengths(inputs['input_ids'], lengths,
                                       groups.conv_to_image,
                                       groups.num_images)
        return 'prefix' if prefix_covers_images(
            self.backbone, inputs['input_ids'], prefix, groups) \
            else 'batched'

    @staticmethod
    def _groups(inputs: dict) -> ImageGroups:
        return ImageGroups.build(inputs['conv_to_image'],
                                 inputs['num_tiles'])

    def _predict_grouped(self, inputs: dict,
                         data_samples: List) -> List:
        """Predict K conversations per sample, return one sample each.

        Args:
            inputs (dict): batch with ``conv_to_image`` [B].
            data_samples (list[RefSegDataSample]): one per image (input
                sample), K expressions each.

        Returns:
            list[RefSegDataSample]: ``data_samples`` with ``pred_masks``
            [K, H, W] etc., as the per-expression path gives them.
        """
        groups = self._groups(inputs)
        if len(data_samples) != groups.num_images:
            raise ValueError(
                f'{groups.num_images} images in the batch but '
                f'{len(data_samples)} data samples; a grouped batch needs '
                'its samples (RefSegDataPreProcessor writes them).')
        convs = conversation_samples(data_samples, groups.conv_to_image)
        head = self.decode_head
        needs_own_tiles = head.mask_source != 'answers' and (
            self.test_cfg['mode'] == 'generate' or
            self.test_cfg['rej_decision'] == 'argmax_teacher_forced')
        if needs_own_tiles or (head.mask_source == 'answers' and
                               not self._can_share_generation(inputs)):
            # Paths with their own backbone calls (generation, the
            # teacher-forced [REJ] re-evaluation): each conversation gets
            # its own copy of the tiles; the results are the same.
            self._predict_conversations(self._own_tiles(inputs, groups),
                                        convs)
        elif head.mask_source == 'answers':
            self._predict_shared_answers(inputs, convs, groups)
        else:
            self._predict_shared_outputs(inputs, convs, groups)
        return merge_conversations(convs, data_samples, groups.conv_to_image,
                                   self._set_predictions)

    def _predict_shared_outputs(self, inputs: dict, convs: List,
                                groups: ImageGroups) -> None:
        head = self.decode_head
        if self.grouped_path(inputs) == 'prefix':
            lengths = right_padded_lengths(inputs['attention_mask'])
            prefix = common_prefix_lengths(inputs['input_ids'], lengths,
                                           groups.conv_to_image,
                                           groups.num_images)
            out = shared_prefix_forward(
                self.backbone, inputs['pixel_values'], inputs['input_ids'],
                lengths, prefix, groups, inputs['num_tiles'],
                uncompressed_vision=head.needs_uncompressed_vision)
            feats = self._shared_image_features(out, groups)
        else:
            out = self._batched_grouped_outputs(inputs)
            feats = self._image_features(out)
        logits = head.predict_by_outputs(out, convs, feats=feats) \
            if len(out.seg_states) else None
        self.postprocess_result(logits, convs, out)

    def _batched_grouped_outputs(self, inputs: dict):
        """The 'batched' path: ViT + projector once per image, the
        conversations as one padded LLM batch with the head's attention.

        Args:
            inputs (dict): a batch with ``conv_to_image``.

        Returns:
            MLLMOutputs: per conversation, as ``extract_feat`` gives for
            one sample per conversation.
        """
        head = self.decode_head
        groups = self._groups(inputs)
        (vit, _), vision = shared_vision(self.backbone,
                                         inputs['pixel_values'], groups)
        out = self.backbone(
            pixel_values=None, input_ids=inputs['input_ids'],
            attention_mask=inputs.get('attention_mask'),
            labels=inputs.get('labels'), num_tiles=inputs['num_tiles'],
            llm_attention=head.llm_attention, vision=vision)
        if head.needs_uncompressed_vision:
            out.uncompressed_embeds = uncompressed_embeds(
                self.backbone, vit).index_select(0, groups.conv_tiles)
        return out

    def _shared_image_features(self, out, groups: ImageGroups
                               ) -> Optional[Tensor]:
        """Neck features once per image (the prefix path's image states
        are the same for all its conversations), one row per
        conversation."""
        if self.decode_head.mask_source != 'features':
            return None
        c2i = groups.conv_to_image
        first = torch.stack([torch.nonzero(c2i == i).flatten()[0]
                             for i in range(groups.num_images)])
        tiles = self._global_tiles(out)[first]
        param = next(self.decode_head.parameters(), None)
        dtype = param.dtype if param is not None else out.seg_states.dtype
        vit = out.vit_features[self.vit_layer][tiles].to(dtype)
        llm = out.llm_image_states[tiles].to(dtype)
        feats = self.neck(vit, llm) if self.with_neck else vit
        return feats.index_select(0, c2i.to(feats.device))

    def _can_share_generation(self, inputs: dict) -> bool:
        """Greedy generation with only the budget and line stop (what the
        shared loop implements; a checkpoint's generation config may add
        e.g. a repetition penalty) from an image-first prompt."""
        extra = set(self.decode_head.generation_cfg) - {'max_new_tokens',
                                                        'max_lines'}
        return not extra and is_plain_greedy(
            self.backbone.hf.generation_config) and \
            self.grouped_path(inputs) == 'prefix'

    def _predict_shared_answers(self, inputs: dict, convs: List,
                                groups: ImageGroups) -> None:
        cfg = self.decode_head.generation_cfg
        processor = self.backbone.processor
        lengths = [int(n) for n in inputs['prompt_lengths']]
        if min(lengths) <= 0:
            raise ValueError('Generation needs the prompt lengths that '
                             'RefSegDataPreProcessor writes.')
        prompts = [inputs['input_ids'][b, :n] for b, n in enumerate(lengths)]
        max_lines = int(cfg.get('max_lines', 0))
        new = shared_prefix_generate(
            self.backbone, inputs['pixel_values'], prompts, groups,
            max_new_tokens=int(cfg['max_new_tokens']),
            stop_token_ids=processor.stop_token_ids,
            newlines=processor.newline_counts() if max_lines > 0 else None,
            max_lines=max_lines)
        images = inputs.get('images')
        images = [images[i] for i in groups.conv_to_image.tolist()] \
            if images is not None else None
        self._write_answer_predictions(new, convs, images,
                                       inputs['input_ids'].device)

    @staticmethod
    def _own_tiles(inputs: dict, groups: ImageGroups) -> dict:
        """The batch with each conversation's own copy of its tiles."""
        flat = {k: v for k, v in inputs.items() if k != 'conv_to_image'}
        idx = groups.conv_tiles.to(inputs['pixel_values'].device)
        flat['pixel_values'] = inputs['pixel_values'].index_select(0, idx)
        images = inputs.get('images')
        if images is not None:
            flat['images'] = [images[i]
                              for i in groups.conv_to_image.tolist()]
        return flat


def conversation_samples(data_samples: List, conv_to_image: Tensor) -> List:
    """One sample per conversation: a grouped sample's expression k as its
    own one-expression sample (same metainfo, k-th question/answer); a
    sample with one conversation as it is.

    Args:
        data_samples (list[RefSegDataSample]): one per image.
        conv_to_image (Tensor): [B] image of each conversation.

    Returns:
        list[RefSegDataSample]: B samples.
    """
    owners = conv_to_image.tolist()
    counts = [owners.count(i) for i in range(len(data_samples))]
    convs = []
    for sample, count in zip(data_samples, counts):
        if count == 1 and sample.num_expressions <= 1:
            convs.append(sample)
            continue
        if count != sample.num_expressions:
            raise ValueError(
                f'Sample {sample.metainfo.get("img_path")} has '
                f'{sample.num_expressions} expressions but {count} '
                'conversations.')
        meta = sample.metainfo
        for k, text in enumerate(sample.texts):
            conv = RefSegDataSample(metainfo=dict(meta))
            for key in ('question', 'answer'):
                if isinstance(meta.get(key), list):
                    conv.set_metainfo({key: meta[key][k]})
            conv.texts = [text]
            for key in ('gt_masks', 'gt_bboxes', 'gt_no_target'):
                if key in sample:
                    setattr(conv, key, getattr(sample, key)[k:k + 1])
            convs.append(conv)
    return convs


def merge_conversations(convs: List, data_samples: List,
                        conv_to_image: Tensor, set_predictions) -> List:
    """Write the K conversations' predictions into their image's sample.

    Args:
        convs (list[RefSegDataSample]): predicted, one per conversation.
        data_samples (list[RefSegDataSample]): one per image.
        conv_to_image (Tensor): [B] image of each conversation.
        set_predictions (callable): ``RefSegmentor._set_predictions``.

    Returns:
        list[RefSegDataSample]: ``data_samples``, each with ``pred_masks``
        [K, H, W], ``pred_probs``, ``pred_no_target`` [K] and, for answer
        heads, ``generated_texts``, ``parse_status``, ``parse_repairs``.
    """
    owners = conv_to_image.tolist()
    for i, sample in enumerate(data_samples):
        parts = [c for c, o in zip(convs, owners) if o == i]
        if len(parts) == 1 and parts[0] is sample:
            continue
        probs = torch.cat([c.pred_probs for c in parts])
        masks = torch.cat([c.pred_masks for c in parts])
        no_target = torch.cat([c.pred_no_target for c in parts]).tolist()
        set_predictions(sample, probs, masks, no_target)
        for key in ('generated_texts', 'parse_status', 'parse_repairs'):
            if key in parts[0]:
                setattr(sample, key,
                        [v for c in parts for v in getattr(c, key)])
    return data_samples
