"""Motion metrics of sampled clips: does the object move the way its caption says?

Every metric reads the *sample*: the object's centre in each frame is the centroid of the latent
pixels' squared distance from the background's latent, less that frame's median distance (so that a
uniform haze of leftover noise pulls it nowhere), in latent pixels. With ``D`` the centre's
displacement from the first frame to the last and ``u`` the caption's direction:

- ``direction_accuracy``: share of samples whose dominant displacement (the one of left, right,
  up, down that ``D`` points along most) is the caption's; chance is 25%;
- ``speed_error``: | |D| / (frames - 1) - the caption's speed |, latent pixels a frame (lower is better);
- ``dynamic_degree``: the centre's mean travel between consecutive frames, latent pixels a frame
  (0: nothing moves; the world's clips move 1 or 1.5);
- ``temporal_consistency``: mean cosine similarity of consecutive frames' foregrounds (latent less
  background, less its spatial mean per channel), the later one shifted back by the centre's rounded
  move: 1 when the object stays itself, about 0 for independent noise.

:func:`summarize` gives each metric's mean with a 90% bootstrap interval over samples (scipy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from nas.data.world import DIRECTIONS, SPEEDS

METRICS = ("direction_accuracy", "speed_error", "dynamic_degree", "temporal_consistency")
HIGHER_IS_BETTER = {
    "direction_accuracy": True,
    "speed_error": False,
    "dynamic_degree": True,
    "temporal_consistency": True,
}
UNITS = list(DIRECTIONS.values())


def centres(latents: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Object centre per frame, (B, F, 2) as (x, y) in latent pixels, of (B, C, F, h, w) latents."""
    distance = ((latents - background[None, :, None]) ** 2).sum(1)  # (B, F, h, w)
    floor = distance.flatten(-2).median(-1).values[..., None, None]
    weight = (distance - floor).clamp_min(0)
    weight = weight / weight.sum((-1, -2), keepdim=True).clamp_min(1e-8)
    h, w = weight.shape[-2:]
    ys, xs = torch.arange(h, dtype=weight.dtype), torch.arange(w, dtype=weight.dtype)
    return torch.stack([(weight.sum(-2) * xs).sum(-1), (weight.sum(-1) * ys).sum(-1)], -1)


def per_sample(latents: torch.Tensor, background: torch.Tensor, directions: list[str], speeds: list[str]) -> dict:
    """Every metric for every sample (numpy arrays of length B); ``directions``/``speeds`` are the captions'."""
    if len(directions) != len(latents) or len(speeds) != len(latents):
        raise ValueError(f"{len(latents)} samples but {len(directions)} directions and {len(speeds)} speeds")
    c = centres(latents, background)
    frames = latents.shape[2]
    displacement = c[:, -1] - c[:, 0]
    units = torch.tensor(UNITS, dtype=displacement.dtype)
    picked = (displacement @ units.T).argmax(-1)
    truth = torch.tensor([list(DIRECTIONS).index(d) for d in directions])
    speed = torch.tensor([SPEEDS[s] for s in speeds], dtype=displacement.dtype)
    steps = (c[:, 1:] - c[:, :-1]).norm(dim=-1)
    foreground = latents - background[None, :, None]
    foreground = foreground - foreground.mean((-1, -2), keepdim=True)
    similarity = []
    for f in range(frames - 1):
        move = (c[:, f + 1] - c[:, f]).round().long()
        later = torch.stack(
            [torch.roll(foreground[b, :, f + 1], (-int(move[b, 1]), -int(move[b, 0])), (-2, -1)) for b in range(len(c))]
        )
        similarity.append(
            torch.nn.functional.cosine_similarity(foreground[:, :, f].flatten(1), later.flatten(1), dim=-1)
        )
    return {
        "direction_accuracy": (picked == truth).double().numpy(),
        "speed_error": (displacement.norm(dim=-1) / max(frames - 1, 1) - speed).abs().double().numpy(),
        "dynamic_degree": steps.mean(-1).double().numpy(),
        "temporal_consistency": torch.stack(similarity, -1).mean(-1).double().numpy(),
    }


def summarize(values: dict[str, np.ndarray], seed: int = 0, resamples: int = 1000) -> dict[str, dict[str, Any]]:
    """Each metric's mean over samples and its 90% percentile-bootstrap interval."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        if len(v) > 1 and np.ptp(v) > 0:
            ci = stats.bootstrap(
                (v,), np.mean, confidence_level=0.9, n_resamples=resamples, method="percentile", random_state=seed
            ).confidence_interval
            interval = [round(float(ci.low), 4), round(float(ci.high), 4)]
        else:
            interval = [round(float(v.mean()), 4)] * 2
        out[name] = {"mean": round(float(v.mean()), 4), "ci90": interval, "samples": len(v)}
    return out
