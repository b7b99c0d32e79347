# Copyright (c) mmrefseg contributors.
"""Config factory of tiny random InternVL models for tests and benchmarks."""


def tiny_internvl_config(vit_width: int = 64,
                         vit_layers: int = 2,
                         llm_width: int = 64,
                         llm_layers: int = 2,
                         image_size: int = 224,
                         patch_size: int = 14,
                         vocab_size: int = 512,
                         image_token_id: int = 5,
                         text_model_type: str = 'qwen2') -> dict:
    """``InternVLConfig`` fields of a tiny random InternVL (tests, CPU runs).

    The result goes into ``InternVLBackbone(config=...)``; it builds in
    milliseconds with random weights.

    Args:
        vit_width (int): ViT hidden size; one attention head per 32 channels.
        vit_layers (int): ViT layers.
        llm_width (int): LLM hidden size; one head per 32 channels, half as
            many key/value heads.
        llm_layers (int): LLM layers.
        image_size (int): ViT input side in pixels.
        patch_size (int): ViT patch side in pixels.
        vocab_size (int): LLM vocabulary rows (at least the tokenizer's).
        image_token_id (int): id of ``<IMG_CONTEXT>``; must match the
            tokenizer (5 for ``tiny_bpe``).
        text_model_type (str): transformers ``model_type`` of the LLM.

    Returns:
        dict: ``InternVLConfig`` keyword arguments, with InternVL's 0.5
        pixel-shuffle downsampling, so ``(image_size // patch_size // 2)**2``
        image tokens per tile.
    """
    heads_v = max(1, vit_width // 32)
    heads_t = max(1, llm_width // 32)
    return dict(
        vision_config=dict(
            hidden_size=vit_width, num_hidden_layers=vit_layers,
            num_attention_heads=heads_v, intermediate_size=vit_width * 4,
            image_size=image_size, patch_size=patch_size,
            norm_type='layer_norm', layer_scale_init_value=1.0),
        text_config=dict(
            model_type=text_model_type, vocab_size=vocab_size,
            hidden_size=llm_width, intermediate_size=llm_width * 4,
            num_hidden_layers=llm_layers, num_attention_heads=heads_t,
            num_key_value_heads=max(1, heads_t // 2),
            max_position_embeddings=2048, tie_word_embeddings=False),
        image_token_id=image_token_id,
        image_seq_length=int((image_size // patch_size) * 0.5)**2,
        downsample_ratio=0.5,
        tie_word_embeddings=False)
