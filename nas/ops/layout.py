"""Tensor layouts shared by the temporal ops: rank 4 only, channels first, for the Neural Engine.

Spatial layers see ``(B*F, C, H, W)``. A temporal op regroups to a channels-first rank-4
layout, ``(B, C, F, H*W)`` for convolutions over frames, ``(B, C, X, S)`` (X independent
positions, S the attended sequence) for attention, with one transpose in and one out.
Shapes are read as Python ints, so tracing keeps shape arithmetic out of the converted graph.
GroupNorm on these rank-4 views normalises the same elements as over ``(C, F, H, W)``.
"""

from __future__ import annotations

import math

import torch


def frames_to_clip(hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B*F, C, H, W)`` -> ``(B, C, F, H*W)``."""
    bf, c, h, w = hidden_states.shape
    return hidden_states.reshape(bf // num_frames, num_frames, c, h * w).permute(0, 2, 1, 3)


def clip_to_frames(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, C, F, H*W)`` -> ``(B*F, C, H, W)``."""
    b, c, f, _ = clip.shape
    return clip.permute(0, 2, 1, 3).reshape(b * f, c, height, width)


def sinusoidal_table(length: int, channels: int) -> torch.Tensor:
    """Sinusoidal position table ``(length, channels)`` (sin on even, cos on odd channels)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(length, channels)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: channels // 2])
    return table
