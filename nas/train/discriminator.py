"""The latent discriminator of the adversarial stage (SnapGen-V, after LADD).

Its backbone is the encoder half (conv_in + down blocks, temporal layers included) of a copy of
the stage-1 model, frozen: it already knows noisy video latents at every timestep. After each
down block sits a trainable spatial-temporal head:

    frames into the batch -> 2D ResBlock -> space into the batch -> temporal self-attention
    -> per-position logit, conditioned on the pooled text embedding through a linear projection
       (projection-discriminator style: logit = w.h + <proj(text), h> / sqrt(C)).

Images are one-frame clips (temporal attention over one frame is the identity), so the same
heads judge texture on image batches and motion on video batches.
"""

from __future__ import annotations

import copy
import math

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from nas.model import VideoUNet
from nas.ops import get_op


class DiscriminatorHead(nn.Module):
    """ResBlock over frames-in-batch, temporal self-attention over space-in-batch, text-conditioned logits."""

    def __init__(self, channels: int, frames: int, groups: int, text_dim: int, heads: int):
        super().__init__()
        self.resnet = ResnetBlock2D(in_channels=channels, out_channels=channels, temb_channels=None, groups=groups)
        self.temporal = get_op("attn1d")(channels, frames, groups, heads=heads)
        self.text = nn.Linear(text_dim, channels)
        self.logit = nn.Conv2d(channels, 1, 1)

    def forward(self, features: torch.Tensor, frames: int, text_pooled: torch.Tensor) -> torch.Tensor:
        """(B*F, C, h, w) -> logits (B*F, h, w)."""
        # Plain strides first: at 1x1 size a tensor can look channels-last, and torch 2.13's CPU
        # convolution backward crashes (segfault) on such input when it needs no gradient itself.
        features = torch.empty_like(features, memory_format=torch.contiguous_format).copy_(features)
        h = self.resnet(features, None)
        h = self.temporal(h, frames)
        condition = self.text(text_pooled).repeat_interleave(frames, 0)[:, :, None, None]
        return self.logit(h)[:, 0] + (h * condition).sum(1) / math.sqrt(h.shape[1])


class Discriminator(nn.Module):
    """Frozen stage-1 encoder + one trainable head per down block; only the heads have parameters to train."""

    def __init__(self, stage1: VideoUNet, text_dim: int, heads: int):
        super().__init__()
        self.backbone = copy.deepcopy(stage1).requires_grad_(False)
        backbone = self.backbone.config.backbone
        groups = backbone.get("norm_num_groups", 32)
        self.heads = nn.ModuleList(
            DiscriminatorHead(width, self.backbone.config.frames, groups, text_dim, heads)
            for width in backbone["block_out_channels"]
        )

    def forward(
        self, latents: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor, text_pooled: torch.Tensor
    ) -> list[torch.Tensor]:
        """Noisy latents (B, C, F, h, w) at ``timestep`` -> one logit map per head."""
        frames = latents.shape[2]
        features = self.backbone.encode(latents, timestep, text)
        return [head(f, frames, text_pooled) for head, f in zip(self.heads, features)]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())
