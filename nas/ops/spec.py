"""What a space and a table need of an op type, without building it: parameters, checks, keys, sizes.

Loading a space checks each choice's parameters, and pricing it forms table keys and counts the
temporal layers' parameters (the weights' memory). For the built-in ops all of this is closed
form, kept here, so that ``nas space show`` and ``nas cost`` need not import torch and diffusers
(the op classes take their checks from here; ``tests/test_ops.py`` holds the counts equal to the
layers'). A user's op has no spec: :func:`op_spec` gives its class, whose ``check_params``,
``key`` and ``param_count`` (by default counted on the meta device) say the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.ops.key import OpKey
from nas.ops.registry import BUILTIN_DEFAULTS, check_op_name, get_op


@dataclass(frozen=True)
class OpCost:
    """Size and work of one layer for one video (batch 1).

    ``flops`` counts 2 x multiply-accumulates of matmuls, convolutions and attention, as
    torch's FlopCounterMode does; norms and activations are not counted.
    """

    params: int
    flops: int


@dataclass(frozen=True)
class BuiltinSpec:
    """A built-in op type as a space and a table see it: the same methods as its TemporalOp class."""

    name: str
    check: Callable[[str, int, dict[str, Any]], None]
    count: Callable[[int, dict[str, int]], int]  # (channels, params with defaults) -> parameters of one layer

    @property
    def defaults(self) -> Mapping[str, int]:
        return BUILTIN_DEFAULTS[self.name]

    def check_params(self, channels: int, params: dict[str, Any]) -> None:
        """Raise ValueError if ``params`` cannot build a layer ``channels`` wide."""
        self.check(self.name, channels, params)

    def key(self, channels: int, frames: int, height: int, width: int, params: dict[str, int]) -> OpKey:
        """The table key: the shape and every hyperparameter (defaults filled in)."""
        return OpKey.of(self.name, channels, frames, height, width, {**self.defaults, **params})

    def param_count(self, channels: int, frames: int, height: int, width: int, params: dict[str, int]) -> int:
        """Parameters of one layer (they do not depend on the frames and pixels it sees)."""
        return self.count(channels, {**self.defaults, **params})


def check_kernel(name: str, channels: int, params: dict[str, Any]) -> None:
    kernel = params["kernel"]
    if not (isinstance(kernel, int) and kernel >= 1 and kernel % 2 == 1):
        raise ValueError(f"{name}: kernel must be an odd positive integer, got {kernel!r}")


def check_heads(name: str, channels: int, params: dict[str, Any]) -> None:
    heads = params["heads"]
    if not (isinstance(heads, int) and heads >= 1 and channels % heads == 0):
        raise ValueError(f"{name}: heads must be a positive divisor of {channels} channels, got {heads!r}")


def _no_check(name: str, channels: int, params: dict[str, Any]) -> None:
    pass


def _conv_params(spatial_kernel: int) -> Callable[[int, dict[str, int]], int]:
    # Two GroupNorms (2C each) and two Conv3d of kernel (k, s, s) with bias: 2 (C^2 k s^2 + C) + 4C.
    return lambda c, p: 2 * c * c * p["kernel"] * spatial_kernel**2 + 6 * c


def _attention_params(c: int, p: dict[str, int]) -> int:
    # GroupNorm 2C, proj_in and proj_out C^2 + C each, and diffusers' BasicTransformerBlock (self-attention
    # only, geglu): two LayerNorms 4C, q/k/v 3C^2, out C^2 + C, feed-forward 8C^2 + 8C and 4C^2 + C. Heads
    # split the width without changing it.
    return 18 * c * c + 18 * c


BUILTIN_SPECS: Mapping[str, BuiltinSpec] = {
    "none": BuiltinSpec("none", _no_check, lambda c, p: 0),
    "conv1d": BuiltinSpec("conv1d", check_kernel, _conv_params(1)),
    "conv3d": BuiltinSpec("conv3d", check_kernel, _conv_params(3)),
    "attn1d": BuiltinSpec("attn1d", check_heads, _attention_params),
    "attn3d": BuiltinSpec("attn3d", check_heads, _attention_params),
}


def op_spec(name: str) -> Any:
    """The built-in spec of op type ``name`` (no torch), or a user op's class; UnknownName if none."""
    check_op_name(name)
    return BUILTIN_SPECS[name] if name in BUILTIN_SPECS else get_op(name)
