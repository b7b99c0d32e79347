# InternVL2.5-2B (InternViT-300M + internlm2_5-1_8b-chat as Llama), native.
_base_ = ['./internvl2_5_8b.py']
checkpoint = 'checkpoints/InternVL2_5-2B-hf'
backbone_arch = dict(
    text_config=dict(
        vocab_size=92553, hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8))
backbone = dict(pretrained=checkpoint, config=backbone_arch)
