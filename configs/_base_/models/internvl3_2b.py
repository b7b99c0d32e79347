# InternVL3-2B (InternViT-300M-448px-V2_5 + Qwen2.5-1.5B), native layout.
_base_ = ['./internvl3_8b.py']
checkpoint = 'checkpoints/InternVL3-2B-hf'
backbone_arch = dict(
    text_config=dict(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2))
backbone = dict(pretrained=checkpoint, config=backbone_arch)
