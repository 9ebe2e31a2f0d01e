"""MemoryTracker: peak bytes of tensor storages created inside a ``with`` block, on any device.

CPU torch has no peak-memory counter, and process RSS is dominated by the allocator and
imports; the tracker instead follows every tensor storage created at the aten level and
records the peak of live bytes, which is exact, repeatable and the same on every device
(the meta device included, so a layer's working set can be counted without allocating).
An op's output that shares the storage of one of its arguments (a view, an in-place op) is
no allocation: counting it would count a weight or an input the first time it is viewed
(``weight[:, :, None, None]`` for a 1x1 conv, ``weight.t()`` inside ``linear``) and keep it
live until the weight dies, so a whole model would pile up every layer's weights.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def tensors(tree) -> list[torch.Tensor]:
    """The tensors in an aten op's arguments or outputs: alone, or in (nested) lists, tuples and dicts.

    A dispatch mode looks at every op of a model, several times: torch's ``tree_flatten`` handles
    any registered pytree type at several times the cost, which made it most of a roofline estimate.
    """
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in tensors(item)]
    return []


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
        inputs = None
        for value in tensors(out):
            self.moved += value.numel() * value.element_size()
            storage = value.untyped_storage()
            if inputs is None:
                inputs = {id(t.untyped_storage()) for t in tensors((args, kwargs))}
            if id(storage) not in inputs:
                self._track(storage)
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
