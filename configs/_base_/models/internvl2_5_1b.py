# InternVL2.5-1B (InternViT-300M + Qwen2.5-0.5B-Instruct), native layout.
_base_ = ['./internvl2_5_4b.py']
checkpoint = 'checkpoints/InternVL2_5-1B-hf'
backbone_arch = dict(
    text_config=dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2))
backbone = dict(pretrained=checkpoint, config=backbone_arch)
