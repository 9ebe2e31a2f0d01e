"""Motion metrics read the sample: a blob moved by hand scores what it does, whatever the caption says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.quality import motion

BACKGROUND = torch.zeros(4, 16, 16)  # the background's latent (C, h, w)


def blobs(direction: str, frames: int = 4, speed: float = 1.5, size: int = 16) -> torch.Tensor:
    """(1, 4, F, size, size) latents of a 3x3 blob moving ``speed`` latent px a frame from the centre."""
    dx, dy = motion.DIRECTIONS[direction]
    out = torch.zeros(1, 4, frames, size, size)
    for f in range(frames):
        x = round(size / 2 - dx * speed * (frames - 1) / 2 + dx * speed * f)
        y = round(size / 2 - dy * speed * (frames - 1) / 2 + dy * speed * f)
        out[0, :, f, y - 1 : y + 2, x - 1 : x + 2] = 2.0
    return out


def test_direction_speed_and_dynamics_follow_the_sample():
    directions = list(motion.DIRECTIONS)
    samples = torch.cat([blobs(d) for d in directions])
    right = motion.per_sample(samples, BACKGROUND, directions, ["quickly"] * 4)
    assert right["direction_accuracy"].tolist() == [1, 1, 1, 1]
    assert np.all(right["speed_error"] < 0.25) and np.all(right["dynamic_degree"] > 1)
    assert np.all(right["temporal_consistency"] > 0.9)
    # the same captions on the clips played backwards: every direction is wrong
    backwards = motion.per_sample(samples.flip(2), BACKGROUND, directions, ["quickly"] * 4)
    assert backwards["direction_accuracy"].sum() == 0
    # a still object: nothing moves, the speed is all error
    still = motion.per_sample(samples[:, :, :1].expand_as(samples), BACKGROUND, directions, ["quickly"] * 4)
    assert np.all(still["dynamic_degree"] == 0) and np.allclose(still["speed_error"], 1.5)


def test_noise_is_near_chance_and_intervals_cover_the_mean():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((400, 4, 4, 8, 8), generator=generator)
    values = motion.per_sample(noise, BACKGROUND[:, :8, :8], ["left"] * 400, ["slowly"] * 400)
    summary = motion.summarize(values, seed=0)
    accuracy = summary["direction_accuracy"]
    assert 0.15 < accuracy["mean"] < 0.35  # chance is 25% over four directions
    assert accuracy["ci90"][0] < accuracy["mean"] < accuracy["ci90"][1] and accuracy["samples"] == 400
    assert summary["temporal_consistency"]["mean"] < 0.3  # independent frames are not one object


def test_mismatched_captions_are_refused():
    with pytest.raises(ValueError, match="2 samples but 1 directions"):
        motion.per_sample(torch.cat([blobs("left"), blobs("up")]), BACKGROUND, ["left"], ["slowly"])
