# Copyright (c) mmrefseg contributors.
"""Refine a coarse mask with SAM, as Text4Seg's optional mask refiner does.

The coarse mask prompts SAM twice: as a dense mask prompt (logits) and as
points drawn at random inside and outside it. SAM then runs a few times,
each pass fed the low-resolution logits of the previous one.

All geometry is done in SAM's own frame: the image is resized so that its
longer side is SAM's input size and padded at the bottom/right, so the mask
prompt gets the same aspect-correct resize + pad and the points the same
scale. (The reference's latest code stretches the 16x16 grid to the square
mask input instead, which misplaces it on non-square images.)
"""
import os.path as osp
from typing import Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmrefseg.registry import MODELS

# SAM's normalisation, in 0-255 RGB units (segment-anything Sam defaults).
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
MASK_PROMPTS = ('fullres', 'grid', 'none')

ArrayLike = Union[np.ndarray, Tensor]


def resized_shape(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """Size after resizing the longer side to ``long_side`` (SAM's rule).

    Args:
        height (int): Original height.
        width (int): Original width.
        long_side (int): Target length of the longer side.

    Returns:
        tuple[int, int]: ``(new_h, new_w)``, rounded half up.
    """
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _as_bool_tensor(mask: ArrayLike) -> Tensor:
    mask = mask if isinstance(mask, Tensor) else torch.from_numpy(
        np.ascontiguousarray(mask))
    return mask.detach().cpu() > 0


@MODELS.register_module()
class SamMaskRefiner:
    """Text4Seg's SAM refiner on transformers' native ``SamModel``.

    SAM is loaded lazily on first use from a local HF checkpoint directory,
    stays in float32 and is kept out of the owning model's ``state_dict``,
    so SAM's weights never end up in our checkpoints and a model with a
    refiner still builds without them (e.g. on the meta device).

    Args:
        checkpoint (str): Local directory with a transformers ``SamModel``
            (``config.json`` + weights), e.g. a saved
            ``facebook/sam-vit-huge``.
        num_pos_points (int): Positive points drawn from the mask. Defaults
            to 10, as the reference.
        num_neg_points (int): Negative points drawn outside it. Defaults to
            10.
        num_passes (int): SAM calls; each after the first gets the previous
            low-resolution logits as its mask prompt. Defaults to 3.
        mask_prompt (str): First-pass mask prompt: ``'fullres'`` (the
            upsampled coarse mask, as the reference's demo and older eval
            code), ``'grid'`` (the descriptor grid itself, bilinearly
            resized) or ``'none'``. Defaults to 'fullres'.
        eps (float): The prompt is ``logit(1 - eps)`` on the mask and
            ``logit(eps)`` off it. Defaults to 1e-3.
        pad_value (float): Mask-prompt logit outside the image (SAM's
            padded border); 0 as the reference. Defaults to 0.0.
        mask_threshold (float): Logit threshold of the final mask. Defaults
            to 0.0.
        seed (int, optional): Seed of the point sampling, so that results
            do not depend on batching; None uses torch's global RNG.
            Defaults to 0.
        device (str, optional): Where SAM runs; None follows the coarse
            mask's device. Defaults to None.
    """

    def __init__(self,
                 checkpoint: str,
                 num_pos_points: int = 10,
                 num_neg_points: int = 10,
                 num_passes: int = 3,
                 mask_prompt: str = 'fullres',
                 eps: float = 1e-3,
                 pad_value: float = 0.0,
                 mask_threshold: float = 0.0,
                 seed: Optional[int] = 0,
                 device: Optional[str] = None) -> None:
        if mask_prompt not in MASK_PROMPTS:
            raise ValueError(f'mask_prompt must be one of {MASK_PROMPTS}, '
                             f'got {mask_prompt!r}')
        if num_passes < 1 or num_pos_points < 1 or num_neg_points < 0:
            raise ValueError('need num_passes >= 1, num_pos_points >= 1 and '
                             'num_neg_points >= 0')
        self.checkpoint = checkpoint
        self.num_pos_points = num_pos_points
        self.num_neg_points = num_neg_points
        self.num_passes = num_passes
        self.mask_prompt = mask_prompt
        self.eps = eps
        self.pad_value = pad_value
        self.mask_threshold = mask_threshold
        self.seed = seed
        self.device = device
        self._sam = None

    # ------------------------------------------------------------------ SAM
    @property
    def sam(self):
        """The ``SamModel``, loaded on first access."""
        if self._sam is None:
            if not osp.isfile(osp.join(self.checkpoint, 'config.json')):
                raise FileNotFoundError(
                    f'No SAM checkpoint at {self.checkpoint!r}: expected a '
                    'local directory with config.json and the weights of a '
                    'transformers SamModel.')
            from transformers import SamModel
            self._sam = SamModel.from_pretrained(
                self.checkpoint, dtype=torch.float32).eval()
            self._sam.requires_grad_(False)
        return self._sam

    @property
    def input_size(self) -> int:
        """Side of SAM's square input (1024 for the released models)."""
        return int(self.sam.config.prompt_encoder_config.image_size)

    @property
    def mask_input_size(self) -> int:
        """Side of SAM's low-resolution mask prompt (256 when released)."""
        return 4 * int(
            self.sam.config.prompt_encoder_config.image_embedding_size)

    def _to(self, device: torch.device) -> None:
        if next(self.sam.parameters()).device != device:
            self._sam = self.sam.to(device)

    # ------------------------------------------------------------- prompts
    def preprocess(self, image: np.ndarray) -> Tuple[Tensor, int, int]:
        """Resize the longer side to SAM's input size, normalise, pad.

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.

        Returns:
            tuple: ``pixel_values`` [1, 3, S, S] float32, ``new_h``,
            ``new_w`` (the valid region at the top-left).
        """
        size = self.input_size
        new_h, new_w = resized_shape(image.shape[0], image.shape[1], size)
        resized = cv2.resize(image, (new_w, new_h),
                             interpolation=cv2.INTER_LINEAR)
        norm = (resized.astype(np.float32) - np.float32(SAM_PIXEL_MEAN)) / \
            np.float32(SAM_PIXEL_STD)
        padded = np.zeros((size, size, 3), np.float32)
        padded[:new_h, :new_w] = norm
        return torch.from_numpy(padded).permute(2, 0, 1)[None], new_h, new_w

    def mask_logits(self, prompt: Tensor, height: int, width: int) -> Tensor:
        """A binary map as SAM's dense mask prompt, aspect-correct.

        Args:
            prompt (Tensor): ``(h, w)`` binary map covering the whole image
                (the full-resolution mask or the descriptor grid).
            height (int): Image height.
            width (int): Image width.

        Returns:
            Tensor: [1, 1, M, M] float32 logits, ``M = mask_input_size``; the
            image occupies the top-left ``resized_shape(H, W, M)`` region.
        """
        size = self.mask_input_size
        new_h, new_w = resized_shape(height, width, size)
        hi = float(np.log((1 - self.eps) / self.eps))
        logits = torch.where(prompt.bool(), hi, -hi)[None, None].float()
        logits = F.interpolate(logits, size=(new_h, new_w), mode='bilinear',
                               align_corners=False)
        out = logits.new_full((1, 1, size, size), self.pad_value)
        out[..., :new_h, :new_w] = logits
        return out

    def sample_points(self, mask: Tensor,
                      generator: Optional[torch.Generator] = None
                      ) -> Tuple[Tensor, Tensor]:
        """Random positive points in the mask and negative ones outside.

        Args:
            mask (Tensor): ``(H, W)`` bool mask at the image's resolution.
            generator (torch.Generator, optional): RNG of the draw.

        Returns:
            tuple: ``coords`` [N, 2] float32 (x, y) in original pixels and
            ``labels`` [N] int64 (1 positive, 0 negative); fewer than asked
            when the mask or the background has fewer pixels.
        """
        coords, labels = [], []
        for value, num in ((True, self.num_pos_points),
                           (False, self.num_neg_points)):
            ys, xs = torch.nonzero(mask == value, as_tuple=True)
            pick = torch.randperm(len(ys), generator=generator)[:num]
            coords.append(torch.stack([xs[pick], ys[pick]], dim=1))
            labels.append(torch.full((len(pick), ), int(value)))
        return torch.cat(coords).float(), torch.cat(labels)

    # -------------------------------------------------------------- refine
    @torch.no_grad()
    def refine(self,
               image: np.ndarray,
               mask: ArrayLike,
               grid: Optional[ArrayLike] = None) -> Tensor:
        """Refine one coarse mask.

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
            mask (np.ndarray | Tensor): ``(H, W)`` coarse mask (> 0 is
                foreground), e.g. the nearest-upsampled descriptor grid.
            grid (np.ndarray | Tensor, optional): ``(h, w)`` descriptor
                grid; needed with ``mask_prompt='grid'``.

        Returns:
            Tensor: ``(H, W)`` bool mask on the coarse mask's device; empty
            (without calling SAM) when the coarse mask is empty.
        """
        out_device = mask.device if isinstance(mask, Tensor) else \
            torch.device('cpu')
        coarse = _as_bool_tensor(mask)
        height, width = coarse.shape
        if image.shape[:2] != (height, width):
            raise ValueError(f'image {image.shape[:2]} and mask '
                             f'{(height, width)} sizes differ')
        if not coarse.any():
            return torch.zeros((height, width), dtype=torch.bool,
                               device=out_device)
        device = torch.device(self.device) if self.device else out_device
        self._to(device)
        sam = self.sam

        pixel_values, new_h, new_w = self.preprocess(image)
        embeddings = sam.get_image_embeddings(pixel_values.to(device))
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        coords, labels = self.sample_points(coarse, generator)
        # SAM's coordinate transform: scale x and y separately.
        coords = coords * torch.tensor([new_w / width, new_h / height])
        if self.mask_prompt == 'fullres':
            prompt = self.mask_logits(coarse, height, width)
        elif self.mask_prompt == 'grid':
            if grid is None:
                raise ValueError("mask_prompt='grid' needs the grid")
            prompt = self.mask_logits(_as_bool_tensor(grid), height, width)
        else:
            prompt = None

        low_res = prompt.to(device) if prompt is not None else None
        for _ in range(self.num_passes):
            out = sam(image_embeddings=embeddings,
                      input_points=coords[None, None].to(device),
                      input_labels=labels[None, None].to(device),
                      input_masks=low_res,
                      multimask_output=False)
            low_res = out.pred_masks[:, 0, :1]  # [1, 1, M, M]
        return self._postprocess(low_res, new_h, new_w, height,
                                 width).to(out_device)

    def _postprocess(self, low_res: Tensor, new_h: int, new_w: int,
                     height: int, width: int) -> Tensor:
        """Low-res logits → padded input frame → crop → original size."""
        size = self.input_size
        logits = F.interpolate(low_res.float(), size=(size, size),
                               mode='bilinear', align_corners=False)
        logits = logits[..., :new_h, :new_w]
        logits = F.interpolate(logits, size=(height, width),
                               mode='bilinear', align_corners=False)
        return logits[0, 0] > self.mask_threshold

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(checkpoint={self.checkpoint!r}, '
                f'points={self.num_pos_points}+{self.num_neg_points}, '
                f'passes={self.num_passes}, '
                f'mask_prompt={self.mask_prompt!r})')
