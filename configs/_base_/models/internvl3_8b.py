# InternVL3-8B (InternViT-300M-448px-V2_5 + Qwen2.5-7B) in the native
# transformers layout ("-hf"). The architecture is spelled out so the model
# builds on the meta device without weights; weights come from `checkpoint`
# (a published OpenGVLab/InternVL3-8B-hf directory, or the output of
# tools/model_converters/internvl_chat_to_hf.py). Values are those of the
# public config.json files; from_pretrained uses the checkpoint's own config.
checkpoint = 'checkpoints/InternVL3-8B-hf'
vision_arch = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
    intermediate_size=4096, image_size=448, patch_size=14,
    norm_type='layer_norm', layer_norm_eps=1e-6, layer_scale_init_value=0.1,
    attention_bias=True, use_qk_norm=False, use_mean_pooling=True)
backbone_arch = dict(
    vision_config=vision_arch,
    text_config=dict(
        model_type='qwen2', vocab_size=151674, hidden_size=3584,
        intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=False),
    image_token_id=151667, image_seq_length=256, downsample_ratio=0.5,
    projector_hidden_act='gelu', vision_feature_layer=-1,
    vision_feature_select_strategy='default', tie_word_embeddings=False)
# The backbone entry a size config passes to its recipe:
#   model = dict(backbone={{_base_.backbone}})
# The tokenizer is the checkpoint's; Qwen2.5 has no BOS.
backbone = dict(
    type='InternVLBackbone', pretrained=checkpoint, config=backbone_arch,
    processor=dict(bos=False))
