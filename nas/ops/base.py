"""TemporalOp: the one base class every temporal layer type derives from.

Contract (what the model, the cost model and the profilers rely on):

- ``name``: the op type as written in YAML; ``defaults``: its hyperparameters (ints) and their
  default values. Every hyperparameter a space may set must appear in ``defaults``.
- ``__init__(channels, frames, norm_groups, **params)``: ``frames`` is the largest number of
  frames the layer will see (attention ops size their frame position table with it).
- ``forward(hidden_states, num_frames)``: maps ``(B*F, C, H, W)`` to the same shape, the
  layout the spatial UNet uses inside, so a layer can sit between any two spatial layers.
  A fresh layer must be an identity (zero-initialised output projection on a residual),
  so inserting it into a pretrained spatial UNet changes nothing until it is trained.
- ``check_params(channels, params)``: raise ValueError when ``params`` cannot work at that
  width (heads not dividing channels, even kernels), so a bad space fails at load time.
- ``key(...)``, ``cost(...)`` and ``param_count(...)``: the table key, the (parameters, FLOPs) and the
  parameters of one layer at one input shape. The default ``cost`` builds the layer on the meta device and counts FLOPs with
  torch's FlopCounterMode, so a user op needs no hand-written formula.
- ``working_set(...)``: peak bytes one call allocates beyond its input and weights (fp32). The
  cost model prices the memory of an unmeasured shape along it, so it must grow as the op's
  memory does (attention scores: with the square of the sequence). The default traces the
  layer on the meta device, like ``cost``; an op with ``set_attention`` is traced with the
  ``attention`` implementation the table was measured with (split_einsum holds one head's
  scores at a time, sdpa all heads': their working sets grow differently).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.ops.key import OpKey
from nas.ops.memory_tracker import MemoryTracker
from nas.ops.spec import OpCost


class TemporalOp(nn.Module):
    """Base of all temporal layer types; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, int]] = MappingProxyType({})  # read-only: subclasses share it

    def __init__(self, channels: int, frames: int, norm_groups: int = 32, **params: int):
        super().__init__()
        self.channels = channels
        self.frames = frames
        self.params = {**self.defaults, **params}

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def check_params(cls, channels: int, params: dict[str, int]) -> None:
        """Raise ValueError if ``params`` cannot build a layer ``channels`` wide."""

    @classmethod
    def key(cls, channels: int, frames: int, height: int, width: int, params: dict[str, int]) -> OpKey:
        """The table key: the shape and every hyperparameter (defaults filled in)."""
        return OpKey.of(cls.name, channels, frames, height, width, {**cls.defaults, **params})

    @classmethod
    def cost(cls, channels: int, frames: int, height: int, width: int, params: dict[str, int]) -> OpCost:
        return _meta_trace(cls, channels, frames, height, width, tuple(sorted(params.items())))[0]

    @classmethod
    def param_count(cls, channels: int, frames: int, height: int, width: int, params: dict[str, int]) -> int:
        """Parameters of one layer (the built-in ops count theirs without torch: :mod:`nas.ops.spec`)."""
        return cls.cost(channels, frames, height, width, params).params

    @classmethod
    def working_set(
        cls, channels: int, frames: int, height: int, width: int, params: dict[str, int], attention: str | None = None
    ) -> int:
        return _meta_trace(cls, channels, frames, height, width, tuple(sorted(params.items())), attention)[1]


@functools.lru_cache(maxsize=4096)
def _meta_trace(cls, channels, frames, height, width, params, attention=None) -> tuple[OpCost, int]:
    """Count parameters, FLOPs and peak working-set bytes without allocating: run the layer on meta tensors."""
    with torch.device("meta"):
        layer = cls(channels, frames, 1, **dict(params))
        if attention is not None:
            layer.set_attention(attention)
        n_params = sum(p.numel() for p in layer.parameters())
        x = torch.empty(frames, channels, height, width)
        counter = FlopCounterMode(display=False)
        with counter, MemoryTracker() as tracker, torch.no_grad():
            layer(x, frames)
    return OpCost(params=n_params, flops=int(counter.get_total_flops())), tracker.peak


class OpGraph(nn.Module):
    """One temporal op with its frame count fixed, so it traces (and converts) with a single tensor input."""

    def __init__(self, op: nn.Module, frames: int):
        super().__init__()
        self.op = op
        self.frames = frames

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.op(hidden_states, self.frames)
