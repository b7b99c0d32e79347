# Copyright (c) mmrefseg contributors.
"""Released MLLMSeg (``res_decoder.*``) -> DSFFNeck + LightMaskDecoderHead.

The released decoder is one module, ``res_decoder``; its submodule names
are kept verbatim by :class:`DSFFNeck` (query-independent part) and
:class:`LightMaskDecoderHead` (per-``[SEG]`` part), so the mapping is a
prefix split. BatchNorm running statistics and DySample's ``init_pos``
buffer are carried over.

======================================  =================================
source (``res_decoder.`` + ...)          target
======================================  =================================
``img_llm_down.*``                       ``neck.img_llm_down.*``
``ca_layer_v2l.decoder.*``               ``neck.ca_layer_v2l.decoder.*``
``upsample_adapter_l.{offset.*,init_pos}``  ``neck.upsample_adapter_l.*``
``text_out_adapter.*``                   ``neck.text_out_adapter.*``
``text_down.*``                          ``decode_head.text_down.*``
``ca_layer_vl.decoder.*``                ``decode_head.ca_layer_vl.decoder.*``
``conv1.0.*`` (conv), ``conv1.1.*`` (BN)  ``decode_head.conv1.{0,1}.*``
``conv2.*``                              ``decode_head.conv2.*``
======================================  =================================

The released forward returns ``sigmoid(conv2(x))``; the head returns
``conv2(x)`` and the segmentor applies the sigmoid, thresholding at 0.5 as
the release does.
"""
import math
from typing import Dict, Tuple

import torch

from .key_mapping import Rule
from .release import ReleaseSpec, meta_module_shapes

PREFIX = 'res_decoder.'
NECK_MODULES = ('img_llm_down', 'ca_layer_v2l', 'upsample_adapter_l',
                'text_out_adapter')
HEAD_MODULES = ('text_down', 'ca_layer_vl', 'conv1', 'conv2')
# Not stored in the checkpoint (hard-coded in the release).
RELEASED_NUM_HEADS = 8
DYSAMPLE_SCALE = 2

MLLMSEG_RULES = [
    Rule(r'res_decoder\.(' + '|'.join(NECK_MODULES) + r')\.(.+)',
         [r'neck.\1.\2']),
    Rule(r'res_decoder\.(' + '|'.join(HEAD_MODULES) + r')\.(.+)',
         [r'decode_head.\1.\2']),
]


def decoder_dims(shapes: Dict[str, Tuple[int, ...]],
                 num_heads: int = RELEASED_NUM_HEADS) -> dict:
    """Constructor arguments of the neck/head implied by the shapes."""

    def shape(name: str) -> Tuple[int, ...]:
        if PREFIX + name not in shapes:
            raise KeyError(f'The MLLMSeg checkpoint has no {PREFIX}{name}')
        return shapes[PREFIX + name]

    embed, llm = shape('img_llm_down.weight')
    layer = 'decoder.layers.0.linear1.weight'
    conv1_out = shape('conv1.0.weight')[0]
    patch = math.isqrt(conv1_out)
    if patch * patch != conv1_out:
        raise ValueError(f'conv1 has {conv1_out} output channels, not a '
                         'square patch size')
    offsets = shape('upsample_adapter_l.offset.weight')[0]
    return dict(
        embed_dims=embed, llm_channels=llm, num_heads=num_heads,
        neck_ffn_channels=shape('ca_layer_v2l.' + layer)[0],
        head_ffn_channels=shape('ca_layer_vl.' + layer)[0],
        patch_size=patch,
        dysample_groups=offsets // (2 * DYSAMPLE_SCALE**2))


def build_targets(shapes, chat_cfg, num_heads: int = RELEASED_NUM_HEADS):
    """Expected neck/head state-dict shapes, and their config values."""
    from mmrefseg.models.heads.light_mask_decoder import LightMaskDecoderHead
    from mmrefseg.models.necks.dsff import DSFFNeck
    dims = decoder_dims(shapes, num_heads)
    vit = chat_cfg['vision_config']['hidden_size']
    with torch.device('meta'):
        neck = DSFFNeck(
            vit_channels=vit, llm_channels=dims['llm_channels'],
            embed_dims=dims['embed_dims'], num_heads=num_heads,
            ffn_channels=dims['neck_ffn_channels'],
            dysample_groups=dims['dysample_groups'],
            scale_factor=DYSAMPLE_SCALE)
        head = LightMaskDecoderHead(
            llm_channels=dims['llm_channels'],
            embed_dims=dims['embed_dims'], num_heads=num_heads,
            ffn_channels=dims['head_ffn_channels'],
            patch_size=dims['patch_size'], loss_mask=[])
    expected = meta_module_shapes(neck, 'neck')
    expected.update(meta_module_shapes(head, 'decode_head'))
    options = {
        'model.neck.embed_dims': dims['embed_dims'],
        'model.neck.num_heads': num_heads,
        'model.neck.ffn_channels': dims['neck_ffn_channels'],
        'model.neck.dysample_groups': dims['dysample_groups'],
        'model.decode_head.embed_dims': dims['embed_dims'],
        'model.decode_head.num_heads': num_heads,
        'model.decode_head.ffn_channels': dims['head_ffn_channels'],
        'model.decode_head.patch_size': dims['patch_size'],
    }
    return expected, options


def mllmseg_spec(num_heads: int = RELEASED_NUM_HEADS) -> ReleaseSpec:
    """How to convert a released MLLMSeg checkpoint."""
    return ReleaseSpec(
        name='MLLMSeg',
        prefixes=(PREFIX, ),
        rules=MLLMSEG_RULES,
        build_targets=lambda shapes, cfg: build_targets(shapes, cfg,
                                                        num_heads),
        backbone_options=dict(
            # LISA convention: the [SEG] query is the state before [SEG].
            seg_state_offset=-1,
            # The released decoder saw image states shifted by one token.
            image_state_offset=-1,
            # The release trained the [SEG]/[REJ] rows: keep them.
            init_new_token_rows=False),
        token_names=('[SEG]', '[REJ]', '<IMG_CONTEXT>'),
        notes=[
            'Evaluate with one 448x448 squashed tile per image (no dynamic '
            'tiling), as the release does.',
            "Keep model.backbone.extra_special_tokens=['[SEG]', '[REJ]'] "
            '(the MLLMSeg configs do).',
            'The data pipeline must tokenize with the same tokenizer: point '
            "the configs' tokenizer/checkpoint at the hf/ directory.",
        ])
