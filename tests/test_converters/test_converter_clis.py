# Copyright (c) mmrefseg contributors.
"""The thin CLIs in tools/model_converters (run in-process)."""
import json
import os.path as osp

import pytest
from chat_checkpoints import make_internlm2_chat, make_qwen2_chat
from repo_scripts import load_script
from test_release_converters import mllmseg_decoder_state, self1e_state


def _cli(name: str):
    return load_script(f'tools/model_converters/{name}.py')


def test_internvl_chat_to_hf_cli(tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    make_internlm2_chat(str(src))
    _cli('internvl_chat_to_hf').main(
        [str(src), str(tmp_path / 'dst'), '--dtype', 'bfloat16',
         '--max-shard-size', '300KB'])
    out = capsys.readouterr().out
    assert '[2/2] model-00002-of-00002.safetensors' in out
    cfg = json.loads((tmp_path / 'dst' / 'config.json').read_text())
    assert cfg['dtype'] == 'bfloat16'
    _cli('internvl_chat_to_hf').main(['--print-mapping'])
    assert 'wqkv' in capsys.readouterr().out


def test_mllmseg_cli_prints_overrides(tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    make_internlm2_chat(str(src),
                        extra_state=mllmseg_decoder_state(64, 32, 48, 14))
    _cli('mllmseg_to_mmrefseg').main(
        [str(src), str(tmp_path / 'out'), '--num-heads', '4'])
    out = capsys.readouterr().out
    assert 'model.backbone.image_state_offset=-1' in out
    assert 'model.neck.num_heads=4' in out
    assert osp.isfile(tmp_path / 'out' / 'mmrefseg.pth')


def test_self1e_cli_needs_its_tokenizer(tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    make_qwen2_chat(str(src), extra_tokens=('[SEG]', '[SEGT]'),
                    extra_state=self1e_state(64), save_tokenizer=False)
    with pytest.raises(FileNotFoundError, match='--tokenizer-from'):
        _cli('self1e_to_mmrefseg').main([str(src), str(tmp_path / 'out')])
