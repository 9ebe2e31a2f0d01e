"""Core ML conversion (coremltools, ML program) of temporal ops and whole models.

Conversion works on any OS; loading and timing a package needs macOS, so nothing here runs
a converted model. Models are traced with static shapes (Python ints), which is also what
keeps shape arithmetic out of the converted graph.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

from nas.ops import get_op
from nas.ops.ane import ATTENTION_IMPLEMENTATIONS, check_implementation

TARGETS = ("iOS17", "iOS18")
PRECISIONS = ("fp16", "fp32")
ATTENTIONS = ATTENTION_IMPLEMENTATIONS  # split_einsum (Neural Engine, the default) or sdpa (one fused op)


class VideoUNetGraph(nn.Module):
    """A VideoUNet returning a bare tensor, so it traces with positional (sample, timestep, text) inputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class OpGraph(nn.Module):
    """One temporal op with its frame count fixed, so it traces with a single tensor input."""

    def __init__(self, op: nn.Module, frames: int):
        super().__init__()
        self.op = op
        self.frames = frames

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.op(hidden_states, self.frames)


def convert(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str] = ("output",),
    precision: str = "fp16",
    target: str = "iOS18",
    attention: str = "split_einsum",
):
    """Trace ``module`` at the example shapes and convert it to a Core ML ML program.

    Every attention inside (temporal ops, and a VideoUNet's spatial attention) is first set to
    ``attention``: ``split_einsum`` is apple/ml-stable-diffusion's Neural Engine form.
    """
    import coremltools as ct

    use_attention(module, attention)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, tuple(example_inputs), check_trace=False)
    return ct.convert(
        traced,
        convert_to="mlprogram",
        inputs=[ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(input_names, example_inputs)],
        outputs=[ct.TensorType(name=n) for n in output_names],
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=getattr(ct.target, target),
        skip_model_load=True,
    )


def use_attention(module: nn.Module, implementation: str) -> None:
    """Set ``implementation`` on every submodule that offers ``set_attention`` (VideoUNet, attention ops)."""
    check_implementation(implementation)
    for sub in module.modules():
        if hasattr(sub, "set_attention"):
            sub.set_attention(implementation)


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


def convert_video_unet(model: nn.Module, batch: int = 1, precision: str = "fp16", target: str = "iOS18",
                       attention: str = "split_einsum"):
    """Convert a whole VideoUNet at its configured clip shape; inputs as :func:`video_unet_inputs`, output
    ``noise_pred`` (the name apple/ml-stable-diffusion pipelines read)."""
    inputs = video_unet_inputs(model, batch)
    return convert(VideoUNetGraph(model), list(inputs.values()), list(inputs), ["noise_pred"],
                   precision=precision, target=target, attention=attention)


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
    return convert(OpGraph(layer, frames), [example], ["hidden_states"], precision=precision, target=target,
                   attention=attention)
