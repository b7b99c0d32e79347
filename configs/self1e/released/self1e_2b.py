# Released SELF1E-2B weights (InternVL3-2B based), same protocol as
# self1e_8b.py.
#   python tools/model_converters/self1e_to_mmrefseg.py \
#       checkpoints/SELF1E-2B checkpoints/SELF1E-2B-mmrefseg \
#       --tokenizer-from checkpoints/InternVL3-2B
#   python tools/test.py configs/self1e/released/self1e_2b.py \
#       checkpoints/SELF1E-2B-mmrefseg/mmrefseg.pth
_base_ = ['../internvl3_2b_refcoco.py']
checkpoint = 'checkpoints/SELF1E-2B-mmrefseg/hf'
model = dict(
    backbone=dict(
        pretrained=checkpoint,  # its tokenizer too
        # The converter's overrides (see self1e_8b.py).
        seg_state_offset=-1, image_state_offset=0,
        init_new_token_rows=False,
        config=dict(text_config=dict(vocab_size=151676)),
        llm_lora=None, vit_lora=None, freeze_projector=True,
        train_new_token_rows=False, gradient_checkpointing=False))
