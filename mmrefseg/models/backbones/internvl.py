# Copyright (c) mmrefseg contributors.
"""InternVL as an MMEngine backbone, on transformers' native classes."""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule

from mmrefseg.registry import MODELS
from mmrefseg.structures import MLLMOutputs
from mmrefseg.utils.tokenizer import (
    IMG_CONTEXT_TOKEN,
    REJ_TOKEN,
    SEG_TOKEN,
    TokenizerCfg,
    build_tokenizer,
    token_id,
)
from ..processors import InternVLProcessor
from ..utils.dual_perception_mask import dual_perception_mask_for
from .compiled_blocks import compile_repeated_blocks, use_compiled
from .hf_model import add_token_rows, build_hf_model, init_vit_pos_embed_sincos
from .masked_prefill import generate_new_tokens
from .outputs_assembly import assemble_outputs
from .quantization import backbone_quantization, quantize_for_training
from .trainable_parts import configure_trainable_parts
from .vision_cache import FrozenVisionCache, VitStates, vit_hidden_states

#: LLM attention policies a head may declare (``BaseRefHead.llm_attention``).
LLM_ATTENTION = ('causal', 'dual_perception', 'image_bidirectional')


@MODELS.register_module()
class InternVLBackbone(BaseModule):
    """HF-native ``InternVLForConditionalGeneration`` plus its text side.

    Built from a local HF checkpoint directory (``pretrained``) or, with random
    weights, from ``config`` (a dict of ``InternVLConfig`` fields whose
    ``text_config`` names its ``model_type``: qwen2, qwen3 or llama). One
    forward returns an :class:`MLLMOutputs` with the ViT features of the
    requested layers, the LLM states at the image tokens and at ``[SEG]``.

    The backbone owns the conversation: its :attr:`processor`
    (:class:`InternVLProcessor`) holds the tokenizer, the chat template,
    the image tokens per tile and the prompt style, and writes every
    sample's prompt (``RefSegDataPreProcessor`` calls it).

    Args:
        pretrained: local directory with ``config.json`` + safetensors shards.
        config: ``InternVLConfig`` fields; used when ``pretrained`` is None,
            and checked against the checkpoint when both are given.
        tokenizer: tokenizer config (see :func:`build_tokenizer`); defaults to
            ``pretrained``.
        extra_special_tokens: tokens added to the tokenizer (and embeddings).
        processor: :class:`InternVLProcessor` options besides the tokenizer
            and image tokens: ``prompt_style``, ``test_prompt_style``,
            ``system_message``, ``bos``, ``question_first``,
            ``test_reject_no_target``, ``max_length``.
        vit_layers: ViT layers to expose, indices into HF ``hidden_states``
            (0 = patch embeddings, -1 = last layer).
        seg_state_offset: take the ``[SEG]`` query from position p + offset;
            -1 is the LISA convention (the token whose logits predict [SEG])
            used by the released MLLMSeg weights, 0 the [SEG] token itself.
        image_state_offset: take LLM image features from image positions
            shifted by this much; -1 reproduces MLLMSeg's shift.
        freeze_vit / freeze_projector / freeze_llm: freeze those parts.
        train_new_token_rows: when the LLM is frozen, keep the embedding and
            lm_head rows of the added tokens trainable (and nothing else).
        init_new_token_rows: re-initialise the embedding and lm_head rows
            of ``extra_special_tokens`` at the mean of the other rows. Set
            False for checkpoints whose rows for these tokens are trained
            (released MLLMSeg/SELF1E converted by
            ``tools/model_converters``); rows that the resize adds are
            initialised either way.
        llm_lora / vit_lora: peft ``LoraConfig`` fields (``r``,
            ``lora_alpha``, ``lora_dropout``, optional ``target_modules``).
        gradient_checkpointing: activation checkpointing in ViT and LLM.
        quantization_config: 4/8-bit LLM weights through bitsandbytes, e.g.
            ``dict(bits=4)`` (NF4, double quantization, bf16 compute); the
            keys are those of :func:`~.quantization.build_bnb_config`. Needs
            ``freeze_llm=True`` (train LoRA on top) and the ``quant`` extra.
        torch_dtype: parameter dtype ('float32' or 'bfloat16').
        attn_implementation: 'sdpa' (default), 'eager' or
            'flash_attention_2' (needs the ``flash`` extra).
        compile_blocks: ``torch.compile`` the repeated transformer blocks in
            place (regional compilation, :mod:`.compiled_blocks`): ``True``
            for the LLM and ViT blocks with ``dynamic=True``, or a dict with
            ``towers`` (``('llm', 'vit')``) and ``torch.compile`` options.
            The blocks run compiled in training mode and eagerly in eval
            mode (generation's growing KV cache recompiles them).
            Needs a C++ compiler on CPU. Speeds up small models, whose steps
            are dominated by unfused element-wise kernels (see
            ``docs/text4seg_two_stage.md``); parameter names are unchanged.
        vision_cache: remember the frozen ViT's output per tile while
            training (:class:`~.vision_cache.FrozenVisionCache`), so an
            image seen again (the next epoch, another expression of it)
            skips the ViT. ``True`` or a dict of its arguments
            (``max_items``, ``device``). Needs a frozen ViT without LoRA;
            cleared when weights are loaded.
        vit_pos_embed_init: only for random weights (``config`` without
            ``pretrained``). None keeps transformers' init, which sets the
            ViT's absolute position embeddings to zero; 'sincos' starts them
            at the 2D sine-cosine table of MAE, so a model trained from
            scratch knows where each patch is from the first step, like a
            pretrained InternViT whose learned table encodes the 2D grid.
        init_cfg: MMEngine init config (unused: weights come from HF).
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 config: Optional[dict] = None,
                 tokenizer: Optional[TokenizerCfg] = None,
                 extra_special_tokens: Sequence[str] = (SEG_TOKEN, REJ_TOKEN),
                 processor: Optional[dict] = None,
                 vit_layers: Sequence[int] = (-1, ),
                 seg_state_offset: int = -1,
                 image_state_offset: int = -1,
                 freeze_vit: bool = True,
                 freeze_projector: bool = True,
                 freeze_llm: bool = True,
                 train_new_token_rows: bool = True,
                 init_new_token_rows: bool = True,
                 llm_lora: Optional[dict] = None,
                 vit_lora: Optional[dict] = None,
                 gradient_checkpointing: bool = False,
                 quantization_config: Optional[dict] = None,
                 torch_dtype: str = 'float32',
                 attn_implementation: str = 'sdpa',
                 vit_pos_embed_init: Optional[str] = None,
                 compile_blocks: Union[bool, dict] = False,
                 vision_cache: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pretrained is None and config is None:
            raise ValueError('InternVLBackbone needs `pretrained` (a local HF '
                             'checkpoint directory) or `config`.')
        if vit_pos_embed_init not in (None, 'sincos'):
            raise ValueError("vit_pos_embed_init must be None or 'sincos', "
                             f'got {vit_pos_embed_init!r}')
        if vit_pos_embed_init is not None and pretrained is not None:
            raise ValueError('vit_pos_embed_init would overwrite the '
                             f'position embeddings loaded from {pretrained}; '
                             'use it only for randomly initialised models.')
        self.vit_pos_embed_init = vit_pos_embed_init
        tokenizer = tokenizer if tokenizer is not None else pretrained
        self.tokenizer_cfg = tokenizer
        self.tokenizer = build_tokenizer(tokenizer, extra_special_tokens)
        self.vit_layers = tuple(vit_layers)
        self.seg_state_offset = seg_state_offset
        self.image_state_offset = image_state_offset
        self.init_new_token_rows = init_new_token_rows
        dtype = getattr(torch, torch_dtype)
        bnb_config = backbone_quantization(quantization_config, freeze_llm)
        self.hf = build_hf_model(pretrained, config, dtype,
                                 attn_implementation, bnb_config)
        if bnb_config is not None:
            quantize_for_training(self.hf, bnb_config, quantization_config)
        cfg = self.hf.config
        self.text_model_type = cfg.text_config.model_type
        self.image_token_id = cfg.image_token_id
        self.seg_token_id = token_id(self.tokenizer, SEG_TOKEN) \
            if SEG_TOKEN in extra_special_tokens else -1
        self.rej_token_id = token_id(self.tokenizer, REJ_TOKEN) \
            if REJ_TOKEN in extra_special_tokens else -1
        ctx = token_id(self.tokenizer, IMG_CONTEXT_TOKEN)
        if ctx != self.image_token_id:
            raise ValueError(
                f'The tokenizer maps {IMG_CONTEXT_TOKEN} to {ctx} but the '
                f'model config says image_token_id={self.image_token_id}.')
        processor = dict(processor or {})
        if self.context_limit is not None:
            # A conversation longer than the LLM's positions is refused,
            # naming the sample, before it reaches the model.
            processor.setdefault('max_length', self.context_limit)
        self.processor = InternVLProcessor(self.tokenizer,
                                           self.num_image_tokens, **processor)
        new_ids = add_token_rows(self.hf, self.tokenizer,
                                 extra_special_tokens, init_new_token_rows)
        if vit_pos_embed_init == 'sincos':
            init_vit_pos_embed_sincos(self.hf)
        configure_trainable_parts(self, new_ids, freeze_vit,
                                  freeze_projector, freeze_llm,
                                  train_new_token_rows, llm_lora, vit_lora)
        if gradient_checkpointing:
            self.hf.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self._compiled_blocks = []
        if compile_blocks:
            self._compiled_blocks = compile_repeated_blocks(
                self.hf, **({} if compile_blocks is True else compile_blocks))
            use_compiled(self._compiled_blocks, self.training)
        self.vision_cache: Optional[FrozenVisionCache] = None
        if vision_cache:
            tower = self.hf.model.vision_tower
            if any(p.requires_grad for p in tower.parameters()):
                raise ValueError(
                    'vision_cache needs a frozen ViT (freeze_vit=True and no '
                    'vit_lora): a trained ViT changes its output every step.')
            self.vision_cache = FrozenVisionCache(
                **({} if vision_cache is True else vision_cache))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        # New weights make remembered ViT outputs stale.
        if getattr(self, 'vision_cache', None) is not None:
            self.vision_cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def train(self, mode: bool = True) -> 'InternVLBackbone':
        """Set the mode; compiled blocks run compiled only in training."""
        super().train(mode)
        use_compiled(getattr(self, '_compiled_blocks', []), mode)
        return self

    # --------------------------------------------------------------- helpers
    @property
    def vit_channels(self) -> int:
        return self.hf.config.vision_config.hidden_size

    @property
    def llm_channels(self) -> int:
        return self.hf.config.text_config.hidden_size

    @property
    def patch_size(self) -> int:
        return int(self.hf.config.vision_config.patch_size[0])

    @property
    def tile_size(self) -> int:
        return int(self.hf.config.vision_config.image_size[0])

    @property
    def downsample_ratio(self) -> float:
        return float(self.hf.config.downsample_ratio)

    @property
    def num_image_tokens(self) -> int:
        """Image tokens per tile after pixel shuffle."""
        side = self.tile_size // self.patch_size
        return int(side * self.downsample_ratio)**2

    @property
    def dtype(self) -> torch.dtype:
        return self.hf.get_input_embeddings().weight.dtype

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.hf.lm_head(hidden)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The vision-to-LLM projector on [..., 4 * C_vit] features.

        Inputs are cast to the projector's dtype: a trainable projector keeps
        float32 master weights while the frozen ViT runs in bf16, and
        evaluation runs without autocast.

        Returns:
            Tensor: [..., C_llm] in the projector's dtype.
        """
        projector = self.hf.model.multi_modal_projector
        return projector(features.to(projector.linear_1.weight.dtype))

    # --------------------------------------------------------------- forward
    def extract_vision(self, pixel_values: torch.Tensor):
        """Run the ViT once and project to LLM space.

        Args:
            pixel_values (Tensor): [N, 3, S, S] normalised tiles.

        Returns:
            tuple: (vit_features dict layer → [N, C_vit, h_v, w_v],
            image_embeds [N, h_l*w_l, C_llm]).
        """
        cfg = self.hf.config
        feat_layer = cfg.vision_feature_layer
        if self.vision_cache is not None and self.training:
            states = self.vision_cache.fetch(
                pixel_values, self.hf.model.vision_tower, self.vit_states)
        else:
            states = self.vit_states(pixel_values)
        proj_in = states[feat_layer]
        n, tokens, c_vit = proj_in.shape
        side = int(round((tokens - 1)**0.5))
        grid = proj_in[:, 1:].reshape(n, side, side, c_vit)
        shuffled = self.hf.model.pixel_shuffle(
            grid, scale_factor=cfg.downsample_ratio)
        image_embeds = self.project(
            shuffled.reshape(n, -1, shuffled.shape[-1]))
        vit_features = {
            idx: states[idx][:, 1:].transpose(1, 2).reshape(
                n, c_vit, side, side)
            for idx in self.vit_layers
        }
        return vit_features, image_embeds

    def vit_states(self, pixel_values: torch.Tensor) -> VitStates:
        """The ViT's hidden states at ``vit_layers`` and the projector's
        ``vision_feature_layer``.

        Args:
            pixel_values (Tensor): [N, 3, S, S] normalised tiles.

        Returns:
            dict: layer index (-1 = last) -> [N, 1 + h_v*w_v, C_vit].
        """
        wanted = set(self.vit_layers) | {self.hf.config.vision_feature_layer}
        return vit_hidden_states(self.hf.model.vision_tower,
                                 pixel_values.to(self.dtype), wanted)

    def forward(self,
                pixel_values: torch.Tensor,
                input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                num_tiles: Optional[Sequence[int]] = None,
                llm_attention_mask: Optional[torch.Tensor] = None,
                llm_attention: str = 'causal',
                uncompressed_vision: bool = False,
                vision: Optional[Tuple[Dict[int, torch.Tensor],
                                       torch.Tensor]] = None,
                **kwargs) -> MLLMOutputs:
        """One pass through ViT, projector and LLM.

        Args:
            pixel_values (Tensor): [N, 3, S, S], all tiles of the batch.
            input_ids (Tensor): [B, L] with ``num_image_tokens`` image tokens
                per tile.
            attention_mask (Tensor, optional): [B, L] 1 = real token.
            labels (Tensor, optional): [B, L], -100 outside the answer.
            num_tiles (Sequence[int], optional): tiles per conversation
                (default one each). The last tile is the global view.
            llm_attention_mask (Tensor, optional): a custom [B, 1, L, L]
                boolean mask (True = may attend) for the LLM, replacing the
                one ``llm_attention`` names.
            llm_attention (str): the LLM's attention policy, 'causal'
                (default), 'dual_perception' (SELF1E's mask, see
                :func:`dual_perception_mask`) or 'image_bidirectional'
                (:func:`image_bidirectional_mask`), as the head declares
                it.
            uncompressed_vision (bool): also compute
                :attr:`MLLMOutputs.uncompressed_embeds`, the projector
                applied to every ViT token replicated to a 2x2 block
                (SELF1E's uncompressed branch).
            vision (tuple, optional): :meth:`extract_vision`'s output for
                the tiles of ``num_tiles``, computed by the caller (the
                segmentor shares one image's tiles among several
                conversations); ``pixel_values`` is then not read.

        Returns:
            MLLMOutputs: see :class:`MLLMOutputs`.
        """
        self._check_context(input_ids)
        bsz = input_ids.shape[0]
        num_tiles = list(num_tiles) if num_tiles is not None else [1] * bsz
        if vision is None:
            vision = self.extract_vision(pixel_values)
        vit_features, image_embeds = vision
        embeds = self.embed_conversations(input_ids, image_embeds)
        if llm_attention_mask is None:
            llm_attention_mask = self.llm_attention_mask(
                llm_attention, input_ids, attention_mask)
        mask = llm_attention_mask if llm_attention_mask is not None \
            else attention_mask
        hidden = self.hf.model.language_model(
            inputs_embeds=embeds, attention_mask=mask,
            use_cache=False).last_hidden_state
        return assemble_outputs(self, hidden, input_ids, vit_features,
                                image_embeds, num_tiles, labels,
                                uncompressed_vision)

    def embed_conversations(self, input_ids: torch.Tensor,
                            image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the image tokens replaced by the projected
        tiles.

        Args:
            input_ids (Tensor): [B, L] with ``num_image_tokens`` image tokens
                per tile.
            image_embeds (Tensor): [N, n_tok, C_llm], the tiles in the order
                their image tokens appear (row-major over ``input_ids``).

        Returns:
            Tensor: [B, L, C_llm] LLM input embeddings.
        """
        n_img, n_tok, _ = image_embeds.shape
        is_img = input_ids == self.image_token_id
        if int(is_img.sum()) != n_img * n_tok:
            raise ValueError(
                f'{int(is_img.sum())} image tokens in input_ids but the ViT '
                f'produced {n_img} tiles x {n_tok} tokens; check that the '
                'pipeline uses num_image_tokens=' f'{self.num_image_tokens}.')
        embeds = self.hf.get_input_embeddings()(input_ids)
        return embeds.masked_scatter(is_img.unsqueeze(-1),
                                     image_embeds.to(embeds.dtype))

    def llm_attention_mask(self, policy: str, input_ids: torch.Tensor,
                           attention_mask: Optional[torch.Tensor]
                           ) -> Optional[torch.Tensor]:
        """The LLM attention mask of a policy, in the form the LLM's
        attention implementation takes.

        Args:
            policy (str): 'causal' (None: the LLM's own causal mask from
                ``attention_mask``), 'dual_perception' or
                'image_bidirectional'.
            input_ids (Tensor): [B, L].
            attention_mask (Tensor, optional): [B, L] 1 = real token.

        Returns:
            Tensor | None: [B, 1, L, L] mask, or None for 'causal'.
        """
        if policy not in LLM_ATTENTION:
            raise ValueError(f'llm_attention must be one of {LLM_ATTENTION}'
                             f', got {policy!r}')
        if policy == 'causal':
            return None
        return dual_perception_mask_for(
            dict(input_ids=input_ids, attention_mask=attention_mask), self,
            policy)

    @property
    def context_limit(self) -> Optional[int]:
        """Longest conversation the LLM reads correctly, or None.

        Plain RoPE runs past the positions it was trained on and silently
        gives garbage, so ``max_position_embeddings`` is a hard limit.
        Scaled RoPE (InternLM2's dynamic NTK, YaRN, ...) extends the
        context: None (no limit)."""
        text_cfg = self.hf.config.text_config
        rope = getattr(text_cfg, 'rope_parameters', None) or getattr(
            text_cfg, 'rope_scaling', None) or {}
        rope_type = rope.get('rope_type', rope.get('type', 'default')) \
            if isinstance(rope, dict) else 'default'
        if rope_type != 'default':
            return None
        return int(text_cfg.max_position_embeddings)

    def _check_context(self, input_ids: torch.Tensor) -> None:
        """Refuse sequences longer than :attr:`context_limit`."""
        limit = self.context_limit
        if limit is not None and input_ids.shape[1] > limit:
            raise ValueError(
                f'A conversation of {input_ids.shape[1]} tokens exceeds the '
                f'LLM context (max_position_embeddings={limit}); shorten the '
                'expression or use fewer tiles.')

    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor, llm_attention: str = 'causal',
                 **gen_kwargs) -> torch.Tensor:
        """Greedy/sampled generation with KV cache (transformers' own loop)
        from left-padded prompts read under ``llm_attention``; only the new
        tokens [B, T] (:func:`generate_new_tokens`)."""
        return generate_new_tokens(self, pixel_values, input_ids,
                                   attention_mask, llm_attention,
                                   **gen_kwargs)
