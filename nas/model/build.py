"""A VideoUNet from what a user names: a space and an architecture (built), or a saved folder (loaded).

:func:`build` is ``nas build``: it also prices the architecture by the op cost functions
(:func:`~nas.model.size.architecture_size`) and checks the built model against that report, since
the search ranks architectures by those numbers and a model that disagrees with them would be
searched under the wrong size. :func:`load_or_build` is the model input of ``nas export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas import outputs
from nas.errors import NasError
from nas.model.size import architecture_size
from nas.model.video_unet import VideoUNet
from nas.space import Architecture, SearchSpace


@dataclass
class Built:
    """What :func:`build` made: the model, the space and architecture it came from, and the size report."""

    model: VideoUNet
    space: SearchSpace
    architecture: Architecture
    report: dict[str, Any]


def build(
    space: str | Path | SearchSpace,
    arch: str | Path = "reference",
    spatial_weights: str | Path | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> Built:
    """Build ``arch`` of ``space`` on ``device`` (``meta``: count only); save it to ``out`` if given.

    The size report holds params and FLOPs per slot. ``out`` gets the model (save_pretrained) and
    ``architecture.yaml``.
    """
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    if out:
        arch_file = [arch] if isinstance(arch, (str, Path)) else []
        outputs.claim(model_outputs(out), [space.source, *arch_file, *outputs.files_of(spatial_weights)])
    architecture = space.architecture(arch)
    try:
        where = torch.device(device)
    except RuntimeError:
        raise NasError(f"--device {device}: not a torch device") from None
    if where.type == "meta" and (out or spatial_weights):
        raise NasError("--device meta builds nothing to save or load weights into; use cpu or cuda")
    with where:
        model = VideoUNet.from_space(space, architecture, spatial_weights=spatial_weights)
    report = architecture_size(space, architecture)
    built = sum(p.numel() for p in model.parameters())
    if built != report["params_total"]:  # the op cost functions and the model must agree
        raise RuntimeError(f"built model has {built} params, size report says {report['params_total']}")
    if out:
        model.save_pretrained(out)
        architecture.save(Path(out) / "architecture.yaml")
    return Built(model, space, architecture, report)


is_model_config = outputs.json_keys("_class_name", "_diffusers_version")  # a diffusers config (save_pretrained)


def model_outputs(out: str | Path) -> list[outputs.Derived]:
    """What saving a built model to the folder ``out`` writes: its config, weights and architecture file, nas's
    where the config is a diffusers config."""
    out = Path(out)
    config = out / "config.json"
    return [
        outputs.Derived(config, "the model's config", is_model_config),
        outputs.Derived(
            out / "diffusion_pytorch_model.safetensors", "the model's weights", outputs.ours_if(config, is_model_config)
        ),
        outputs.Derived(
            out / "architecture.yaml", "the model's architecture file", outputs.yaml_keys("space", "slots")
        ),
    ]


def load_or_build(
    model: str | Path | None = None, space: str | Path | None = None, arch: str | Path | None = None
) -> VideoUNet:
    """A saved VideoUNet folder (``model``), or ``arch`` (default: reference) of ``space`` with random weights."""
    if space:
        space = SearchSpace.load(space)
        return VideoUNet.from_space(space, space.architecture(arch or "reference"))
    if arch:
        raise NasError(f"--arch {arch}: goes with --space; a --model folder already fixes its architecture")
    from nas.model.loading import load_pretrained

    return load_pretrained(VideoUNet, model)
