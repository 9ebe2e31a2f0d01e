"""Tensor memory: a tracker that measures it, and the activation context a slot runs in.

CPU torch has no peak-memory counter, and process RSS is dominated by the allocator and
imports; the tracker instead follows every tensor storage created at the aten level and
records the peak of live bytes, which is exact, repeatable and the same on every device.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nas.space import SearchSpace


class MemoryTracker(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the ``with`` block (inputs and weights excluded).

    Also counts ``moved``: bytes of every op's outputs, a device-independent measure of memory
    traffic that the roofline estimate uses.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.moved = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.moved += value.numel() * value.element_size()
                self._track(value.untyped_storage())
        return out

    def _track(self, storage) -> None:
        # Keyed by the storage object, which torch keeps unique per allocation while it lives
        # (views share it), so this also works for meta tensors, which have no data pointer.
        handle, size = id(storage), storage.nbytes()
        if size == 0 or handle in self._sizes:
            return
        self._sizes[handle] = size
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, handle)

    def _release(self, handle: int) -> None:
        self.live -= self._sizes.pop(handle, 0)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def slot_context_bytes(space: SearchSpace, dtype_bytes: int) -> dict[str, int]:
    """Bytes the spatial UNet holds live when each slot's temporal layers run (batch 1 clip).

    That is the skip connections stored so far (down path) or still to be consumed (up path),
    the current hidden state, and the per-frame text embeddings; a temporal layer's own working
    set comes on top of this.
    """
    backbone = space.backbone
    channels = backbone["block_out_channels"]
    levels = len(channels)
    per_block = backbone.get("layers_per_block", 2)
    layers = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block] * levels
    frames = space.video.frames

    def size(level: int, width: int) -> int:
        h, w = space.video.level_size(level)
        return frames * width * h * w

    text = frames * space.text_tokens * space.cross_attention_dim
    skips = [size(0, channels[0])]  # conv_in output
    at: dict[tuple[str, int, int], int] = {}
    for level in range(levels):
        for position in range(layers[level]):
            current = size(level, channels[level])
            at[("down", level, position)] = sum(skips) + current
            skips.append(current)
        if level < levels - 1:
            skips.append(size(level + 1, channels[level]))
    at[("mid", levels - 1, 0)] = sum(skips) + size(levels - 1, channels[-1])
    for level in reversed(range(levels)):
        for position in range(layers[level] + 1):
            skips.pop()
            at[("up", level, position)] = sum(skips) + size(level, channels[level])
    return {s.name: (at[(s.path, s.level, s.position)] + text) * dtype_bytes for s in space.slots}
