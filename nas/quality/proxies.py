"""Quality proxies: how good an architecture is likely to be, without training it to the end.

Registered like the temporal ops (:mod:`nas.registry`): each proxy has a ``name``, says that higher scores are
better, and scores one architecture (``score``); the cheap ones can also score many at once
from the space alone (``score_many``), which the exhaustive front uses.
"""

from __future__ import annotations

import inspect
import typing
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from nas.errors import NasError
from nas.model import VideoUNet
from nas.model.size import size_arrays, slot_sizes
from nas.options import renamed_keys, renamed_kwargs
from nas.registry import Registry
from nas.space import Architecture, SearchSpace

# The built-in proxies; the zero-cost ones are imported on first use.
PROXY_REGISTRY: Registry[type[QualityProxy]] = Registry(
    "proxy",
    "nas.proxies",
    {
        "params": "nas.quality.proxies:ParamsProxy",
        "flops": "nas.quality.proxies:FlopsProxy",
        "gradnorm": "nas.quality.proxies:GradNormProxy",
        "distill": "nas.quality.proxies:DistillProxy",
        "synflow": "nas.quality.zero_cost:SynflowProxy",
        "naswot": "nas.quality.zero_cost:NaswotProxy",
        "tsens": "nas.quality.zero_cost:TemporalSensitivityProxy",
    },
)


class QualityProxy:
    """Scores architectures of one space; higher is better."""

    name: ClassVar[str] = ""
    # how the proxy was validated, one line, printed by `nas search` (docs/quality.md)
    validation: ClassVar[str] = "not validated against a ground truth (check it with `nas proxy check --world`)"
    vectorised: ClassVar[bool] = False
    reports: ClassVar[bool] = False  # reports intermediate scores to a Curve (training proxies)

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any):
        self.space = space
        self.seed = seed

    def score(self, architecture: Architecture, curve=None) -> float:
        """The score; a proxy that ``reports`` passes intermediate ones to ``curve`` (see nas.search.curves)."""
        raise NotImplementedError

    def score_many(self, choices: np.ndarray) -> np.ndarray:
        """Scores of many architectures given as choice-index rows (vectorised proxies only)."""
        raise NotImplementedError


def register_proxy(cls: type[QualityProxy]) -> type[QualityProxy]:
    """Class decorator: make ``cls`` usable as ``--proxy NAME`` (its ``name``); a taken name is refused."""
    return PROXY_REGISTRY.register(cls)


def get_proxy(name: str) -> type[QualityProxy]:
    """The class registered as ``name``; UnknownName (a NasError and KeyError naming the known proxies) if none."""
    return PROXY_REGISTRY.get(name)


def list_proxies() -> list[str]:
    """Names of all registered proxies."""
    return PROXY_REGISTRY.names()


def describe_proxies() -> list[dict[str, Any]]:
    """``nas proxies``: each proxy's name, source and docstring line."""
    return PROXY_REGISTRY.describe()


def check_options(proxy_cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the proxy's constructor and coerced to the types it declares.

    Every option must be a named parameter (a typo is an error, not a default). Values come from
    the command line as YAML scalars, where ``1e-3`` is a string: a number the signature asks for
    is converted here, so that a bad value is one line now, not a traceback in the first trial.
    """
    options = renamed_keys(options, getattr(proxy_cls.__init__, "renamed", {}), "--proxy-option")
    signature = inspect.signature(proxy_cls.__init__)
    known = [
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in ("self", "space", "seed")
    ]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise NasError(
            f"--proxy-option {unknown[0]}: the {proxy_cls.name} proxy takes {', '.join(known) or 'no options'}"
        )
    hints = typing.get_type_hints(proxy_cls.__init__)
    return {key: _coerce(key, value, hints.get(key), proxy_cls.name) for key, value in options.items()}


def _coerce(key: str, value: Any, hint: Any, proxy: str) -> Any:
    kinds = typing.get_args(hint) or (hint,)
    if value is None and type(None) in kinds:
        return None
    for kind in (int, float):  # int first: 40 stays an int where int is allowed
        if kind in kinds and not isinstance(value, bool):
            try:
                number = kind(value) if kind is float or isinstance(value, (int, str)) else None
            except (TypeError, ValueError):
                continue
            if number is not None and (kind is float or float(value) == number):
                return number
    if (str in kinds or Path in kinds) and isinstance(value, (str, Path)):
        return value
    if hint is None or not {int, float, str, Path} & set(kinds):
        return value  # a type the command line cannot express (tensors): the Python API's business
    names = " or ".join(k.__name__ for k in kinds if k in (int, float, str, Path))
    raise NasError(f"--proxy-option {key}={value}: the {proxy} proxy takes {names} for {key}")


class _SlotSum(QualityProxy):
    """Sum over slots of a per-choice number (a size measure): trivially vectorised."""

    vectorised = True
    column: ClassVar[str] = ""

    @cached_property
    def _per_slot(self) -> list[np.ndarray]:
        return size_arrays(self.space, self.column)

    def score(self, architecture: Architecture, curve=None) -> float:
        return float(sum(row[self.column] for row in slot_sizes(self.space, architecture)))

    def score_many(self, choices: np.ndarray) -> np.ndarray:
        total = np.zeros(len(choices))
        for column, values in enumerate(self._per_slot):
            total += values[choices[:, column]]
        return total


@register_proxy
class ParamsProxy(_SlotSum):
    """Temporal parameters: a capacity baseline (more temporal weights, more motion modelling)."""

    name = "params"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau -0.11/-0.01 against the two ground-truth seeds on held-out "
        "denoising, -0.06/-0.28 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )
    column = "params"


@register_proxy
class FlopsProxy(_SlotSum):
    """Temporal FLOPs: a compute baseline."""

    name = "flops"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau 0.03/0.15 against the two ground-truth seeds on held-out "
        "denoising, 0.14/-0.29 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )
    column = "flops"


@register_proxy
class GradNormProxy(QualityProxy):
    """Training-free: gradient norm of the temporal layers on a few clips (``data``) or moving patterns.

    Freshly inserted layers are identities whose output projections alone get gradients; the
    size of those gradients under the denoising loss says how much the layers, where they sit,
    could lower that loss in the first steps (as GradNorm-style zero-cost proxies do).
    """

    name = "gradnorm"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau 0.06/0.18 against the two ground-truth seeds on held-out "
        "denoising, 0.24/-0.10 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )

    def __init__(
        self, space: SearchSpace, seed: int = 0, clips: int = 2, spatial_weights=None, data=None, **options: Any
    ):
        super().__init__(space, seed)
        generator = torch.Generator().manual_seed(seed)
        if data is None:
            from nas.quality.clips import moving_pattern_latents

            self.latents = moving_pattern_latents(space, clips, seed)
            self.text = torch.randn(clips, space.text_tokens, space.cross_attention_dim, generator=generator)
        else:  # the clips and captions of an encoded folder, as the distill proxy reads them
            self.latents, self.text = DistillProxy._clips(space, clips, seed, data, None)
        self.noise = torch.randn(self.latents.shape, generator=generator)
        self.spatial_weights = spatial_weights

    def score(self, architecture: Architecture, curve=None) -> float:
        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.spatial_weights, freeze_spatial=True)
        parameters = model.temporal_parameters()
        if not parameters:
            return 0.0
        timesteps = torch.full((len(self.latents),), 500)
        noisy = 0.7 * self.latents + 0.7 * self.noise
        loss = torch.nn.functional.mse_loss(model(noisy, timesteps, self.text).sample, self.noise)
        loss.backward()
        return float(torch.sqrt(sum((p.grad**2).sum() for p in parameters if p.grad is not None)))


@register_proxy
class DistillProxy(QualityProxy):
    """Short training: fit only the temporal layers for ``train_steps`` optimizer steps, score held-out denoising loss.

    The paper's proxy, on cached latents: the spatial part is frozen, the temporal layers train
    on training clips and the score is minus the denoising loss on held-out clips at fixed
    noise. The clips are the videos of a ``nas data encode`` folder (``data``, with their text
    embeddings) or, without one, synthetic moving patterns. Every ``report_every`` steps the
    held-out score goes to the search's pruner (:mod:`nas.search.curves`), so weak candidates
    stop after a fraction of a run.
    """

    name = "distill"
    validation = (
        "not validated: on the tiny world (recipe 3) at 3/6/12 steps, Kendall tau -0.03/0.27/0.39 and -0.21/0.33/0.58 against "
        "the two ground-truth seeds on held-out denoising (they agree at 0.64: docs/quality.md)"
    )
    reports = True

    @renamed_kwargs(steps="train_steps")
    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        train_steps: int = 20,
        lr: float = 1e-3,
        clips: int = 8,
        report_every: int = 5,
        data: str | Path | None = None,
        latents: torch.Tensor | None = None,
        spatial_weights=None,
        **options: Any,
    ):
        super().__init__(space, seed)
        from nas.data.schedule import noise_scheduler

        if train_steps < 1 or report_every < 1 or clips < 2 or not lr > 0:
            raise NasError(
                f"--proxy distill: train_steps and report_every must be >= 1, clips >= 2 and lr > 0 "
                f"(got {train_steps}, {report_every}, {clips}, {lr})"
            )
        clean, text = self._clips(space, clips, seed, data, latents)
        split = max(1, len(clean) // 4)
        self.clip_ids = self._clip_ids(data, len(clean), seed)
        self.order: list[list[int]] = []  # the training batches of the last score(), as drawn
        self.train, self.held_out = (clean[split:], text[split:]), (clean[:split], text[:split])
        self.train_steps, self.lr, self.report_every = train_steps, lr, report_every
        self.spatial_weights = spatial_weights
        self.scheduler = noise_scheduler()  # SD1.5's: the backbone's (nas.data.schedule)
        generator = torch.Generator().manual_seed(seed + 1)
        self.eval_noise = torch.randn(self.held_out[0].shape, generator=generator)
        self.eval_t = torch.linspace(100, 900, split).long()

    @staticmethod
    def _clips(space: SearchSpace, clips: int, seed: int, data, latents) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents, text embeddings) of the clips: given tensors, an encoded folder, or moving patterns."""
        if data is not None:
            from nas.data.latents import LatentDataset

            dataset = LatentDataset(data)
            v = space.video
            dataset.check_model(
                v.frames,
                v.latent_channels,
                v.latent_height,
                v.latent_width,
                space.cross_attention_dim,
                space.text_tokens,
                f"space {space.name}",
            )
            if len(dataset.videos) < 2:
                raise NasError(f"{data}: the distill proxy needs at least 2 video clips, found {len(dataset.videos)}")
            batch = dataset.get(dataset.videos[:clips])
            return batch["latents"], batch["text"]
        if latents is None:
            from nas.quality.clips import moving_pattern_latents

            latents = moving_pattern_latents(space, clips, seed)
        return latents, torch.zeros(len(latents), space.text_tokens, space.cross_attention_dim)

    @staticmethod
    def _clip_ids(data, count: int, seed: int) -> list[str]:
        """Names of the clips in use, held-out ones first: ``FOLDER/source`` or ``pattern:SEED:i``."""
        if data is None:
            return [f"pattern:{seed}:{i}" for i in range(count)]
        from nas.data.latents import LatentDataset

        dataset = LatentDataset(data)
        return [f"{Path(data).name}/{dataset.samples[i]['source']}" for i in dataset.videos[:count]]

    @property
    def provenance(self) -> dict[str, Any]:
        """What the last run saw: seed, training clips, its batches (clip names), held-out clips."""
        split = len(self.held_out[0])
        return {
            "seed": self.seed,
            "train_steps": self.train_steps,
            "train_clips": sorted(self.clip_ids[split:]),
            "order": [[self.clip_ids[i] for i in batch] for batch in self.order],
            "eval_clips": self.clip_ids[:split],
        }

    def _loss(self, model, clean, text, noise, timesteps) -> torch.Tensor:
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        return torch.nn.functional.mse_loss(model(noisy, timesteps, text).sample, noise)

    def score(self, architecture: Architecture, curve=None) -> float:
        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.spatial_weights, freeze_spatial=True)
        parameters = model.temporal_parameters()
        optimizer = torch.optim.AdamW(parameters, lr=self.lr) if parameters else None
        generator = torch.Generator().manual_seed(self.seed)
        value = self._held_out(model)
        clips, texts = self.train
        self.order = []
        for step in range(1, self.train_steps + 1):
            if optimizer is not None:
                index = torch.randint(0, len(clips), (2,), generator=generator)
                self.order.append((index + len(self.held_out[0])).tolist())
                noise = torch.randn(clips[index].shape, generator=generator)
                timesteps = torch.randint(0, 1000, (len(index),), generator=generator)
                optimizer.zero_grad()
                self._loss(model, clips[index], texts[index], noise, timesteps).backward()
                optimizer.step()
            if step % self.report_every == 0 or step == self.train_steps:
                value = self._held_out(model)
                if curve is not None:
                    curve.report(value, step)
        return value

    @torch.no_grad()
    def _held_out(self, model) -> float:
        clean, text = self.held_out
        return -float(self._loss(model, clean, text, self.eval_noise, self.eval_t))
