# Copyright (c) mmrefseg contributors.
"""Released SELF1E (``InternVL3SELF1E``) -> Self1EHead.

SELF1E adds three two-layer MLPs to a stock InternVL3 checkpoint; the LLM
(Qwen2.5), ViT and ``mlp1`` keys are stock InternVL chat keys with two
extra vocabulary rows. :class:`Self1EHead` keeps the released module names:

==============================  =========================================
source                          target
==============================  =========================================
``combine_decode_proj.*``       ``decode_head.combine_decode_proj.*``
``combine_decode_proj_all.*``   ``decode_head.combine_decode_proj_all.*``
``combine_decode_proj_ori.*``   ``decode_head.combine_decode_proj_ori.*``
==============================  =========================================

Each is ``{0,2}.{weight,bias}`` (``.1`` is the parameter-free GELU). The
release saves no tokenizer: pass the base InternVL3 directory as
``tokenizer_src``; ``[SEG]`` and the unused ``[SEGT]`` are registered in
that order, as the original training script does, and must land on the
checkpoint's last two embedding rows.
"""
from .key_mapping import Rule
from .release import ReleaseSpec, meta_module_shapes

PREFIX = 'combine_decode_proj'
SELF1E_RULES = [
    Rule(r'(combine_decode_proj(?:_all|_ori)?)\.(0|2)\.(weight|bias)',
         [r'decode_head.\1.\2.\3']),
]


def build_targets(shapes, chat_cfg):
    """Expected Self1EHead state-dict shapes, and its config values."""
    import torch

    from mmrefseg.models.heads.self1e_head import Self1EHead
    key = PREFIX + '.0.weight'
    if key not in shapes:
        raise KeyError(f'The SELF1E checkpoint has no {key}')
    channels = shapes[key][1]
    with torch.device('meta'):
        head = Self1EHead(llm_channels=channels, loss_mask={})
    return meta_module_shapes(head, 'decode_head'), {}


def self1e_spec() -> ReleaseSpec:
    """How to convert a released SELF1E checkpoint."""
    return ReleaseSpec(
        name='SELF1E',
        prefixes=(PREFIX, ),
        rules=SELF1E_RULES,
        build_targets=build_targets,
        backbone_options=dict(
            # h_seg is the state before [SEG] (LISA convention).
            seg_state_offset=-1,
            # SELF1E reads the image states in place.
            image_state_offset=0,
            init_new_token_rows=False),
        token_names=('[SEG]', '[SEGT]', '<IMG_CONTEXT>'),
        extra_tokens=('[SEG]', '[SEGT]'),
        notes=[
            "Keep model.backbone.extra_special_tokens=['[SEG]', '[SEGT]'] "
            '(the SELF1E configs do): the release has both rows.',
            "The dual-perception mask needs attn_implementation='sdpa' or "
            "'eager'.",
            'The data pipeline must tokenize with the same tokenizer: point '
            "the configs' tokenizer/checkpoint at the hf/ directory.",
        ])
