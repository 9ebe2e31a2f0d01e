"""Core ML conversion of whole VideoUNets and of single temporal ops (``convert`` itself, shared with the
coreml profiler, is in :mod:`nas.profile.coreml_convert`).

Conversion works on any OS; loading and timing a package needs macOS, so nothing here runs
a converted model.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.ops import get_op
from nas.ops.ane import ATTENTION_IMPLEMENTATIONS
from nas.ops.base import OpGraph
from nas.profile.coreml_convert import convert

ATTENTIONS = ATTENTION_IMPLEMENTATIONS  # split_einsum (Neural Engine, the default) or sdpa (one fused op)


class VideoUNetGraph(nn.Module):
    """A VideoUNet returning a bare tensor, so it traces with positional (sample, timestep, text) inputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def video_unet_inputs(model: nn.Module, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example inputs of a VideoUNet at the clip shape its config was built for (static shapes)."""
    config = model.config
    g = torch.Generator().manual_seed(seed)
    latent = (batch, config.backbone["in_channels"], config.frames, config.sample_height, config.sample_width)
    text = (batch, config.text_tokens, config.backbone["cross_attention_dim"])
    return {
        "sample": torch.randn(latent, generator=g),
        "timestep": torch.full((batch,), 999.0),
        "encoder_hidden_states": torch.randn(text, generator=g),
    }


def convert_video_unet(
    model: nn.Module, batch: int = 1, precision: str = "fp16", target: str = "iOS18", attention: str = "split_einsum"
):
    """Convert a whole VideoUNet at its configured clip shape; inputs as :func:`video_unet_inputs`, output
    ``noise_pred`` (the name apple/ml-stable-diffusion pipelines read)."""
    inputs = video_unet_inputs(model, batch)
    return convert(
        VideoUNetGraph(model),
        list(inputs.values()),
        list(inputs),
        ["noise_pred"],
        precision=precision,
        target=target,
        attention=attention,
    )


def convert_op(
    op: str,
    channels: int,
    frames: int,
    height: int,
    width: int,
    params: dict[str, int] | None = None,
    norm_groups: int = 32,
    precision: str = "fp16",
    target: str = "iOS18",
    seed: int = 0,
    attention: str = "split_einsum",
):
    """Convert one randomly initialised layer of ``op`` at input shape (frames, channels, height, width)."""
    torch.manual_seed(seed)
    layer = get_op(op)(channels, frames, norm_groups, **(params or {}))
    example = torch.randn(frames, channels, height, width)
    return convert(
        OpGraph(layer, frames), [example], ["hidden_states"], precision=precision, target=target, attention=attention
    )
