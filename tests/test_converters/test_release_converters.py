# Copyright (c) mmrefseg contributors.
"""Released MLLMSeg / SELF1E -> RefSegmentor: strict key coverage.

State dicts use the released key names and shapes (MLLMSeg's decoder with
d = 1024 and InternVL2.5-1B's H_llm = 896; SELF1E's head with
InternVL3-2B's C = 1536); end-to-end runs use the tiny chat checkpoints.
"""
import json
import os.path as osp

import pytest
import torch
from chat_checkpoints import (
    make_internlm2_chat,
    make_qwen2_chat,
    save_checkpoint,
)
from mmengine.runner import load_checkpoint

from mmrefseg.converters import KeyCoverageError
from mmrefseg.converters.mllmseg import mllmseg_spec
from mmrefseg.converters.release import convert_release, map_method_state
from mmrefseg.converters.self1e import self1e_spec
from mmrefseg.models.heads import LightMaskDecoderHead, Self1EHead
from mmrefseg.models.necks import DSFFNeck

QUIET = dict(log=lambda msg: None)


def mllmseg_decoder_state(llm=896, d=1024, ffn=1024, patch=14,
                          groups=4) -> dict:
    """``res_decoder.*`` with the released names and shapes."""
    sd = {}

    def put(name, *shape):
        sd['res_decoder.' + name] = torch.randn(*shape) * 0.02

    for lin, fan_in in (('img_llm_down', llm), ('text_down', llm),
                        ('text_out_adapter', 3 * d)):
        put(lin + '.weight', d, fan_in)
        put(lin + '.bias', d)
    for ca in ('ca_layer_v2l', 'ca_layer_vl'):
        p = f'{ca}.decoder.layers.0.'
        for att in ('self_attn', 'multihead_attn'):
            put(p + att + '.in_proj_weight', 3 * d, d)
            put(p + att + '.in_proj_bias', 3 * d)
            put(p + att + '.out_proj.weight', d, d)
            put(p + att + '.out_proj.bias', d)
        put(p + 'linear1.weight', ffn, d)
        put(p + 'linear1.bias', ffn)
        put(p + 'linear2.weight', d, ffn)
        put(p + 'linear2.bias', d)
        for n in ('norm1', 'norm2', 'norm3'):
            put(p + n + '.weight', d)
            put(p + n + '.bias', d)
        put(ca + '.decoder.norm.weight', d)
        put(ca + '.decoder.norm.bias', d)
    put('upsample_adapter_l.offset.weight', 2 * groups * 4, d, 1, 1)
    put('upsample_adapter_l.offset.bias', 2 * groups * 4)
    put('upsample_adapter_l.init_pos', 1, 2 * groups * 4, 1, 1)
    put('conv1.0.weight', patch * patch, d, 3, 3)
    put('conv1.0.bias', patch * patch)
    for n in ('weight', 'bias', 'running_mean'):
        put('conv1.1.' + n, patch * patch)
    sd['res_decoder.conv1.1.running_var'] = torch.rand(patch * patch) + 0.5
    sd['res_decoder.conv1.1.num_batches_tracked'] = torch.tensor(50000)
    put('conv2.weight', 1, 1, 5, 5)
    put('conv2.bias', 1)
    return sd


def self1e_state(c=1536) -> dict:
    sd = {}
    for name, out in (('combine_decode_proj', c),
                      ('combine_decode_proj_all', 4 * c),
                      ('combine_decode_proj_ori', 4 * c)):
        sd[f'{name}.0.weight'] = torch.randn(c, c) * 0.02
        sd[f'{name}.0.bias'] = torch.randn(c) * 0.02
        sd[f'{name}.2.weight'] = torch.randn(out, c) * 0.02
        sd[f'{name}.2.bias'] = torch.randn(out) * 0.02
    return sd


VIT_1024 = dict(vision_config=dict(hidden_size=1024))


def test_mllmseg_released_shapes_load_strictly():
    state = mllmseg_decoder_state()
    mapped = map_method_state(mllmseg_spec(), state, VIT_1024)
    neck = DSFFNeck(vit_channels=1024, llm_channels=896)
    head = LightMaskDecoderHead(llm_channels=896, loss_mask=[])
    for module, prefix in ((neck, 'neck.'), (head, 'decode_head.')):
        part = {k[len(prefix):]: v for k, v in mapped.items()
                if k.startswith(prefix)}
        module.load_state_dict(part, strict=True)
    bn = head.conv1[1]
    assert torch.equal(bn.running_var,
                       state['res_decoder.conv1.1.running_var'])
    assert int(bn.num_batches_tracked) == 50000
    assert torch.equal(neck.upsample_adapter_l.init_pos,
                       state['res_decoder.upsample_adapter_l.init_pos'])


@pytest.mark.parametrize('change', ['extra', 'missing', 'shape'])
def test_mllmseg_bad_keys_are_named(change):
    state = mllmseg_decoder_state(llm=64, d=64, ffn=64, patch=2)
    if change == 'extra':
        state['res_decoder.ca_layer_vl.decoder.layers.0.surprise'] = \
            torch.zeros(1)
        name = 'res_decoder.ca_layer_vl.decoder.layers.0.surprise'
    elif change == 'missing':
        del state['res_decoder.conv1.1.running_mean']
        name = 'decode_head.conv1.1.running_mean'
    else:
        state['res_decoder.conv2.weight'] = torch.zeros(1, 1, 3, 3)
        name = 'decode_head.conv2.weight'
    with pytest.raises(KeyCoverageError, match=name.replace('.', r'\.')):
        map_method_state(mllmseg_spec(num_heads=4), state,
                         dict(vision_config=dict(hidden_size=64)))


def test_self1e_released_shapes_load_strictly():
    state = self1e_state()
    mapped = map_method_state(self1e_spec(), state, {})
    head = Self1EHead(llm_channels=1536, loss_mask={})
    head.load_state_dict({k[len('decode_head.'):]: v
                          for k, v in mapped.items()}, strict=True)
    assert torch.equal(head.combine_decode_proj_all[2].weight,
                       state['combine_decode_proj_all.2.weight'])
    state['combine_decode_proj_new.0.weight'] = torch.zeros(1)
    with pytest.raises(KeyCoverageError,
                       match=r'combine_decode_proj_new\.0\.weight'):
        map_method_state(self1e_spec(), state, {})
    del state['combine_decode_proj_new.0.weight']
    del state['combine_decode_proj.2.bias']
    with pytest.raises(KeyCoverageError,
                       match=r'decode_head\.combine_decode_proj\.2\.bias'):
        map_method_state(self1e_spec(), state, {})


def _segmentor_cfg(hf_dir, options, neck=True):
    backbone = dict(type='InternVLBackbone', pretrained=hf_dir,
                    tokenizer=hf_dir)
    for key, value in options.items():
        if key.startswith('model.backbone.'):
            backbone[key[len('model.backbone.'):]] = value
    cfg = dict(type='RefSegmentor', backbone=backbone,
               data_preprocessor=dict(type='RefSegDataPreProcessor'))
    for part in ('neck', 'decode_head'):
        sub = {k.split('.', 2)[2]: v for k, v in options.items()
               if k.startswith(f'model.{part}.')}
        cfg[part] = sub
    if neck:
        cfg['neck'].update(type='DSFFNeck', dropout=0.0)
        cfg['decode_head'].update(type='LightMaskDecoderHead', dropout=0.0)
    else:
        cfg.pop('neck')
        cfg['decode_head'].update(type='Self1EHead')
    return cfg


def test_mllmseg_end_to_end(tmp_path):
    from mmrefseg.registry import MODELS
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir()
    decoder = mllmseg_decoder_state(llm=64, d=32, ffn=48, patch=14)
    state, ids = make_internlm2_chat(str(src), extra_state=decoder)
    res = convert_release(mllmseg_spec(num_heads=4), str(src), str(out),
                          **QUIET)
    meta = res['meta']
    assert meta['token_ids']['[SEG]'] == ids['[SEG]']
    assert meta['token_ids']['[REJ]'] == ids['[REJ]']
    opts = meta['cfg_options']
    assert opts['model.backbone.seg_state_offset'] == -1
    assert opts['model.backbone.image_state_offset'] == -1
    assert 'model.backbone.init_new_token_rows=False' in res['cfg_options']
    assert (out / 'cfg_options.txt').read_text().strip() == \
        res['cfg_options']
    ckpt = torch.load(res['checkpoint'], weights_only=True)
    assert all(k.startswith(('neck.', 'decode_head.'))
               for k in ckpt['state_dict'])

    model = MODELS.build(_segmentor_cfg(res['hf_dir'], opts))
    load_checkpoint(model, res['checkpoint'], strict=False)
    assert torch.equal(model.decode_head.conv1[1].running_mean,
                       decoder['res_decoder.conv1.1.running_mean'])
    assert torch.equal(
        model.neck.ca_layer_v2l.decoder.layers[0].self_attn.in_proj_weight,
        decoder['res_decoder.ca_layer_v2l.decoder.layers.0.self_attn.'
                'in_proj_weight'])
    # The released [SEG]/[REJ] rows survive the backbone's token handling.
    emb = model.backbone.hf.get_input_embeddings()
    seg = ids['[SEG]']
    src_emb = state['language_model.model.tok_embeddings.weight']
    assert torch.equal(emb(torch.tensor([seg]))[0], src_emb[seg])
    head = model.backbone.hf.get_output_embeddings().weight
    assert torch.equal(head[ids['[REJ]']],
                       state['language_model.output.weight'][ids['[REJ]']])


def test_self1e_end_to_end(tmp_path):
    from mmrefseg.registry import MODELS
    base, src, out = tmp_path / 'base', tmp_path / 'src', tmp_path / 'out'
    base.mkdir()
    src.mkdir()
    # The base InternVL3 tokenizer: no [SEG]/[SEGT] yet.
    make_qwen2_chat(str(base), extra_tokens=())
    head_state = self1e_state(c=64)
    _, ids = make_qwen2_chat(str(src), extra_tokens=('[SEG]', '[SEGT]'),
                             extra_state=head_state, save_tokenizer=False)
    cfg = json.loads((src / 'config.json').read_text())
    cfg['architectures'] = ['InternVL3SELF1E']
    (src / 'config.json').write_text(json.dumps(cfg))
    res = convert_release(self1e_spec(), str(src), str(out),
                          tokenizer_src=str(base), **QUIET)
    rows = res['meta']['vocab_size']
    assert res['meta']['token_ids']['[SEG]'] == ids['[SEG]'] == rows - 2
    assert res['meta']['token_ids']['[SEGT]'] == rows - 1
    opts = res['meta']['cfg_options']
    assert opts['model.backbone.image_state_offset'] == 0
    model = MODELS.build(_segmentor_cfg(res['hf_dir'], opts, neck=False))
    load_checkpoint(model, res['checkpoint'], strict=False)
    assert torch.equal(model.decode_head.combine_decode_proj[0].weight,
                       head_state['combine_decode_proj.0.weight'])
    assert model.backbone.seg_token_id == ids['[SEG]']


def test_release_without_method_keys_is_refused(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    make_internlm2_chat(str(src))
    with pytest.raises(KeyError, match='no MLLMSeg keys'):
        convert_release(mllmseg_spec(), str(src), str(tmp_path / 'o'),
                        **QUIET)
    assert not osp.exists(tmp_path / 'o' / 'hf' / 'model.safetensors')


def test_unmerged_lora_is_explained(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    state, _ = make_internlm2_chat(
        str(src), extra_state=mllmseg_decoder_state(64, 32, 48, 14))
    w = state.pop('language_model.model.layers.0.feed_forward.w1.weight')
    state['language_model.base_model.model.model.layers.0.feed_forward.w1.'
          'base_layer.weight'] = w
    cfg = json.loads((src / 'config.json').read_text())
    save_checkpoint(str(src), state, cfg)
    with pytest.raises(KeyCoverageError, match='unmerged LoRA'):
        convert_release(mllmseg_spec(num_heads=4), str(src),
                        str(tmp_path / 'o'), **QUIET)


def test_self1e_wrong_base_tokenizer_is_refused(tmp_path):
    base, src = tmp_path / 'base', tmp_path / 'src'
    base.mkdir()
    src.mkdir()
    make_qwen2_chat(str(base), extra_tokens=('<other>', ))
    make_qwen2_chat(str(src), extra_tokens=('[SEG]', '[SEGT]'),
                    extra_state=self1e_state(c=64), save_tokenizer=False)
    with pytest.raises(ValueError, match='rows'):
        convert_release(self1e_spec(), str(src), str(tmp_path / 'out'),
                        tokenizer_src=str(base), **QUIET)
