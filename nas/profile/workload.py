"""Workloads: the module and inputs that one OpKey stands for, ready to run or convert.

A temporal op key runs one layer on a batch-1 clip laid out as the UNet holds it,
``(F, C, H, W)``; the spatial key runs the whole 2D UNet over the clip's F frames with text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from nas.cost.table import SPATIAL, WHOLE_MODEL_OPS
from nas.errors import NasError
from nas.export.coreml import OpGraph
from nas.ops import OpKey, get_op
from nas.space import SearchSpace


@dataclass
class Workload:
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]

    def __call__(self):
        return self.module(*self.inputs)


class SpatialGraph(nn.Module):
    """The 2D UNet with tensor-only inputs, so it times and traces like an op."""

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def build_workload(space: SearchSpace, key: OpKey, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, seed: int = 0) -> Workload:
    torch.manual_seed(seed)
    if key.op in WHOLE_MODEL_OPS and key.op != SPATIAL:
        raise NasError(f"{key.op} rows are measured outside the toolkit's profilers (give them in the table)")
    if key.op == SPATIAL:
        module = SpatialGraph(UNet2DConditionModel(**space.backbone))
        inputs = (
            torch.randn(key.frames, space.video.latent_channels, key.height, key.width),
            torch.full((key.frames,), 500.0),
            torch.randn(key.frames, space.text_tokens, space.cross_attention_dim),
        )
        names = ("sample", "timestep", "encoder_hidden_states")
    else:
        op = get_op(key.op)
        params = {name: getattr(key, name) for name in ("heads", "kernel") if name in op.defaults}
        layer = op(key.channels, key.frames, space.backbone.get("norm_num_groups", 32), **params)
        module = OpGraph(layer, key.frames)
        inputs = (torch.randn(key.frames, key.channels, key.height, key.width),)
        names = ("hidden_states",)
    module = module.to(device=device, dtype=dtype).eval()
    inputs = tuple(x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype) for x in inputs)
    return Workload(module, inputs, names)
