"""VideoUNet: a diffusers spatial UNet with the temporal layers of one Architecture.

The spatial part is a stock ``UNet2DConditionModel`` (so 2D weights load as they are); the
forward pass walks its blocks layer by layer, because temporal layers sit *between* spatial
layers at the places (slots) the search space names, with a different op per level. Input
is ``(B, C, F, H, W)``; inside, frames are folded into the batch for spatial layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from nas.ops import get_op
from nas.space import Architecture, SearchSpace


@dataclass
class VideoUNetOutput(BaseOutput):
    """``sample``: predicted noise (or whatever the backbone was trained to predict), (B, C, F, H, W);
    ``features``: block outputs by name when asked for (``return_features=True``), else None."""

    sample: torch.Tensor
    features: dict[str, torch.Tensor] | None = None


class VideoUNet(ModelMixin, ConfigMixin):
    """Spatial UNet + temporal layers; build with :meth:`from_space`, persist with save_pretrained.

    Parameters are the config: ``backbone`` (UNet2DConditionModel config), ``frames`` and the latent
    ``sample_height``/``sample_width`` the model is built for, ``slots`` (placements of the space's
    slots) and ``architecture`` (slot name -> choice mapping, as in architecture YAML).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        backbone: dict[str, Any],
        frames: int,
        sample_height: int,
        sample_width: int,
        slots: list[dict[str, Any]],
        architecture: dict[str, dict[str, Any]],
        text_tokens: int = 77,
        space_name: str = "",
    ):
        super().__init__()
        self.spatial = UNet2DConditionModel(**backbone)
        channels = list(backbone["block_out_channels"])
        groups = backbone.get("norm_num_groups", 32)
        self.temporal = nn.ModuleDict()
        self._slot_at: dict[tuple[str, int, int], str] = {}
        for placement in slots:
            choice = architecture[placement["name"]]
            if choice["op"] == "none":
                continue
            op = get_op(choice["op"])
            params = {k: v for k, v in choice.items() if k not in ("op", "count")}
            width = channels[placement["level"]]
            self.temporal[placement["name"]] = nn.ModuleList(
                op(width, frames, groups, **params) for _ in range(choice["count"])
            )
            self._slot_at[(placement["path"], placement["level"], placement["position"])] = placement["name"]
        self.gradient_checkpointing = False

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_space(
        cls,
        space: SearchSpace,
        architecture: Architecture,
        spatial_weights: str | Path | None = None,
        freeze_spatial: bool = False,
    ) -> VideoUNet:
        """Build ``architecture`` of ``space``; optionally load 2D weights and freeze them."""
        model = cls(
            backbone=space.backbone,
            frames=space.video.frames,
            sample_height=space.video.latent_height,
            sample_width=space.video.latent_width,
            slots=[s.placement() for s in space.slots],
            architecture=architecture.slots_dict(),
            text_tokens=space.text_tokens,
            space_name=space.name,
        )
        if spatial_weights is not None:
            from nas.model.spatial_weights import load_spatial_weights

            load_spatial_weights(model.spatial, spatial_weights, space)
        if freeze_spatial:
            model.freeze_spatial()
        return model

    def freeze_spatial(self) -> None:
        """Stop gradients to the 2D backbone: only temporal layers train (the paper's stage 2)."""
        self.spatial.requires_grad_(False)

    def set_attention(self, implementation: str) -> None:
        """Compute every attention (temporal ops and the spatial UNet's) as ``split_einsum`` or ``sdpa``.

        ``split_einsum`` is apple/ml-stable-diffusion's Neural Engine form: ``(B, C, 1, S)``
        tensors, 1x1-conv projections, attention split per head with einsum; ``sdpa`` keeps one
        fused attention op. The function computed is the same; export picks (``--attention``).
        """
        from nas.ops.ane import ChannelsFirstAttnProcessor, check_implementation

        check_implementation(implementation)
        for module in self.temporal.modules():
            if hasattr(module, "set_attention"):
                module.set_attention(implementation)
        self.spatial.set_attn_processor(ChannelsFirstAttnProcessor(implementation))

    def temporal_parameters(self) -> list[nn.Parameter]:
        return list(self.temporal.parameters())

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        return_features: bool = False,
    ) -> VideoUNetOutput | tuple[torch.Tensor]:
        """``sample`` (B, C, F, H, W); ``timestep`` scalar or (B,); ``encoder_hidden_states`` (B, T, D).

        ``return_features`` also returns every block's output (frames in the batch, (B*F, C, h, w)),
        named as diffusers names the blocks (``down_blocks.0``, ``mid_block``, ``up_blocks.0``, ...):
        the targets of BK-SDM-style feature distillation.
        """
        unet = self.spatial
        b, c, f, h, w = sample.shape
        # Unasked-for block outputs are dropped at once, not held to the end of the forward
        # (the up path's would stay live: peak memory the cost model's slot context does not have).
        features: dict[str, torch.Tensor] = {} if return_features else _Dropped()
        x, emb, text = self._inputs(sample, timestep, encoder_hidden_states)
        x, skips = self._down(x, emb, text, f, features)

        if unet.mid_block is not None:
            x = self._run(unet.mid_block, x, emb, text)
            x = self._temporal("mid", len(unet.down_blocks) - 1, 0, x, f)
            features["mid_block"] = x

        for index, block in enumerate(unet.up_blocks):
            level = len(unet.up_blocks) - 1 - index
            attentions = getattr(block, "attentions", None)
            for position, resnet in enumerate(block.resnets):
                x = torch.cat([x, skips.pop()], dim=1)
                x = self._run(resnet, x, emb)
                if attentions is not None:
                    x = self._run_attention(attentions[position], x, text)
                x = self._temporal("up", level, position, x, f)
            for upsampler in block.upsamplers or []:
                x = self._run(upsampler, x)
            features[f"up_blocks.{index}"] = x

        if unet.conv_norm_out is not None:
            x = unet.conv_act(unet.conv_norm_out(x))
        x = unet.conv_out(x)
        out = x.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4)
        if not return_dict:
            return (out, features) if return_features else (out,)
        return VideoUNetOutput(sample=out, features=features if return_features else None)

    def encode(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor
    ) -> list[torch.Tensor]:
        """The encoder half only (conv_in and down blocks): each down block's output, (B*F, C, h, w).

        The adversarial stage's discriminator is built on this (frozen) half of the stage-1 model.
        """
        features: dict[str, torch.Tensor] = {}
        x, emb, text = self._inputs(sample, timestep, encoder_hidden_states)
        self._down(x, emb, text, sample.shape[2], features)
        return list(features.values())

    def _inputs(self, sample, timestep, encoder_hidden_states):
        """Frames folded into the batch: latents (B*F, C, H, W), time embedding and text per frame."""
        unet = self.spatial
        b, c, f, h, w = sample.shape
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.expand(b) if timesteps.ndim == 0 else timesteps
        timesteps = timesteps.repeat_interleave(f)
        emb = unet.time_embedding(unet.get_time_embed(sample=x, timestep=timesteps))
        text = encoder_hidden_states.repeat_interleave(f, dim=0)
        return x, emb, text

    def _down(self, x, emb, text, frames: int, features: dict[str, torch.Tensor]):
        """conv_in and the down blocks; returns the last output and the skip connections."""
        unet = self.spatial
        x = unet.conv_in(x)
        skips = [x]
        for level, block in enumerate(unet.down_blocks):
            attentions = getattr(block, "attentions", None)
            for position, resnet in enumerate(block.resnets):
                x = self._run(resnet, x, emb)
                if attentions is not None:
                    x = self._run_attention(attentions[position], x, text)
                x = self._temporal("down", level, position, x, frames)
                skips.append(x)
            for downsampler in block.downsamplers or []:
                x = self._run(downsampler, x)
                skips.append(x)
            features[f"down_blocks.{level}"] = x
        return x, skips

    def _temporal(self, path: str, level: int, position: int, x: torch.Tensor, frames: int) -> torch.Tensor:
        name = self._slot_at.get((path, level, position))
        if name is None:
            return x
        for layer in self.temporal[name]:
            x = self._run(layer, x, frames)
        return x

    def _run(self, module: nn.Module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)

    def _run_attention(self, attention: nn.Module, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self._run(_CrossAttention(attention), x, text)


class _Dropped(dict):
    """A features dict that keeps nothing (``VideoUNet.forward`` without ``return_features``)."""

    def __setitem__(self, key, value) -> None:
        pass


class _CrossAttention(nn.Module):
    """Positional-argument adapter so a Transformer2DModel can go through checkpointing."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.attention(x, encoder_hidden_states=text, return_dict=False)[0]
