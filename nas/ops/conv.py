"""Temporal convolutions: ``conv1d`` (kernel k x 1 x 1) and ``conv3d`` (kernel k x 3 x 3).

Two GroupNorm-SiLU-conv stages on a residual, the last conv zero-initialised, as in
ModelScope's TemporalConvLayer: cheap at high resolution because cost is linear in H*W and
the receptive field over frames is fixed by the kernel.

The parameters are ``nn.Conv3d`` ones (checkpoints keep their names and shapes), but no
rank-5 tensor is made: the Neural Engine does not run 3D convolutions (public reports,
latency_tables/README.md). ``conv1d`` is one Conv2d with kernel (k, 1) over the
``(B, C, F, H*W)`` layout; ``conv3d`` is a 3x3 Conv2d per frame whose output channels hold
the k temporal taps, summed over frames shifted by -k//2 .. k//2 (k shifted 2D convs in one op).
Both compute exactly what the Conv3d would, with the same FLOPs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.ops import ane
from nas.ops.base import TemporalOp
from nas.ops.layout import clip_to_frames, frames_to_clip
from nas.ops.registry import BUILTIN_DEFAULTS, register_op
from nas.ops.spec import check_kernel


class TemporalConv(TemporalOp):
    """Residual temporal convolution; subclasses fix the spatial kernel size and how it runs in 2D."""

    defaults = BUILTIN_DEFAULTS["conv1d"]  # conv3d's are the same
    spatial_kernel: ClassVar[int] = 1

    def __init__(self, channels: int, frames: int, norm_groups: int = 32, **params: int):
        super().__init__(channels, frames, norm_groups, **params)
        k, s = self.params["kernel"], self.spatial_kernel
        kernel, padding = (k, s, s), (k // 2, s // 2, s // 2)
        self.norm1 = nn.GroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv3d(channels, channels, kernel, padding=padding)
        self.norm2 = nn.GroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv3d(channels, channels, kernel, padding=padding)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        _, _, height, width = hidden_states.shape
        clip = frames_to_clip(hidden_states, num_frames)  # (B, C, F, H*W)
        h = self.temporal_conv(F.silu(ane.group_norm(clip, self.norm1)), self.conv1, height, width)
        h = self.temporal_conv(F.silu(ane.group_norm(h, self.norm2)), self.conv2, height, width)
        return hidden_states + clip_to_frames(h, height, width)

    def temporal_conv(self, clip: torch.Tensor, conv: nn.Conv3d, height: int, width: int) -> torch.Tensor:
        """``conv`` applied to ``(B, C, F, H*W)`` with rank-4 tensors; returns the same layout."""
        raise NotImplementedError

    @classmethod
    def check_params(cls, channels: int, params: dict[str, int]) -> None:
        check_kernel(cls.name, channels, params)


@register_op
class Conv1d(TemporalConv):
    """Temporal-only convolution (k x 1 x 1): mixes each pixel with itself in nearby frames."""

    name = "conv1d"
    spatial_kernel = 1

    def temporal_conv(self, clip, conv, height, width):
        # A (k, 1, 1) Conv3d over (F, H, W) is a (k, 1) Conv2d over (F, H*W).
        return F.conv2d(clip, conv.weight[..., 0], conv.bias, padding=(conv.padding[0], 0))


@register_op
class Conv3d(TemporalConv):
    """Spatio-temporal convolution (k x 3 x 3): 9x the weights and work of conv1d."""

    name = "conv3d"
    spatial_kernel = 3

    def temporal_conv(self, clip, conv, height, width):
        b, c, f, _ = clip.shape
        k, pad = conv.kernel_size[0], conv.padding[0]
        # Tap t of the kernel, as a 3x3 Conv2d on every frame: output channels [t*C, (t+1)*C).
        taps = conv.weight.permute(2, 0, 1, 3, 4).reshape(k * c, c, *conv.kernel_size[1:])
        per_frame = F.conv2d(clip_to_frames(clip, height, width), taps, padding=conv.padding[1:])
        per_frame = F.pad(per_frame.reshape(b, f, k * c, height * width), (0, 0, 0, 0, pad, pad))
        # Output frame i sums tap t of input frame i + t - pad (zero outside the clip).
        out = per_frame[:, :f, :c]
        for t in range(1, k):
            out = out + per_frame[:, t : t + f, t * c : (t + 1) * c]
        return out.permute(0, 2, 1, 3) + conv.bias[None, :, None, None]
