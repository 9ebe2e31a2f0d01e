"""One flat config per training stage: a YAML file (``examples/*.yaml``) plus command-line overrides.

A config is a few plain values (nanoGPT style), read with yaml.safe_load, checked against the
fields below (unknown keys and wrong types are one-line errors naming the file), and written
back into the run folder as ``config.yaml`` so a run records exactly what it trained with.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from nas.errors import NasError
from nas.options import renamed_keys
from nas.space.yaml_io import read_yaml_mapping, write_yaml

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Fields every stage has: data, run folder, optimisation, schedule of logs/evals/checkpoints."""

    RENAMED: ClassVar[dict[str, str]] = {}  # old key -> new key, still read (with one warning) for a release
    data: str = ""  # folder written by `nas data encode`
    out: str = ""  # run folder
    max_steps: int = 1000  # optimizer steps of the whole run (also after resuming)
    batch_size: int = 1  # clips per process per step
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up, then constant
    max_grad_norm: float = 1.0
    ema_decay: float | None = 0.999  # null: no EMA; the saved model is then the raw weights
    image_ratio: float = 0.0  # share of steps trained on image batches (stills + single frames)
    holdout: int = 0  # clips kept out of training for evaluation
    eval_every: int = 0  # 0: evaluate only at the start and the end
    checkpoint_every: int = 500
    log_every: int = 10
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    gradient_checkpointing: bool = False
    seed: int = 0

    def check(self, source: str) -> None:
        if not self.data or not self.out:
            raise NasError(f"{source}: 'data' and 'out' are required (or --data / --out)")
        if self.mixed_precision not in MIXED_PRECISION:
            raise NasError(
                f"{source}: mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}"
            )
        for name in ("max_steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise NasError(f"{source}: {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.image_ratio <= 1.0:
            raise NasError(f"{source}: image_ratio must be in [0, 1], got {self.image_ratio}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise NasError(f"{source}: ema_decay must be in [0, 1) or null, got {self.ema_decay}")


@dataclass
class DistillConfig(TrainConfig):
    """Stage 1: train the searched architecture; optionally distil a teacher's outputs and block features."""

    space: str = ""  # search space YAML
    arch: str = "reference"  # a named architecture of the space or an ARCH.yaml
    spatial_weights: str | None = None  # local 2D UNet weights for the spatial part
    freeze_spatial: bool = False
    teacher: str | None = None  # a VideoUNet, UNetMotionModel or UNet2DConditionModel (2D: recovery) folder
    loss_denoise: float = 1.0  # MSE of the predicted noise to the true noise
    loss_output: float = 1.0  # MSE to the teacher's prediction (needs a teacher)
    loss_feature: float = 1.0  # sum over blocks of MSE to the teacher's block outputs (needs a teacher)

    def check(self, source: str) -> None:
        super().check(source)
        if not self.space:
            raise NasError(f"{source}: 'space' is required (or --space)")


@dataclass
class AdversarialConfig(TrainConfig):
    """Stage 2 of training (the paper's stage 3): adversarial fine-tuning to a few-step generator."""

    RENAMED: ClassVar[dict[str, str]] = {"steps": "sampling_steps"}
    init: str = ""  # the distill run folder (its model/ is generator and discriminator)
    sampling_steps: int = 4  # denoising steps of the sampler; their timesteps are the fixed training set
    loss_adversarial: float = 1.0  # hinge generator loss through the discriminator
    loss_reconstruction: float = 1.0  # MSE of the generator's clean-latent estimate to the data
    disc_lr: float = 1e-4  # discriminator heads
    disc_heads: int = 8  # attention heads of the heads' temporal self-attention
    disc_max_timestep: int = 500  # real and fake latents are re-noised at t' < this for the discriminator
    eval_samples: int = 8  # held-out clips for the sample metric (4-step samples of their captions vs. them)

    def check(self, source: str) -> None:
        super().check(source)
        if not self.init:
            raise NasError(f"{source}: 'init' is required (or --init)")
        if self.sampling_steps < 1 or not 1 <= self.disc_max_timestep <= 1000:
            raise NasError(f"{source}: sampling_steps must be >= 1 and disc_max_timestep in [1, 1000]")


@dataclass
class DecoderConfig(TrainConfig):
    """Recovery of a pruned VAE decoder: it learns to decode as the decoder it was pruned from."""

    init: str = ""  # the pruned AutoencoderKL folder (`nas prune --decoder`): the student
    teacher: str = ""  # the VAE it was pruned from (an AutoencoderKL folder, or a pipeline folder with vae/)
    loss_output: float = 1.0  # MSE of the student's frames to the teacher's
    loss_feature: float = 1.0  # sum over the decoder's mid and up blocks of MSE to the teacher's outputs

    def check(self, source: str) -> None:
        super().check(source)
        if not self.init or not self.teacher:
            raise NasError(f"{source}: 'init' and 'teacher' are required (or --init / --teacher)")


def load_config(cls: type[TrainConfig], path: str | Path | None, overrides: dict[str, Any]):
    """``cls`` from the YAML at ``path`` (optional), then ``overrides`` (key -> value, null allowed)."""
    data = read_yaml_mapping(path) if path else {}
    source = str(path) if path else "command line"
    data, overrides = renamed_keys(data, cls.RENAMED, source), renamed_keys(overrides, cls.RENAMED, "--set")
    known = {f.name: f for f in fields(cls)}
    data.pop("stage", None)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise NasError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(source, name, hints[name], value) for name, value in data.items()}
    for name, value in overrides.items():
        if name not in known:
            raise NasError(f"--set {name}: unknown key (known: {', '.join(known)})")
        values[name] = _coerce("command line", name, hints[name], value)
    config = cls(**values)
    config.check(source)
    return config


def save_config(config: TrainConfig, path: str | Path, stage: str) -> None:
    write_yaml(path, {"stage": stage, **dataclasses.asdict(config)})


def _coerce(source: str, name: str, hint: Any, value: Any) -> Any:
    """Check ``value`` against the field's annotation; ints are accepted where floats are asked."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if kind is bool and isinstance(value, bool):
            return value
        if kind in (int, str) and isinstance(value, kind) and not isinstance(value, bool):
            return value
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise NasError(f"{source}: {name} must be {names}, got {value!r}")
