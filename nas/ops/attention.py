"""Temporal self-attention: ``attn1d`` (over frames at each pixel) and ``attn3d`` (over all
frames x pixels).

GroupNorm -> linear in -> + sinusoidal frame position -> diffusers BasicTransformerBlock
(self-attention + GEGLU feed-forward) -> zero-initialised linear out, on a residual, as in
AnimateDiff's motion module. attn1d costs grow linearly with H*W (sequences of F tokens);
attn3d attends over F*H*W tokens, so its score matrix grows with (F*H*W)^2: affordable at
low resolution, out of memory at high resolution, the trade-off the search explores.

The layers hold the usual ``nn.Linear`` / ``BasicTransformerBlock`` parameters (checkpoints
keep their names), but compute in the Neural Engine's layout (:mod:`nas.ops.ane`): rank-4
``(B, C, X, S)`` tensors, 1x1 convs for the linears, attention split per head with einsum
(``attention = "split_einsum"``) or one fused SDPA op (``"sdpa"``, the default: fastest on
CPU/GPU for training). ``VideoUNet.set_attention`` picks it for a whole model at export.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.ops import ane
from nas.ops.base import TemporalOp
from nas.ops.layout import sinusoidal_table
from nas.ops.registry import BUILTIN_DEFAULTS, register_op
from nas.ops.spec import check_heads


class TemporalAttention(TemporalOp):
    """Residual self-attention over the ``(B, C, X, S)`` layout that subclasses choose."""

    defaults = BUILTIN_DEFAULTS["attn1d"]  # attn3d's are the same

    def __init__(self, channels: int, frames: int, norm_groups: int = 32, **params: int):
        from diffusers.models.attention import BasicTransformerBlock  # here: checking a space needs no diffusers

        super().__init__(channels, frames, norm_groups, **params)
        heads = self.params["heads"]
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.proj_in = nn.Linear(channels, channels)
        self.block = BasicTransformerBlock(channels, heads, channels // heads, activation_fn="geglu")
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.register_buffer("frame_embedding", sinusoidal_table(frames, channels), persistent=False)
        self.attention = "sdpa"

    def set_attention(self, implementation: str) -> None:
        """``split_einsum`` (per-head einsums, Apple's Neural Engine recipe) or ``sdpa`` (one fused op)."""
        self.attention = ane.check_implementation(implementation)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = hidden_states.shape
        b = bf // num_frames
        tokens = self.to_sequences(hidden_states.reshape(b, num_frames, c, h * w))  # (B, C, X, S)
        x = ane.linear(ane.group_norm(tokens, self.norm), self.proj_in) + self.frame_position(num_frames, h * w)
        x = ane.linear(ane.transformer_block(self.block, x, self.attention), self.proj_out)
        return hidden_states + self.to_frames(x, b, num_frames, h, w)

    def to_sequences(self, clip: torch.Tensor) -> torch.Tensor:
        """``(B, F, C, H*W)`` -> ``(B, C, X, S)``."""
        raise NotImplementedError

    def to_frames(self, x: torch.Tensor, b: int, f: int, h: int, w: int) -> torch.Tensor:
        """``(B, C, X, S)`` -> ``(B*F, C, H, W)``."""
        raise NotImplementedError

    def frame_position(self, num_frames: int, pixels: int) -> torch.Tensor:
        """The frame position table, broadcastable to ``(B, C, X, S)``."""
        raise NotImplementedError

    @classmethod
    def check_params(cls, channels: int, params: dict[str, int]) -> None:
        check_heads(cls.name, channels, params)


@register_op
class Attention1d(TemporalAttention):
    """Attention over the F frames at each pixel: ``(B, C, H*W, F)``, X = pixels, S = frames."""

    name = "attn1d"

    def to_sequences(self, clip):
        return clip.permute(0, 2, 3, 1)

    def to_frames(self, x, b, f, h, w):
        return x.permute(0, 3, 1, 2).reshape(b * f, self.channels, h, w)

    def frame_position(self, num_frames, pixels):
        return self.frame_embedding[:num_frames].t()[None, :, None, :]


@register_op
class Attention3d(TemporalAttention):
    """Attention over all F*H*W positions of a clip: ``(B, C, 1, F*H*W)``, X = 1."""

    name = "attn3d"

    def to_sequences(self, clip):
        b, f, c, hw = clip.shape
        return clip.permute(0, 2, 1, 3).reshape(b, c, 1, f * hw)

    def to_frames(self, x, b, f, h, w):
        return x.reshape(b, self.channels, f, h * w).permute(0, 2, 1, 3).reshape(b * f, self.channels, h, w)

    def frame_position(self, num_frames, pixels):
        table = self.frame_embedding[:num_frames].t()[:, :, None]  # (C, F, 1)
        return table.expand(self.channels, num_frames, pixels).reshape(1, self.channels, 1, num_frames * pixels)
