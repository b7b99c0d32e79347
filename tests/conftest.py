# Copyright (c) mmrefseg contributors.
"""Shared fixtures: a tiny synthetic REFER dataset and tiny model configs."""
import pytest

TINY_TOKENIZER = dict(type='tiny_bpe', vocab_size=1024)


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """A small synthetic dataset in the REFER layout, generated once."""
    from mmrefseg.datasets.synthetic import generate_synthetic_refer
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_refer(str(root), num_train_images=24,
                             num_val_images=8, num_test_images=8, seed=0)
    return str(root)


@pytest.fixture
def tiny_backbone_cfg() -> dict:
    """A tiny random InternVL backbone config (builds in milliseconds)."""
    from mmrefseg.testing import tiny_internvl_config
    return dict(
        type='InternVLBackbone',
        config=tiny_internvl_config(vit_width=32, vit_layers=2, llm_width=64,
                                    llm_layers=2, image_size=56,
                                    vocab_size=1024),
        tokenizer=TINY_TOKENIZER,
        freeze_vit=False, freeze_projector=False, freeze_llm=False)


@pytest.fixture(scope='session', autouse=True)
def _register_modules():
    from mmrefseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
