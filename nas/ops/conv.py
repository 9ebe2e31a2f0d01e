"""Temporal convolutions: ``conv1d`` (kernel k x 1 x 1) and ``conv3d`` (kernel k x 3 x 3).

Two GroupNorm-SiLU-Conv3d stages on a residual, the last conv zero-initialised, as in
ModelScope's TemporalConvLayer: cheap at high resolution because cost is linear in H*W and
the receptive field over frames is fixed by the kernel.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.ops.base import TemporalOp
from nas.ops.layout import VideoGroupNorm, to_frames, to_video
from nas.ops.registry import register_op


class TemporalConv(TemporalOp):
    """Residual temporal convolution; subclasses fix the spatial kernel size."""

    defaults = {"kernel": 3}
    spatial_kernel: ClassVar[int] = 1

    def __init__(self, channels: int, frames: int, norm_groups: int = 32, **params: int):
        super().__init__(channels, frames, norm_groups, **params)
        k, s = self.params["kernel"], self.spatial_kernel
        kernel, padding = (k, s, s), (k // 2, s // 2, s // 2)
        self.norm1 = VideoGroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv3d(channels, channels, kernel, padding=padding)
        self.norm2 = VideoGroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv3d(channels, channels, kernel, padding=padding)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        video = to_video(hidden_states, num_frames)
        h = self.conv1(F.silu(self.norm1(video)))
        h = self.conv2(F.silu(self.norm2(h)))
        return to_frames(video + h)

    @classmethod
    def check_params(cls, channels: int, params: dict[str, int]) -> None:
        kernel = params["kernel"]
        if not (isinstance(kernel, int) and kernel >= 1 and kernel % 2 == 1):
            raise ValueError(f"{cls.name}: kernel must be an odd positive integer, got {kernel!r}")


@register_op
class Conv1d(TemporalConv):
    """Temporal-only convolution (k x 1 x 1): mixes each pixel with itself in nearby frames."""

    name = "conv1d"
    spatial_kernel = 1


@register_op
class Conv3d(TemporalConv):
    """Spatio-temporal convolution (k x 3 x 3): 9x the weights and work of conv1d."""

    name = "conv3d"
    spatial_kernel = 3
