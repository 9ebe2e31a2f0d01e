"""Size of an architecture: parameters and FLOPs, in total and per slot.

FLOPs are for one forward pass on one clip of the space's video shape (batch 1), counted as
torch's FlopCounterMode counts them (2 x multiply-accumulates of matmuls, convolutions and
attention). Counting runs on the meta device, so even the 0.6B model costs no memory. A VAE
decoder's FLOPs are per decoded frame. Parameters of the built-in ops are closed form
(:mod:`nas.ops.spec`): pricing an architecture imports torch only to count FLOPs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np

from nas.ops import OpCost, get_op, op_spec
from nas.space import Architecture, Choice, SearchSpace, Slot


def choice_size(space: SearchSpace, slot: Slot, choice: Choice) -> OpCost:
    """Parameters and FLOPs of all ``count`` layers of ``choice`` at ``slot``, for one clip."""
    cost = get_op(choice.op).cost(slot.channels, space.video.frames, slot.height, slot.width, choice.param_dict)
    return OpCost(cost.params * choice.count, cost.flops * choice.count)


def choice_params(space: SearchSpace, slot: Slot, choice: Choice) -> int:
    """Parameters of all ``count`` layers of ``choice`` at ``slot`` (the built-in ops' without torch)."""
    size = op_spec(choice.op).param_count(slot.channels, space.video.frames, slot.height, slot.width, choice.param_dict)
    return size * choice.count


def size_arrays(space: SearchSpace, column: str) -> list[np.ndarray]:
    """Per slot, ``column`` (params or flops) of each of its choices: a choice row
    (:meth:`SearchSpace.encode`) indexes them to size many architectures at once."""

    def size(slot: Slot, choice: Choice) -> int:
        if column == "params":
            return choice_params(space, slot, choice)
        return getattr(choice_size(space, slot, choice), column)

    return [np.array([size(slot, choice) for choice in slot.choices], dtype=np.int64) for slot in space.slots]


def slot_sizes(space: SearchSpace, architecture: Architecture) -> list[dict[str, Any]]:
    """One row per slot: its choice, input shape, parameters and FLOPs (all ``count`` layers)."""
    rows = []
    for slot in space.slots:
        choice = architecture.choice(slot.name)
        cost = choice_size(space, slot, choice)
        rows.append(
            {
                "slot": slot.name,
                "choice": choice.label,
                "channels": slot.channels,
                "frames": space.video.frames,
                "height": slot.height,
                "width": slot.width,
                "params": cost.params,
                "flops": cost.flops,
            }
        )
    return rows


def spatial_flops(space: SearchSpace) -> int:
    """FLOPs of the spatial UNet over all frames of one clip (text cross-attention included)."""
    return _spatial_flops(json.dumps(space.backbone, sort_keys=True), space.video, space.text_tokens)


@lru_cache(maxsize=32)
def _spatial_flops(backbone_json: str, video, text_tokens: int) -> int:
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**json.loads(backbone_json))
        x = torch.empty(video.frames, video.latent_channels, video.latent_height, video.latent_width)
        text = torch.empty(video.frames, text_tokens, unet.config.cross_attention_dim)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            unet(x, torch.zeros(video.frames), text)
    return int(counter.get_total_flops())


def decoder_flops(vae_config: dict[str, Any], height: int, width: int) -> int:
    """FLOPs of decoding one ``height`` x ``width`` frame with the AutoencoderKL of ``vae_config``
    (post_quant_conv and decoder, as a pipeline's ``vae.decode`` runs them)."""
    config = {k: v for k, v in vae_config.items() if not k.startswith("_")}
    return _decoder_flops(json.dumps(config, sort_keys=True), height, width)


@lru_cache(maxsize=32)
def _decoder_flops(config_json: str, height: int, width: int) -> int:
    import torch
    from diffusers import AutoencoderKL
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        vae = AutoencoderKL.from_config(json.loads(config_json))
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        z = torch.empty(1, vae.config.latent_channels, height // scale, width // scale)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            vae.decode(z)
    return int(counter.get_total_flops())


def architecture_size(space: SearchSpace, architecture: Architecture) -> dict[str, Any]:
    """The report of ``nas build --json``: params_total/_spatial/_temporal, FLOPs, per-slot rows."""
    slots = slot_sizes(space, architecture)
    params_temporal = sum(row["params"] for row in slots)
    flops_temporal = sum(row["flops"] for row in slots)
    flops_spatial = spatial_flops(space)
    return {
        "space": space.name,
        "arch_id": architecture.id,
        "params_total": space.params_spatial + params_temporal,
        "params_spatial": space.params_spatial,
        "params_temporal": params_temporal,
        "flops_total": flops_spatial + flops_temporal,
        "flops_spatial": flops_spatial,
        "flops_temporal": flops_temporal,
        "slots": slots,
    }
