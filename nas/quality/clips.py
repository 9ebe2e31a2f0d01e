"""Synthetic moving-pattern latent clips for proxies when no real latents are given.

Each clip is a smooth random pattern translated by a constant velocity across frames, so
that only layers which relate frames can predict how it moves.
"""

from __future__ import annotations

import torch

from nas.space import SearchSpace


def moving_pattern_latents(space: SearchSpace, clips: int, seed: int = 0) -> torch.Tensor:
    """``(clips, C, F, H, W)`` latents with unit-ish variance."""
    v = space.video
    generator = torch.Generator().manual_seed(seed)
    h, w = v.latent_height, v.latent_width
    base = torch.randn(clips, v.latent_channels, 2 * h, 2 * w, generator=generator)
    base = torch.nn.functional.avg_pool2d(base, 3, stride=1, padding=1)  # smooth: a trackable pattern
    base = base / base.std()
    velocity = torch.randint(-2, 3, (clips, 2), generator=generator)
    frames = []
    for f in range(v.frames):
        shifted = [
            torch.roll(base[i], shifts=(int(velocity[i, 0]) * f, int(velocity[i, 1]) * f), dims=(1, 2))
            for i in range(clips)
        ]
        frames.append(torch.stack(shifted)[:, :, :h, :w])
    return torch.stack(frames, dim=2)
