# A tiny random InternVL (ViT 4 x 128, Qwen2 LLM 4 x 256, 224 px tiles, the
# in-memory tiny_bpe tokenizer), trained from scratch on CPU: the model the
# three *_tiny_synth.py configs share. Nothing is frozen. A method config
# adds its tokens, prompt, offsets, neck and heads.
image_size = 224
patch_size = 14
model = dict(
    type='RefSegmentor',
    data_preprocessor=dict(type='RefSegDataPreProcessor'),
    backbone=dict(
        type='InternVLBackbone',
        config=dict(
            vision_config=dict(
                hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                intermediate_size=512, image_size=image_size,
                patch_size=patch_size, norm_type='layer_norm',
                layer_scale_init_value=1.0),
            text_config=dict(
                model_type='qwen2', vocab_size=1024, hidden_size=256,
                intermediate_size=1024, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=1024, tie_word_embeddings=False),
            image_token_id=5,
            # 64 image tokens per tile after the 0.5 pixel shuffle.
            image_seq_length=(image_size // patch_size // 2)**2,
            downsample_ratio=0.5,
            tie_word_embeddings=False),
        tokenizer=dict(type='tiny_bpe', vocab_size=1024),
        freeze_vit=False, freeze_projector=False, freeze_llm=False),
    lm_loss_weight=1.0)
