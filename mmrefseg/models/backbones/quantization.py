# Copyright (c) mmrefseg contributors.
"""4-bit / 8-bit base weights for the frozen LLM (QLoRA-style recipes).

``InternVLBackbone(quantization_config=dict(bits=4))`` stores the Linear
layers of the frozen LLM in bitsandbytes' NF4 (or LLM.int8()) format and
trains LoRA adapters on top. Everything else keeps its dtype: the ViT, the
projector, ``lm_head`` (its rows of the added tokens are trained and it
scores [REJ] against [SEG]), the embeddings (``nn.Embedding``, never
quantized by bitsandbytes) and every trainable module.

Two ways in, one result:

* ``pretrained``: transformers' own loader quantizes each tensor as it is
  read (``from_pretrained(quantization_config=BitsAndBytesConfig(...))``);
* ``config`` (random weights, tests, benchmarks): the model is built in its
  dtype, then :func:`quantize_linear_layers_` swaps the same modules with
  transformers' ``replace_with_bnb_linear`` and quantizes the existing
  weights tensor by tensor with bitsandbytes' parameter classes, the steps
  transformers' loader takes per tensor.
"""
import importlib.util
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn

from .quantization_footprint import (  # noqa: F401 (re-exported)
    estimate_weight_bytes,
    is_quantized_weight,
    quantized_linear_names,
    weight_bytes,
)

#: What to install for quantized base weights.
QUANT_EXTRA = ("pip install 'mmrefseg[quant]' (or pip install -r "
               'requirements/quant.txt)')
#: Modules of ``InternVLForConditionalGeneration`` never quantized: the
#: ViT, the projector and ``lm_head`` (transformers' skip patterns match a
#: name's start at a module boundary, or its end).
SKIP_MODULES = ('model.vision_tower', 'model.multi_modal_projector',
                'lm_head')
#: Keys of the plain-dict ``quantization_config``.
QUANT_KEYS = ('bits', 'quant_type', 'double_quant', 'compute_dtype',
              'skip_modules', 'int8_threshold', 'upcast')
#: What :func:`prepare_for_kbit_training` casts to float32.
UPCAST_CHOICES = ('none', 'all')


def require_bitsandbytes() -> None:
    """Fail early, naming the extra, when bitsandbytes is missing.

    Raises:
        ImportError: bitsandbytes is not installed.
    """
    if importlib.util.find_spec('bitsandbytes') is None:
        raise ImportError(
            'quantization_config needs bitsandbytes, which is not '
            f'installed: {QUANT_EXTRA}.')


def build_bnb_config(cfg: dict):
    """transformers' ``BitsAndBytesConfig`` from a plain dict.

    Args:
        cfg (dict): ``bits`` (4 or 8, required) and optionally
            ``quant_type`` ('nf4' default, or 'fp4'), ``double_quant``
            (True: the 4-bit block scales are quantized too, ~0.37 bit per
            weight less), ``compute_dtype`` ('bfloat16' default; the dtype
            4-bit layers dequantize to for their matmul), ``skip_modules``
            (more module names to keep, added to :data:`SKIP_MODULES`),
            ``int8_threshold`` (LLM.int8()'s outlier threshold, 6.0) and
            ``upcast`` ('none' or 'all', see
            :func:`prepare_for_kbit_training`; not a
            bitsandbytes field).

    Returns:
        BitsAndBytesConfig: with ``llm_int8_skip_modules`` set.

    Raises:
        ValueError: An unknown key, or ``bits`` other than 4 or 8.
    """
    from transformers import BitsAndBytesConfig
    unknown = sorted(set(cfg) - set(QUANT_KEYS))
    if unknown:
        raise ValueError(f'Unknown quantization_config key(s) {unknown}; '
                         f'valid keys: {list(QUANT_KEYS)}.')
    bits = cfg.get('bits')
    if bits not in (4, 8):
        raise ValueError('quantization_config.bits must be 4 (NF4) or 8 '
                         f'(LLM.int8()), got {bits!r}.')
    if cfg.get('upcast', 'none') not in UPCAST_CHOICES:
        raise ValueError(f'quantization_config.upcast must be one of '
                         f"{UPCAST_CHOICES}, got {cfg['upcast']!r}.")
    skip = list(SKIP_MODULES) + list(cfg.get('skip_modules') or [])
    if bits == 8:
        return BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_skip_modules=skip,
            llm_int8_threshold=float(cfg.get('int8_threshold', 6.0)))
    return BitsAndBytesConfig(
        load_in_4bit=True, llm_int8_skip_modules=skip,
        bnb_4bit_quant_type=cfg.get('quant_type', 'nf4'),
        bnb_4bit_use_double_quant=bool(cfg.get('double_quant', True)),
        bnb_4bit_compute_dtype=getattr(
            torch, cfg.get('compute_dtype', 'bfloat16')))


def check_backend(device: Optional[torch.device] = None) -> None:
    """Refuse a device that the installed bitsandbytes cannot run on.

    Args:
        device (torch.device, optional): where the model will run; the
            first accelerator if there is one, else the CPU.

    Raises:
        RuntimeError: bitsandbytes has no backend for the device.
    """
    import bitsandbytes as bnb
    if device is None:
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    supported = set(getattr(bnb, 'supported_torch_devices', ()) or ())
    kind = torch.device(device).type
    if kind not in supported:
        raise RuntimeError(
            f'bitsandbytes {bnb.__version__} has no {kind} backend (it '
            f'supports {sorted(supported) or "none"}); 4/8-bit weights need '
            'a bitsandbytes with a backend for this device (CPU and CUDA: '
            f'0.50.2, the version tested here). {QUANT_EXTRA}.')


def quantize_linear_layers_(model: nn.Module, bnb_config) -> nn.Module:
    """Quantize an already built HF model in place (random weights).

    The modules transformers' loader would quantize (every ``nn.Linear``
    not matched by ``llm_int8_skip_modules``) are swapped for
    bitsandbytes' ``Linear4bit``/``Linear8bitLt`` by transformers'
    ``replace_with_bnb_linear``, then given the existing weights, quantized
    on the device they are on.

    Args:
        model (PreTrainedModel): built, with weights, on CPU or a GPU.
        bnb_config (BitsAndBytesConfig): from :func:`build_bnb_config`.

    Returns:
        PreTrainedModel: the same model, flagged like a quantized load.
    """
    import bitsandbytes as bnb
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    old = {name: m for name, m in model.named_modules()
           if type(m) is nn.Linear}
    replace_with_bnb_linear(
        model, modules_to_not_convert=bnb_config.llm_int8_skip_modules,
        quantization_config=bnb_config)
    eight_bit = bnb_config.load_in_8bit
    for name, linear in old.items():
        new = model.get_submodule(name)
        if new is linear:  # skipped
            continue
        weight = linear.weight.data
        device = weight.device
        if eight_bit:
            # Int8Params quantizes when it moves from the CPU to a device.
            param = bnb.nn.Int8Params(weight.to('cpu'), requires_grad=False,
                                      has_fp16_weights=False).to(device)
        else:
            param = bnb.nn.Params4bit(
                weight, requires_grad=False, **new.weight.__dict__).to(device)
            param.module = new
        new.weight = param
        if linear.bias is not None:
            new.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        if not eight_bit:
            new.quant_state = param.quant_state
    flag = 'is_loaded_in_8bit' if eight_bit else 'is_loaded_in_4bit'
    setattr(model, flag, True)
    model.config.quantization_config = bnb_config
    return model


def prepare_for_kbit_training(model: nn.Module, upcast: str = 'none'
                              ) -> nn.Module:
    """The steps of peft's ``prepare_model_for_kbit_training`` we need.

    peft freezes everything, casts every non-quantized bf16/fp16 parameter
    to float32, and (for reentrant checkpointing) makes the input
    embeddings require grad. Here the backbone freezes per part itself
    (``configure_trainable_parts``), and its checkpointing is non-reentrant
    (``use_reentrant=False``), which back-propagates into LoRA without the
    input-grad hook. The cast is the one choice:

    * ``'none'`` (default): the frozen parts keep the config's
      ``torch_dtype`` (bf16 in the 8B recipes), so activations flow in the
      same dtype as in the unquantized recipe; 4-bit layers compute in
      ``compute_dtype`` and return their input's dtype, and the norms
      already compute their statistics in float32. Casting only the norms
      (peft's stated aim) would turn the LLM's hidden states float32 and
      break a bf16 ``lm_head`` wherever no autocast runs (CPU training
      without hardware bf16, evaluation).
    * ``'all'``: peft's own function: everything non-quantized in float32,
      2 more bytes per such parameter (2.2 GB for InternVL2.5-8B, whose
      ViT, projector, embeddings and lm_head hold 1.10 B parameters).

    Args:
        model (PreTrainedModel): a quantized InternVL.
        upcast (str): one of :data:`UPCAST_CHOICES`.

    Returns:
        PreTrainedModel: the same model.
    """
    if upcast == 'all':
        from peft import prepare_model_for_kbit_training
        return prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=False)
    return model


def backbone_quantization(cfg: Optional[dict], freeze_llm: bool):
    """Check a backbone's ``quantization_config`` and build its
    ``BitsAndBytesConfig`` before any weight is created.

    Args:
        cfg (dict, optional): the plain dict (:func:`build_bnb_config`).
        freeze_llm (bool): the backbone's ``freeze_llm``.

    Returns:
        BitsAndBytesConfig | None: None when ``cfg`` is None or empty.

    Raises:
        ValueError: the LLM is to be trained (quantized weights take no
            gradient: train LoRA on a frozen LLM), or a bad key/value.
        ImportError: bitsandbytes is missing (names the extra).
        RuntimeError: bitsandbytes cannot run on this machine's device.
    """
    if not cfg:
        return None
    if not freeze_llm:
        raise ValueError(
            'quantization_config stores the LLM in 4/8 bits, which cannot be '
            'trained; set freeze_llm=True and train LoRA adapters '
            '(llm_lora) on top.')
    bnb_config = build_bnb_config(cfg)
    require_bitsandbytes()
    check_backend()
    return bnb_config


def quantize_for_training(model: nn.Module, bnb_config, cfg: dict
                          ) -> nn.Module:
    """Quantize a randomly initialised model (a ``from_pretrained`` load is
    already quantized), then :func:`prepare_for_kbit_training`.

    Args:
        model (PreTrainedModel): the backbone's HF model.
        bnb_config (BitsAndBytesConfig): from :func:`backbone_quantization`.
        cfg (dict): the plain dict (for ``upcast``).

    Returns:
        PreTrainedModel: the same model.
    """
    import bitsandbytes as bnb
    loaded = getattr(model, 'is_loaded_in_4bit', False) or getattr(
        model, 'is_loaded_in_8bit', False)
    if not loaded:
        quantize_linear_layers_(model, bnb_config)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.register_load_state_dict_pre_hook(_load_4bit_state)
            keep_generic_cpu_kernel(module)
    return prepare_for_kbit_training(model, cfg.get('upcast', 'none'))


def keep_generic_cpu_kernel(module: nn.Module) -> None:
    """Keep a trainable model's 4-bit layer off bitsandbytes' AVX512-BF16
    CPU kernel.

    On CPUs with AVX512-BF16 (and AMX), bitsandbytes repacks a ``Linear4bit``
    weight in place on its first no-grad forward (a validation pass) and
    stores its block scales in bfloat16; saving unpacks it again. Measured
    on such a CPU: after one validation the frozen 4-bit base weights of the
    tiny QLoRA recipe were no longer what training started from, and layers
    whose ``in_features`` is not a multiple of the 64-wide block failed
    outright (``RuntimeError: shape '[32, 0]' is invalid``). A model that
    alternates training and validation keeps the generic kernel, which
    reads the weights as quantized.

    Args:
        module (bnb.nn.Linear4bit): a quantized layer.
    """
    if hasattr(module, 'support_avx512bf16_for_cpu'):
        module.support_avx512bf16_for_cpu = False


def _load_4bit_state(module: nn.Module, state_dict: dict, prefix: str,
                     *args) -> None:
    """Let ``load_state_dict`` (MMEngine's resume, ``load_from``) restore a
    ``Linear4bit``: its state dict holds the packed weight plus its
    quantization state as ``weight.absmax``, ``weight.quant_map``, ...
    keys, which ``nn.Module`` would report as unexpected and drop. They
    are consumed here and the weight rebuilt from them, as transformers'
    loader does for a pre-quantized checkpoint.
    """
    import bitsandbytes as bnb
    key = prefix + 'weight'
    stats = {k[len(key) + 1:]: state_dict.pop(k) for k in list(state_dict)
             if k.startswith(key + '.')}
    if stats and key in state_dict:
        module.weight = bnb.nn.Params4bit.from_prequantized(
            data=state_dict[key], quantized_stats=stats,
            requires_grad=False, device=module.weight.device, module=module)


@contextmanager
def quantized_weights_set_aside(model: nn.Module) -> Iterator[None]:
    """Unregister the 4/8-bit weights of ``model`` for the block, then put
    them back (for code that walks every parameter expecting floats, such
    as MMEngine's ``BaseModule.init_weights``, which logs their means).

    Args:
        model (nn.Module): any module.

    Yields:
        None
    """
    aside = []
    for module in model.modules():
        weight = module._parameters.get('weight')
        if is_quantized_weight(weight):
            aside.append((module, weight))
            del module._parameters['weight']
    try:
        yield
    finally:
        for module, weight in aside:
            module._parameters['weight'] = weight


def check_quantized_strategy(cfg) -> None:
    """Refuse a quantized backbone under FSDP, before anything is built.

    FSDP flattens the parameters of a unit into one tensor of one dtype and
    shards, gathers and frees it as raw storage. A bitsandbytes weight is
    packed uint8/int8 data whose scales live beside it (``quant_state``,
    ``SCB``), which FSDP would neither shard nor gather, and the FSDP
    configs keep every parameter float32 to get one dtype per unit. Use
    the quantized config with DDP: every GPU then holds the 4-bit replica
    (5.8 GB for InternVL2.5-8B) instead of a 16 GB bf16 one.

    Args:
        cfg (Config | dict): the full config.

    Raises:
        ValueError: ``quantization_config`` with an FSDP strategy.
    """
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    strategy = cfg.get('strategy') or {}
    if not backbone.get('quantization_config'):
        return
    if cfg.get('runner_type') == 'FlexibleRunner' and \
            strategy.get('type') == 'FSDPStrategy':
        raise ValueError(
            'model.backbone.quantization_config cannot be combined with '
            'FSDPStrategy: FSDP shards flat parameters of one dtype and '
            "does not carry bitsandbytes' quantization state (the block "
            'scales kept beside each 4/8-bit weight). Train the quantized '
            'config with DDP (tools/dist_train.sh CONFIG N, no runner_type/'
            'strategy), or drop quantization_config to use FSDP.')
