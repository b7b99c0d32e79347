# InternVL2.5-4B (InternViT-300M + Qwen2.5-3B-Instruct), native layout.
_base_ = ['./internvl2_5_8b.py']
checkpoint = 'checkpoints/InternVL2_5-4B-hf'
backbone_arch = dict(
    _delete_=True,
    vision_config={{_base_.vision_arch}},
    text_config=dict(
        model_type='qwen2', vocab_size=151674, hidden_size=2048,
        intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=True),
    image_token_id=151667, image_seq_length=256, downsample_ratio=0.5,
    projector_hidden_act='gelu', vision_feature_layer=-1,
    vision_feature_select_strategy='default', tie_word_embeddings=True)
# Qwen2.5 has no BOS.
backbone = dict(pretrained=checkpoint, config=backbone_arch,
                processor=dict(bos=False))
