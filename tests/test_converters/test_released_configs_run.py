# Copyright (c) mmrefseg contributors.
"""Converted miniatures through the released configs, run by tools/test.py.

The released configs are written for the real checkpoints; here only the
sizes and paths are swapped for a tiny converted checkpoint and the
synthetic data, and the config is run by ``tools/test.py``'s runner. For
MLLMSeg GRES (paper protocol) that is per-image samples, the GT [REJ]
answer, argmax decision + reeval and the MLLMSeg GRES metric, with the
config's bf16 backbone and float32 decoder.
"""
import json
import os.path as osp

from chat_checkpoints import VIT, make_internlm2_chat, make_qwen2_chat
from repo_scripts import REPO, load_script
from test_release_converters import QUIET, mllmseg_decoder_state, self1e_state

from mmrefseg.converters.mllmseg import mllmseg_spec
from mmrefseg.converters.release import convert_release
from mmrefseg.converters.self1e import self1e_spec

CONFIG = 'configs/mllmseg/released/mllmseg_internvl2_5_8b_gres_paper_eval.py'


def _test_tool():
    return load_script('tools/test.py')


def _run(config, res, tmp_path, synthetic_root, **dataset):
    """tools/test.py on ``config`` with the miniature's paths and sizes."""
    tool = _test_tool()
    args = tool.parse_args([
        osp.join(REPO, config), res['checkpoint'], '--work-dir',
        str(tmp_path / 'work')
    ])
    cfg = tool.build_cfg(args)
    # Sizes and paths of the miniature (the real ones are in the config).
    cfg.merge_from_dict(res['meta']['cfg_options'])
    hf = res['hf_dir']
    tile = VIT['image_size']
    loader = cfg.test_dataloader
    loader.update(num_workers=0, persistent_workers=False)
    loader.dataset.update(
        data_root=synthetic_root,
        data_prefix=dict(img_path='images/synthetic'), **dataset)
    # The conversation comes from the converted checkpoint's tokenizer and
    # the model's own image-token count; only the tile size is the
    # pipeline's.
    assert cfg.model.backbone.pretrained == hf
    for transform in loader.dataset.pipeline:
        assert transform['type'] != 'BuildConversation'
        if transform['type'] == 'InternVLImageTransform':
            transform.update(image_size=tile)
    runner = tool.build_runner(cfg)
    return runner, runner.test()


def test_released_mllmseg_gres_paper_eval_config_runs(tmp_path,
                                                      synthetic_root):
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir()
    make_internlm2_chat(
        str(src),
        extra_state=mllmseg_decoder_state(llm=64, d=32, ffn=48, patch=14))
    res = convert_release(mllmseg_spec(num_heads=4), str(src), str(out),
                          **QUIET)
    runner, metrics = _run(CONFIG, res, tmp_path, synthetic_root, indices=2)

    with open(osp.join(synthetic_root, 'grefcoco', 'grefs(unc).json')) as f:
        refs = [r for r in json.load(f) if r['split'] == 'val']
    images = list(dict.fromkeys(r['image_id'] for r in refs))[:2]
    num = sum(len(r['sentences']) for r in refs if r['image_id'] in images)
    assert metrics['refseg/num_expressions'] == num
    for key in ('gres_gIoU', 'gres_cIoU', 'N-acc', 'T-acc', 'cIoU'):
        assert f'refseg/{key}' in metrics
    model = runner.model
    assert model.test_cfg['rej_decision'] == 'argmax_teacher_forced'
    assert model.backbone.image_state_offset == -1


def test_released_self1e_config_runs(tmp_path, synthetic_root):
    base, src, out = tmp_path / 'base', tmp_path / 'src', tmp_path / 'out'
    base.mkdir()
    src.mkdir()
    make_qwen2_chat(str(base), extra_tokens=())
    make_qwen2_chat(str(src), extra_tokens=('[SEG]', '[SEGT]'),
                    extra_state=self1e_state(c=64), save_tokenizer=False)
    res = convert_release(self1e_spec(), str(src), str(out),
                          tokenizer_src=str(base), **QUIET)
    runner, metrics = _run('configs/self1e/released/self1e_2b.py', res,
                           tmp_path, synthetic_root,
                           dataset_name='synthrefcoco', indices=5)
    assert metrics['refseg/num_expressions'] == 5
    assert 'refseg/cIoU' in metrics
    assert runner.model.backbone.image_state_offset == 0
