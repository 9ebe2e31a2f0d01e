"""Quality proxies: how good an architecture is likely to be, without training it to the end.

A registry like the temporal ops: each proxy has a ``name``, says that higher scores are
better, and scores one architecture (``score``); the cheap ones can also score many at once
from the space alone (``score_many``), which the exhaustive front uses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from nas.model import VideoUNet
from nas.model.size import slot_sizes
from nas.ops import get_op
from nas.space import Architecture, SearchSpace

_PROXIES: dict[str, type[QualityProxy]] = {}


class QualityProxy:
    """Scores architectures of one space; higher is better."""

    name: ClassVar[str] = ""
    vectorised: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any):
        self.space = space
        self.seed = seed

    def score(self, architecture: Architecture, trial=None) -> float:
        raise NotImplementedError

    def score_many(self, choices: np.ndarray) -> np.ndarray:
        """Scores of many architectures given as choice-index rows (vectorised proxies only)."""
        raise NotImplementedError


def register_proxy(cls: type[QualityProxy]) -> type[QualityProxy]:
    _PROXIES[cls.name] = cls
    return cls


def get_proxy(name: str) -> type[QualityProxy]:
    if name not in _PROXIES:
        raise KeyError(f"unknown proxy {name!r} (known: {', '.join(list_proxies())})")
    return _PROXIES[name]


def list_proxies() -> list[str]:
    return sorted(_PROXIES)


class _SlotSum(QualityProxy):
    """Sum over slots of a per-choice number (a size measure): trivially vectorised."""

    vectorised = True
    column: ClassVar[str] = ""

    def _per_slot(self) -> list[np.ndarray]:
        if not hasattr(self, "_arrays"):
            frames = self.space.video.frames
            self._arrays = []
            for slot in self.space.slots:
                values = []
                for choice in slot.choices:
                    cost = get_op(choice.op).cost(slot.channels, frames, slot.height, slot.width, choice.param_dict)
                    values.append(getattr(cost, self.column) * choice.count)
                self._arrays.append(np.array(values, dtype=float))
        return self._arrays

    def score(self, architecture: Architecture, trial=None) -> float:
        return float(sum(row[self.column] for row in slot_sizes(self.space, architecture)))

    def score_many(self, choices: np.ndarray) -> np.ndarray:
        total = np.zeros(len(choices))
        for column, values in enumerate(self._per_slot()):
            total += values[choices[:, column]]
        return total


@register_proxy
class ParamsProxy(_SlotSum):
    """Temporal parameters: a capacity baseline (more temporal weights, more motion modelling)."""

    name = "params"
    column = "params"


@register_proxy
class FlopsProxy(_SlotSum):
    """Temporal FLOPs: a compute baseline."""

    name = "flops"
    column = "flops"


@register_proxy
class GradNormProxy(QualityProxy):
    """Training-free: gradient norm of the temporal layers on a few moving-pattern clips.

    Freshly inserted layers are identities whose output projections alone get gradients; the
    size of those gradients under the denoising loss says how much the layers, where they sit,
    could lower that loss in the first steps (as GradNorm-style zero-cost proxies do).
    """

    name = "gradnorm"

    def __init__(self, space: SearchSpace, seed: int = 0, clips: int = 2, spatial_weights=None, **options: Any):
        super().__init__(space, seed)
        from nas.search.clips import moving_pattern_latents

        self.latents = moving_pattern_latents(space, clips, seed)
        generator = torch.Generator().manual_seed(seed)
        self.text = torch.randn(clips, space.text_tokens, space.cross_attention_dim, generator=generator)
        self.noise = torch.randn(self.latents.shape, generator=generator)
        self.spatial_weights = spatial_weights

    def score(self, architecture: Architecture, trial=None) -> float:
        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.spatial_weights, freeze_spatial=True)
        parameters = model.temporal_parameters()
        if not parameters:
            return 0.0
        timesteps = torch.full((len(self.latents),), 500)
        noisy = 0.7 * self.latents + 0.7 * self.noise
        loss = torch.nn.functional.mse_loss(model(noisy, timesteps, self.text).sample, self.noise)
        loss.backward()
        return float(torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None)))
