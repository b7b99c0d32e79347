# Copyright (c) mmrefseg contributors.
"""A memory of a frozen ViT's hidden states, keyed by the tiles' content.

Training with the ViT frozen (Text4Seg's stage 2, MLLMSeg) runs the same
image through the same function once per epoch for every expression it
carries: RefCOCO and the synthetic sets hold about three expressions per
image. Remembering the ViT's output per tile removes that forward from all
but the first visit. The key is the tile's bytes (shape, dtype and two
checksums), not its file name, so a random augmentation earlier in the
pipeline only causes misses, never a wrong hit.
"""
import zlib
from collections import OrderedDict
from typing import Callable, Dict, Hashable, Iterable, List, Optional

import torch
from torch import nn

#: ViT hidden states by layer index, each [N, 1 + h*w, C_vit].
VitStates = Dict[int, torch.Tensor]


def vit_hidden_states(tower: nn.Module, pixel_values: torch.Tensor,
                      layers: Iterable[int]) -> VitStates:
    """Run the ViT once and keep the hidden states of ``layers``.

    Args:
        tower (nn.Module): transformers' InternVL vision model.
        pixel_values (Tensor): [N, 3, S, S] tiles in the tower's dtype.
        layers (Iterable[int]): indices into HF ``hidden_states`` (0 = patch
            embeddings, -1 = the last layer's ``last_hidden_state``).

    Returns:
        dict: layer -> [N, 1 + h*w, C_vit].
    """
    num_layers = len(tower.encoder.layer)
    layers = set(layers)
    captured: VitStates = {}
    hooks = []
    for idx in layers - {-1}:
        pos = idx % (num_layers + 1)  # index into hidden_states tuple
        module = tower.embeddings if pos == 0 else \
            tower.encoder.layer[pos - 1]

        def hook(_m, _i, out, idx=idx):
            captured[idx] = out[0] if isinstance(out, tuple) else out

        hooks.append(module.register_forward_hook(hook))
    try:
        out = tower(pixel_values=pixel_values)
    finally:
        for h in hooks:
            h.remove()
    if -1 in layers:
        captured[-1] = out.last_hidden_state
    return captured


def tile_key(tile: torch.Tensor) -> Hashable:
    """A key for one tile: shape, dtype and CRC-32 + Adler-32 of its bytes.

    The two checksums make a 64-bit fingerprint (0.2 ms for a 224 px float32
    tile on one CPU core, against 0.75 ms for BLAKE2b).
    """
    data = tile.detach().contiguous().cpu().view(torch.uint8).numpy()
    view = memoryview(data).cast('B')
    return (tuple(tile.shape), str(tile.dtype), zlib.crc32(view),
            zlib.adler32(view))


class FrozenVisionCache:
    """Least-recently-used memory of ViT hidden states per input tile.

    Args:
        max_items (int): tiles kept; the least recently used is dropped
            beyond it. One entry holds every requested layer of one tile,
            e.g. 257 x 128 float32 values (132 KB) for the tiny configs,
            1025 x 1024 bf16 (2 MB) per layer for InternViT-300M at 448 px.
        device (str, optional): where entries are kept, e.g. 'cpu' to spare
            GPU memory (each hit then copies back). None keeps them where
            the ViT computed them.
    """

    def __init__(self, max_items: int = 8192,
                 device: Optional[str] = None) -> None:
        if max_items < 1:
            raise ValueError(f'max_items must be >= 1, got {max_items}')
        self.max_items = int(max_items)
        self.device = device
        self._entries: 'OrderedDict[Hashable, VitStates]' = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (the ViT's weights changed)."""
        self._entries.clear()

    def fetch(self, pixel_values: torch.Tensor, tower: nn.Module,
              compute: Callable[[torch.Tensor], VitStates]) -> VitStates:
        """The hidden states of ``pixel_values``, computing only new tiles.

        Args:
            pixel_values (Tensor): [N, 3, S, S] tiles.
            tower (nn.Module): the ViT; it runs in eval mode without
                gradients for the missing tiles, so that an entry is the
                deterministic output (no dropout or stochastic depth).
            compute (Callable): tiles [M, 3, S, S] -> hidden states by
                layer, each [M, T, C].

        Returns:
            dict: layer -> [N, T, C] on ``pixel_values``'s device.
        """
        keys = [tile_key(tile) for tile in pixel_values]
        missing = [i for i, key in enumerate(keys)
                   if key not in self._entries]
        fresh: Dict[Hashable, VitStates] = {}
        if missing:
            was_training = tower.training
            tower.eval()
            try:
                with torch.no_grad():
                    states = compute(pixel_values[missing])
            finally:
                tower.train(was_training)
            for row, i in enumerate(missing):
                fresh[keys[i]] = {
                    layer: value[row].detach().clone() if self.device is None
                    else value[row].detach().to(self.device, copy=True)
                    for layer, value in states.items()
                }
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        per_tile: List[VitStates] = []
        for key in keys:
            entry = fresh.get(key)
            if entry is None:
                entry = self._entries[key]
                self._entries.move_to_end(key)
            else:
                self._entries[key] = entry
            per_tile.append(entry)
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        device = pixel_values.device
        return {
            layer: torch.stack([entry[layer] for entry in per_tile]).to(device)
            for layer in per_tile[0]
        }

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(items={len(self)}/'
                f'{self.max_items}, hits={self.hits}, misses={self.misses})')
