# An 8B-shaped proxy of InternVL2.5-8B for speed measurements on a CPU
# (benchmarks/multi_expression_speed.py --model proxy8b): every WIDTH is the
# real model's, the DEPTH is cut, the weights are random and nothing is
# downloaded. Not for training or accuracy.
#
# Widths, from configs/_base_/models/internvl2_5_8b.py and the MLLMSeg
# release notes of InternVL2.5-8B:
#   InternViT-300M-448px-V2_5: hidden 1024, 16 heads, MLP 4096, 448 px tile,
#     patch 14 -> 32 x 32 patches + CLS; pixel shuffle 0.5 -> 16 x 16 = 256
#     image tokens of 4096 channels; projector LN -> 4096 -> GELU -> 4096.
#   internlm2_5-7b-chat (as Llama): hidden 4096, intermediate 14336,
#     32 query heads, 8 key/value heads, RoPE theta 1e6.
# Depth: the real 24 ViT : 32 LLM layers cut to 3 : 4 (the same 3:4 ratio,
# so ViT and LLM keep their share of the cost); full_vit_layers /
# full_llm_layers restore it on a GPU (--full-depth).
# Vocabulary: the in-memory tiny_bpe tokenizer (1024 ids) with the LLM's
# embedding and lm_head rows cut to 1024 (the real 92553 rows only cost
# memory: the heads read the LM head at a few positions). Prompts are
# therefore tokenised a little differently from InternLM2's tokenizer; the
# 256 image tokens dominate the prefix either way.
image_size = 448
patch_size = 14
full_vit_layers = 24
full_llm_layers = 32
vit_layers = 3
llm_layers = 4
vision_arch = dict(
    hidden_size=1024, num_hidden_layers=vit_layers, num_attention_heads=16,
    intermediate_size=4096, image_size=image_size, patch_size=patch_size,
    norm_type='layer_norm', layer_norm_eps=1e-6, layer_scale_init_value=0.1,
    use_qk_norm=False, use_mean_pooling=True)
backbone_arch = dict(
    vision_config=vision_arch,
    text_config=dict(
        model_type='llama', vocab_size=1024, hidden_size=4096,
        intermediate_size=14336, num_hidden_layers=llm_layers,
        num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5,
        rope_theta=1000000.0, max_position_embeddings=4096,
        tie_word_embeddings=False),
    # tiny_bpe's <IMG_CONTEXT>; 256 image tokens per 448 px tile.
    image_token_id=5, image_seq_length=(image_size // patch_size // 2)**2,
    downsample_ratio=0.5, projector_hidden_act='gelu',
    vision_feature_layer=-1, vision_feature_select_strategy='default',
    tie_word_embeddings=False)
backbone = dict(
    type='InternVLBackbone', config=backbone_arch,
    tokenizer=dict(type='tiny_bpe', vocab_size=1024),
    # InternLM2 (as Llama) starts with <s>.
    processor=dict(bos=True),
    attn_implementation='sdpa',
    freeze_vit=True, freeze_projector=True, freeze_llm=True)
# MLLMSeg's DSFF neck and light mask decoder at their released width
# (d = 1024, 8 heads, FFN 1024); they do not depend on the LLM depth.
mllmseg_decoder = dict(embed_dims=1024, num_heads=8, ffn_channels=1024)
