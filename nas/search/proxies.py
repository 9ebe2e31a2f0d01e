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


@register_proxy
class DistillProxy(QualityProxy):
    """Short training: fit only the temporal layers for ``steps`` steps, score held-out denoising loss.

    The paper's proxy, on cached latents: the spatial part is frozen, the temporal layers train
    on training clips (moving patterns unless ``latents`` are given) and the score is minus the
    denoising loss on held-out clips at fixed noise. Intermediate scores are reported to the
    optuna trial as it trains; a candidate whose score falls below the median of earlier
    candidates at the same step is stopped (optuna's own pruners take single-objective studies
    only, and the search has three objectives), so weak candidates cost a fraction of a run.
    """

    name = "distill"

    def __init__(self, space: SearchSpace, seed: int = 0, steps: int = 20, lr: float = 1e-3, clips: int = 8,
                 report_every: int = 5, latents: torch.Tensor | None = None, spatial_weights=None, **options: Any):
        super().__init__(space, seed)
        from diffusers import DDPMScheduler

        from nas.search.clips import moving_pattern_latents

        data = latents if latents is not None else moving_pattern_latents(space, clips, seed)
        split = max(1, len(data) // 4)
        self.train, self.held_out = data[split:], data[:split]
        self.steps, self.lr, self.report_every = steps, lr, report_every
        self.spatial_weights = spatial_weights
        self.scheduler = DDPMScheduler(num_train_timesteps=1000)
        generator = torch.Generator().manual_seed(seed + 1)
        self.text = torch.zeros(1, space.text_tokens, space.cross_attention_dim)
        self.eval_noise = torch.randn(self.held_out.shape, generator=generator)
        self.eval_t = torch.linspace(100, 900, len(self.held_out)).long()

    def _loss(self, model, clean, noise, timesteps) -> torch.Tensor:
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        text = self.text.expand(len(clean), -1, -1)
        return torch.nn.functional.mse_loss(model(noisy, timesteps, text).sample, noise)

    def score(self, architecture: Architecture, trial=None) -> float:
        import optuna

        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.spatial_weights, freeze_spatial=True)
        parameters = model.temporal_parameters()
        optimizer = torch.optim.AdamW(parameters, lr=self.lr) if parameters else None
        generator = torch.Generator().manual_seed(self.seed)
        value = self._held_out(model)
        for step in range(1, self.steps + 1):
            if optimizer is not None:
                index = torch.randint(0, len(self.train), (2,), generator=generator)
                clean = self.train[index]
                noise = torch.randn(clean.shape, generator=generator)
                timesteps = torch.randint(0, 1000, (len(clean),), generator=generator)
                optimizer.zero_grad()
                self._loss(model, clean, noise, timesteps).backward()
                optimizer.step()
            if step % self.report_every == 0 or step == self.steps:
                value = self._held_out(model)
                if trial is not None and _below_median(trial, step, value):
                    raise optuna.TrialPruned(f"held-out score {value:.4g} below the median at step {step}")
        return value

    @torch.no_grad()
    def _held_out(self, model) -> float:
        return -float(self._loss(model, self.held_out, self.eval_noise, self.eval_t))


def _below_median(trial, step: int, value: float, warmup_trials: int = 4) -> bool:
    """Median-rule pruning on intermediate scores kept as trial user attributes."""
    key = f"proxy_step_{step}"
    trial.set_user_attr(key, value)
    earlier = [t.user_attrs[key] for t in trial.study.get_trials(deepcopy=False)
               if t.number != trial.number and key in t.user_attrs]
    return len(earlier) >= warmup_trials and value < float(np.median(earlier))


def proxy_check(space: SearchSpace, proxy: str, samples: int = 8, seed: int = 0, reference_steps: int = 100,
                progress: bool = True, **options: Any) -> dict[str, Any]:
    """Kendall tau between ``proxy`` and a longer ``distill`` training over ``samples`` architectures."""
    from tqdm import tqdm

    from nas.cost.check import kendall_tau

    candidate = get_proxy(proxy)(space, seed=seed, **options)
    reference = get_proxy("distill")(space, seed=seed, steps=reference_steps, report_every=reference_steps)
    rows = []
    for index in tqdm(range(samples), desc=f"proxy check {proxy}", unit="arch", disable=not progress):
        architecture = space.sample(seed + index)
        rows.append({"arch_id": architecture.id, "proxy": candidate.score(architecture),
                     "reference": reference.score(architecture)})
    tau = kendall_tau(np.array([r["proxy"] for r in rows]), np.array([r["reference"] for r in rows]))
    return {"space": space.name, "proxy": proxy, "samples": samples, "reference_steps": reference_steps,
            "kendall_tau": tau, "architectures": rows}
