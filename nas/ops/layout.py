"""Tensor layouts shared by the temporal ops, written to convert to Core ML.

Spatial layers see ``(B*F, C, H, W)``; temporal ops regroup to ``(B, C, F, H, W)`` and back.
Shapes are read as Python ints and no tensor has rank above 5 (Core ML's limit).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def to_video(hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B*F, C, H, W)`` -> ``(B, C, F, H, W)``."""
    bf, c, h, w = hidden_states.shape
    return hidden_states.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def to_frames(video: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W)`` -> ``(B*F, C, H, W)``."""
    b, c, f, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


class VideoGroupNorm(nn.GroupNorm):
    """GroupNorm over (C, F, H, W) of a 5D video, applied on a 4D view.

    Core ML lowers GroupNorm on a 5D tensor to a rank-6 reshape it rejects; the 4D view
    ``(B, C, F*H, W)`` normalises the same elements, so the result is identical.
    """

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = video.shape
        return super().forward(video.reshape(b, c, f * h, w)).reshape(b, c, f, h, w)


def sinusoidal_table(length: int, channels: int) -> torch.Tensor:
    """Sinusoidal position table ``(length, channels)`` (sin on even, cos on odd channels)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(length, channels)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: channels // 2])
    return table
