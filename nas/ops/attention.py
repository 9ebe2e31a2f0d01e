"""Temporal self-attention: ``attn1d`` (over frames at each pixel) and ``attn3d`` (over all
frames x pixels).

GroupNorm -> linear in -> + sinusoidal frame position -> diffusers BasicTransformerBlock
(self-attention + GEGLU feed-forward) -> zero-initialised linear out, on a residual, as in
AnimateDiff's motion module. attn1d costs grow linearly with H*W (sequences of F tokens);
attn3d attends over F*H*W tokens, so its score matrix grows with (F*H*W)^2: affordable at
low resolution, out of memory at high resolution, the trade-off the search explores.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nas.ops.base import TemporalOp
from nas.ops.layout import VideoGroupNorm, sinusoidal_table, to_frames, to_video
from nas.ops.registry import register_op


class TemporalAttention(TemporalOp):
    """Residual self-attention over a token layout that subclasses choose."""

    defaults = {"heads": 8}
    # Permutation of (B, C, F, H, W) that puts channels last and the attended axes together.
    token_order: ClassVar[tuple[int, ...]] = ()

    def __init__(self, channels: int, frames: int, norm_groups: int = 32, **params: int):
        from diffusers.models.attention import BasicTransformerBlock  # here: checking a space needs no diffusers

        super().__init__(channels, frames, norm_groups, **params)
        heads = self.params["heads"]
        self.norm = VideoGroupNorm(norm_groups, channels)
        self.proj_in = nn.Linear(channels, channels)
        self.block = BasicTransformerBlock(channels, heads, channels // heads, activation_fn="geglu")
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.register_buffer("frame_embedding", sinusoidal_table(frames, channels), persistent=False)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        video = to_video(hidden_states, num_frames)
        b, c, f, h, w = video.shape
        tokens = self.proj_in(self.norm(video).permute(*self.token_order))
        tokens = tokens + self.frame_position(f)
        grid = tokens.shape
        sequence = self.block(self.sequences(tokens, b, f, h, w, c))
        out = self.proj_out(sequence).reshape(grid).permute(*_inverse(self.token_order))
        return to_frames(video + out)

    def frame_position(self, num_frames: int) -> torch.Tensor:
        raise NotImplementedError

    def sequences(self, tokens: torch.Tensor, b: int, f: int, h: int, w: int, c: int) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def check_params(cls, channels: int, params: dict[str, int]) -> None:
        heads = params["heads"]
        if not (isinstance(heads, int) and heads >= 1 and channels % heads == 0):
            raise ValueError(f"{cls.name}: heads must be a positive divisor of {channels} channels, got {heads!r}")


@register_op
class Attention1d(TemporalAttention):
    """Attention over the F frames at each pixel: sequences (B*H*W, F, C)."""

    name = "attn1d"
    token_order = (0, 3, 4, 2, 1)  # (B, H, W, F, C)

    def frame_position(self, num_frames: int) -> torch.Tensor:
        return self.frame_embedding[:num_frames]

    def sequences(self, tokens, b, f, h, w, c):
        return tokens.reshape(b * h * w, f, c)


@register_op
class Attention3d(TemporalAttention):
    """Attention over all F*H*W positions of a clip: sequences (B, F*H*W, C)."""

    name = "attn3d"
    token_order = (0, 2, 3, 4, 1)  # (B, F, H, W, C)

    def frame_position(self, num_frames: int) -> torch.Tensor:
        return self.frame_embedding[:num_frames].reshape(num_frames, 1, 1, self.channels)

    def sequences(self, tokens, b, f, h, w, c):
        return tokens.reshape(b, f * h * w, c)


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(order)), key=order.__getitem__))
