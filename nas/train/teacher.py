"""The distillation teacher and the student's feature projections (BK-SDM style).

A teacher is a saved VideoUNet folder, a diffusers ``UNetMotionModel`` (AnimateDiff) folder, or a
plain 2D ``UNet2DConditionModel`` folder (e.g. SD1.5's ``unet/``, or a pipeline folder holding
one), which runs frame by frame: that is how a pruned backbone recovers from the UNet it was
pruned from (BK-SDM). All give their prediction and every block's output under diffusers' block
names (``down_blocks.i``, ``mid_block``, ``up_blocks.i``), with frames in the batch. Where the
student's block is narrower or wider than the teacher's, a trainable 1x1 convolution maps the
student's feature to the teacher's width before the MSE; equal widths need none.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from nas.errors import NasError
from nas.model import VideoUNet
from nas.model.loading import load_pretrained


class BlockOutputs:
    """The outputs of named submodules of ``model`` at its last forward, kept by forward hooks
    (how the outputs of diffusers' blocks are read without changing the model)."""

    def __init__(self, model: nn.Module, names):
        self.outputs: dict[str, torch.Tensor] = {}
        for name in names:
            model.get_submodule(name).register_forward_hook(self._keep(name))

    def take(self) -> dict[str, torch.Tensor]:
        """The outputs of the last forward (and forget them: no tensor kept alive past its step)."""
        outputs, self.outputs = self.outputs, {}
        return outputs

    def _keep(self, name: str):
        def hook(module, args, output):
            self.outputs[name] = output[0] if isinstance(output, tuple) else output

        return hook


class Projections(nn.ModuleDict):
    """A 1x1 convolution per block the student and teacher share, from the student's width to the
    teacher's (identity where they are equal), in the student's block order (a fixed parameter
    order, which the optimizer state in a checkpoint relies on)."""

    def __init__(self, own: dict[str, int], teacher: dict[str, int]):
        super().__init__(
            {
                name.replace(".", "_"): nn.Conv2d(own[name], teacher[name], 1)
                if own[name] != teacher[name]
                else nn.Identity()
                for name in own
                if name in teacher
            }
        )

    def project(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {_name(k): p(features[_name(k)]) for k, p in self.items()}


class Teacher(nn.Module):
    """A frozen model; ``teacher(x_t, t, text)`` -> (prediction (B, C, F, H, W), {block: feature})."""

    def __init__(self, model: nn.Module, channels: dict[str, int]):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.channels = channels
        # diffusers blocks: read their outputs with forward hooks
        self._blocks = None if isinstance(model, VideoUNet) else BlockOutputs(model, channels)

    @torch.no_grad()
    def forward(self, sample, timestep, text):
        if isinstance(self.model, VideoUNet):
            out = self.model(sample, timestep, text, return_features=True)
            return out.sample, out.features
        batch, channels, frames, height, width = sample.shape
        text = text.repeat_interleave(frames, 0)
        if self.is_2d:  # frames folded into the batch, as the VideoUNet's spatial layers see them
            flat = sample.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
            pred = self.model(flat, timestep.repeat_interleave(frames, 0), encoder_hidden_states=text).sample
            pred = pred.reshape(batch, frames, -1, height, width).permute(0, 2, 1, 3, 4)
            return pred, self._blocks.take()
        pred = self.model(sample, timestep, encoder_hidden_states=text).sample
        return pred, self._blocks.take()

    @property
    def is_2d(self) -> bool:
        """A plain text-to-image UNet: the student then trains as an image model (frames = 1, no temporal layers)."""
        from diffusers import UNet2DConditionModel

        return isinstance(self.model, UNet2DConditionModel)


def load_teacher(path: str | Path) -> Teacher:
    """A VideoUNet, UNetMotionModel or UNet2DConditionModel folder (local, safetensors) as a frozen Teacher."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "unet" / "config.json").is_file():
        path = path / "unet"  # a pipeline folder
    config_file = path / "config.json"
    if not config_file.is_file():
        raise NasError(
            f"{path}: no config.json (a teacher is a saved VideoUNet, UNetMotionModel or UNet2DConditionModel folder)"
        )
    kind = json.loads(config_file.read_text()).get("_class_name")
    if kind == "VideoUNet":
        model = load_pretrained(VideoUNet, path)
        widths, has_mid = model.config.backbone["block_out_channels"], model.spatial.mid_block is not None
    elif kind == "UNetMotionModel":
        from diffusers import UNetMotionModel

        model = load_pretrained(UNetMotionModel, path)
        widths, has_mid = model.config.block_out_channels, model.mid_block is not None
    elif kind == "UNet2DConditionModel":
        from diffusers import UNet2DConditionModel

        if not (path / "diffusion_pytorch_model.safetensors").is_file():
            raise NasError(f"{path}: no diffusion_pytorch_model.safetensors (teachers load from safetensors only)")
        model = UNet2DConditionModel.from_pretrained(path, use_safetensors=True, local_files_only=True)
        widths, has_mid = model.config.block_out_channels, model.mid_block is not None
    else:
        raise NasError(
            f"{config_file}: teacher class {kind!r}; VideoUNet, UNetMotionModel or UNet2DConditionModel is needed"
        )
    return Teacher(model, block_channels(widths, has_mid))


def block_channels(widths: list[int], has_mid: bool) -> dict[str, int]:
    """Output width of every down, mid and up block, by diffusers block name."""
    names = {f"down_blocks.{i}": c for i, c in enumerate(widths)}
    if has_mid:
        names["mid_block"] = widths[-1]
    names.update({f"up_blocks.{i}": c for i, c in enumerate(reversed(widths))})
    return names


class Student(nn.Module):
    """The VideoUNet being trained plus 1x1 projections of its block outputs to the teacher's widths.

    One module, so that data-parallel wrapping, gradient clipping and checkpoints see both.
    """

    def __init__(self, model: VideoUNet, teacher: Teacher | None):
        super().__init__()
        self.model = model
        own = block_channels(model.config.backbone["block_out_channels"], model.spatial.mid_block is not None)
        if teacher is not None:
            same_levels(own, teacher.channels, "down")
        self.projections = Projections(own, teacher.channels if teacher is not None else {})

    def forward(self, sample, timestep, text, features: bool = False):
        if not features:
            return self.model(sample, timestep, text).sample, {}
        out = self.model(sample, timestep, text, return_features=True)
        return out.sample, self.projections.project(out.features)


def same_levels(own: dict[str, int], teacher: dict[str, int], path: str) -> None:
    """Feature distillation pairs blocks by name: the student needs the teacher's levels on ``path``."""
    mine, theirs = (sum(n.startswith(path) for n in blocks) for blocks in (own, teacher))
    if mine != theirs:
        raise NasError(
            f"teacher has {theirs} resolution levels, the student {mine}: feature distillation needs "
            "the same levels (set loss_feature: 0 to distil outputs only)"
        )


def _name(key: str) -> str:
    """ModuleDict keys cannot hold dots: ``down_blocks_0`` -> ``down_blocks.0``."""
    head, _, index = key.rpartition("_")
    return f"{head}.{index}" if index.isdigit() else key
