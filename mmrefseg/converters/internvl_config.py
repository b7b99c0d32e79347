# Copyright (c) mmrefseg contributors.
"""InternVL chat ``config.json`` -> native ``InternVLConfig``.

InternLM2 has no native class; its config becomes a ``LlamaConfig`` (same
computation once ``wqkv`` is unpacked, see :mod:`.internvl_rules`):
``bias`` -> ``attention_bias`` (it covers ``wqkv`` and ``wo``),
``rope_scaling`` (``dynamic``/``linear``) -> ``rope_parameters``. Qwen2,
Qwen3 and Llama text configs pass through.
"""
import dataclasses
import json
import os.path as osp

LM_FAMILIES = {
    'InternLM2ForCausalLM': 'internlm2',
    'Qwen2ForCausalLM': 'qwen2',
    'Qwen3ForCausalLM': 'qwen3',
    'LlamaForCausalLM': 'llama',
}
# Config fields that describe the original runtime, not the model.
_RUNTIME_FIELDS = {
    'architectures', 'dtype', 'transformers_version', 'id2label',
    'label2id', 'problem_type', 'return_dict', 'output_hidden_states',
    'chunk_size_feed_forward', 'is_encoder_decoder', 'rope_parameters',
    'tie_word_embeddings'
}


def read_chat_config(src: str) -> dict:
    """The ``config.json`` of an InternVL chat checkpoint."""
    path = osp.join(src, 'config.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'No config.json in {src}')
    with open(path) as f:
        cfg = json.load(f)
    if 'llm_config' not in cfg or 'vision_config' not in cfg:
        raise ValueError(
            f'{path} is not an InternVL chat config (no llm_config / '
            'vision_config). Is it already in the native layout?')
    return cfg


def llm_family(chat_cfg: dict) -> str:
    """'internlm2', 'qwen2', 'qwen3' or 'llama'."""
    arch = (chat_cfg['llm_config'].get('architectures') or [''])[0]
    if arch in LM_FAMILIES:
        return LM_FAMILIES[arch]
    model_type = chat_cfg['llm_config'].get('model_type', '')
    for family in ('internlm2', 'qwen3', 'qwen2', 'llama'):
        if model_type == family:
            return family
    raise ValueError(f'Unsupported LLM {arch or model_type!r}; supported: '
                     f'{sorted(LM_FAMILIES)}')


def _rope_parameters(llm: dict) -> dict:
    params = dict(rope_type='default',
                  rope_theta=float(llm.get('rope_theta', 10000.0)))
    scaling = llm.get('rope_scaling') or llm.get('rope_parameters')
    if scaling:
        kind = scaling.get('rope_type', scaling.get('type', 'default'))
        params.update({k: v for k, v in scaling.items() if k != 'type'})
        params['rope_type'] = kind
    return params


def build_text_config(chat_cfg: dict):
    """The native text config (InternLM2 -> ``LlamaConfig``)."""
    from transformers import CONFIG_MAPPING
    llm = chat_cfg['llm_config']
    family = llm_family(chat_cfg)
    tie = bool(llm.get('tie_word_embeddings', False))
    if family == 'internlm2':
        heads = llm['num_attention_heads']
        return CONFIG_MAPPING['llama'](
            vocab_size=llm['vocab_size'],
            hidden_size=llm['hidden_size'],
            intermediate_size=llm['intermediate_size'],
            num_hidden_layers=llm['num_hidden_layers'],
            num_attention_heads=heads,
            num_key_value_heads=llm.get('num_key_value_heads', heads),
            head_dim=llm['hidden_size'] // heads,
            hidden_act=llm.get('hidden_act', 'silu'),
            max_position_embeddings=llm.get('max_position_embeddings', 2048),
            initializer_range=llm.get('initializer_range', 0.02),
            rms_norm_eps=llm.get('rms_norm_eps', 1e-6),
            pad_token_id=llm.get('pad_token_id', 0),
            bos_token_id=llm.get('bos_token_id', 1),
            eos_token_id=llm.get('eos_token_id', 2),
            # InternLM2's `bias` covers wqkv and wo; its MLP has none.
            attention_bias=bool(llm.get('bias', True)),
            mlp_bias=False,
            rope_parameters=_rope_parameters(llm),
            tie_word_embeddings=tie)
    # Only the target class's own fields: 4.37-era configs also carry
    # generation settings and other legacy attributes.
    cls = CONFIG_MAPPING[family]
    known = {f.name for f in dataclasses.fields(cls)} - _RUNTIME_FIELDS
    fields = {k: v for k, v in llm.items() if k in known}
    return cls(tie_word_embeddings=tie, rope_parameters=_rope_parameters(llm),
               **fields)


def build_hf_config(chat_cfg: dict, image_token_id: int):
    """``InternVLConfig`` equivalent to an InternVL chat config."""
    from transformers import InternVLConfig
    if chat_cfg.get('ps_version', 'v2') != 'v2':
        raise ValueError(
            f"ps_version={chat_cfg.get('ps_version')!r}: native InternVL "
            "implements the 'v2' pixel shuffle only (InternVL 1.5 and "
            'later).')
    vis = chat_cfg['vision_config']
    image_size = vis.get('image_size', 448)
    force = chat_cfg.get('force_image_size')
    if force and force != image_size:
        raise ValueError(f'force_image_size={force} differs from the ViT '
                         f'image_size={image_size}; not supported.')
    patch = vis.get('patch_size', 14)
    ratio = float(chat_cfg.get('downsample_ratio', 0.5))
    text = build_text_config(chat_cfg)
    vision = dict(
        hidden_size=vis['hidden_size'],
        intermediate_size=vis['intermediate_size'],
        num_hidden_layers=vis['num_hidden_layers'],
        num_attention_heads=vis['num_attention_heads'],
        image_size=image_size,
        patch_size=patch,
        num_channels=vis.get('num_channels', 3),
        attention_bias=bool(vis.get('qkv_bias', True)),
        use_qk_norm=bool(vis.get('qk_normalization', False)),
        # InternVisionConfig's default norm is RMSNorm (6B); 300M says so.
        norm_type=vis.get('norm_type', 'rms_norm'),
        layer_norm_eps=vis.get('layer_norm_eps', 1e-6),
        hidden_act=vis.get('hidden_act', 'gelu'),
        layer_scale_init_value=vis.get('initializer_factor', 0.1),
        # InternViT has no final norm and no mean pooling.
        use_mean_pooling=True,
        use_absolute_position_embeddings=True)
    return InternVLConfig(
        vision_config=vision,
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        image_seq_length=int((image_size // patch)**2 * ratio**2),
        downsample_ratio=ratio,
        projector_hidden_act='gelu',
        vision_feature_layer=chat_cfg.get('select_layer', -1),
        vision_feature_select_strategy='default',
        tie_word_embeddings=text.tie_word_embeddings)
