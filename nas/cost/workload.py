"""Workloads: the module and inputs that one OpKey stands for, ready to run, trace or convert.

The profilers time them; the roofline estimate and the cost model's memory estimate trace them
on the meta device, which is why they live at the cost level, below the profilers.

A temporal op key runs one layer on a batch-1 clip laid out as the UNet holds it,
``(F, C, H, W)``; the spatial key runs the video UNet without temporal layers on one clip; the
fixed parts run the space's text encoder on one prompt and its decoder on the key's latent
frames (random weights, built from their configs, as the spatial UNet is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.cost.plan import backbone_fingerprint, part_fingerprint
from nas.cost.table import FIXED_PARTS, SPATIAL
from nas.errors import NasError
from nas.model import VideoUNet
from nas.ops import OpKey, get_op
from nas.ops.base import OpGraph
from nas.space import Architecture, SearchSpace
from nas.space.choice import NONE, Choice
from nas.space.generation import DECODER, FixedPart


@dataclass
class Workload:
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]

    def __call__(self):
        return self.module(*self.inputs)


class SpatialGraph(nn.Module):
    """The video UNet with no temporal layers, tensor in, tensor out.

    The spatial row is timed through the same layer-by-layer forward the VideoUNet runs, so
    the table's parts add up to what a whole architecture costs (diffusers' own UNet forward
    differs in per-call overhead).
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        bare = Architecture(space.name, tuple((slot.name, Choice(NONE)) for slot in space.slots))
        self.model = VideoUNet.from_space(space, bare)

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class DecoderGraph(nn.Module):
    """The decoding half of a diffusers ``AutoencoderKL`` (post_quant_conv + decoder): latents in, frames out.

    The encoder is not kept: a generation only decodes, and the part's weights are the decoder's.
    """

    def __init__(self, config: dict):
        super().__init__()
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(**config)
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, latents):
        if self.post_quant_conv is not None:
            latents = self.post_quant_conv(latents)
        return self.decoder(latents)

    def set_attention(self, implementation: str) -> None:
        """The mid block's attention in the Neural Engine form (``split_einsum``) or one ``sdpa`` op, as exported."""
        from diffusers.models.attention_processor import Attention

        from nas.ops.ane import ChannelsFirstAttnProcessor

        for module in self.decoder.modules():
            if isinstance(module, Attention):
                module.set_processor(ChannelsFirstAttnProcessor(implementation))


class TextEncoderGraph(nn.Module):
    """A transformers ``CLIPTextModel``: token ids in, the per-token embeddings the UNet cross-attends to out."""

    def __init__(self, config: dict):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        self.model = CLIPTextModel(CLIPTextConfig(**config))

    def forward(self, input_ids):
        return self.model(input_ids, return_dict=False)[0]


def fixed_part_module(part: FixedPart) -> nn.Module:
    return DecoderGraph(part.config) if part.kind == DECODER else TextEncoderGraph(part.config)


def build_workload(
    space: SearchSpace,
    key: OpKey,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> Workload:
    torch.manual_seed(seed)
    if key.op in FIXED_PARTS:
        part = space.generation.part(key.op)
        if key.param_dict.get(key.op) != part_fingerprint(part):
            raise NasError(
                f"{key.text()}: a {key.op} row of another {key.op} than {space.name}'s "
                f"({part.describe()}, {part_fingerprint(part)})"
            )
        module = fixed_part_module(part)
        if key.op == DECODER:
            inputs = (torch.randn(key.frames, key.channels, key.height, key.width),)
            names = ("latents",)
        else:
            vocab = part.structure["vocab_size"]
            inputs = (torch.randint(0, vocab, (1, key.height)),)
            names = ("input_ids",)
    elif key.op == SPATIAL:
        if key.param_dict.get("backbone") not in (None, backbone_fingerprint(space)):
            raise NasError(
                f"{key.text()}: a spatial row of another backbone than {space.name}'s ({backbone_fingerprint(space)})"
            )
        module = SpatialGraph(space)
        inputs = (
            torch.randn(1, space.video.latent_channels, key.frames, key.height, key.width),
            torch.full((1,), 500.0),
            torch.randn(1, space.text_tokens, space.cross_attention_dim),
        )
        names = ("sample", "timestep", "encoder_hidden_states")
    else:
        layer = get_op(key.op)(key.channels, key.frames, space.backbone.get("norm_num_groups", 32), **key.param_dict)
        module = OpGraph(layer, key.frames)
        inputs = (torch.randn(key.frames, key.channels, key.height, key.width),)
        names = ("hidden_states",)
    module = module.to(device=device, dtype=dtype).eval()
    inputs = tuple(x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype) for x in inputs)
    return Workload(module, inputs, names)
