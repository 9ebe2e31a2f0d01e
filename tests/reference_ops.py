"""The temporal ops as they were before the Neural Engine rewrite (rank-5 tensors, nn.Conv3d,
token-layout BasicTransformerBlock), kept only as the reference the new ops must equal.

Copied from nas/ops/{conv,attention,layout}.py at commit 2b2420c; parameter names are the
checkpoint format, so a state dict moves between these and the shipped ops unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from nas.ops.layout import sinusoidal_table


def to_video(hidden_states, num_frames):
    bf, c, h, w = hidden_states.shape
    return hidden_states.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def to_frames(video):
    b, c, f, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


class VideoGroupNorm(nn.GroupNorm):
    def forward(self, video):
        b, c, f, h, w = video.shape
        return super().forward(video.reshape(b, c, f * h, w)).reshape(b, c, f, h, w)


class OldTemporalConv(nn.Module):
    def __init__(self, channels, frames, norm_groups, kernel=3, spatial_kernel=1):
        super().__init__()
        k, s = kernel, spatial_kernel
        self.norm1 = VideoGroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv3d(channels, channels, (k, s, s), padding=(k // 2, s // 2, s // 2))
        self.norm2 = VideoGroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv3d(channels, channels, (k, s, s), padding=(k // 2, s // 2, s // 2))

    def forward(self, hidden_states, num_frames):
        video = to_video(hidden_states, num_frames)
        h = self.conv1(F.silu(self.norm1(video)))
        h = self.conv2(F.silu(self.norm2(h)))
        return to_frames(video + h)


class OldTemporalAttention(nn.Module):
    def __init__(self, channels, frames, norm_groups, heads=8, three_d=False):
        super().__init__()
        self.channels, self.three_d = channels, three_d
        self.token_order = (0, 2, 3, 4, 1) if three_d else (0, 3, 4, 2, 1)
        self.norm = VideoGroupNorm(norm_groups, channels)
        self.proj_in = nn.Linear(channels, channels)
        self.block = BasicTransformerBlock(channels, heads, channels // heads, activation_fn="geglu")
        self.proj_out = nn.Linear(channels, channels)
        self.register_buffer("frame_embedding", sinusoidal_table(frames, channels), persistent=False)

    def forward(self, hidden_states, num_frames):
        video = to_video(hidden_states, num_frames)
        b, c, f, h, w = video.shape
        tokens = self.proj_in(self.norm(video).permute(*self.token_order))
        if self.three_d:
            tokens = tokens + self.frame_embedding[:f].reshape(f, 1, 1, c)
            sequence = self.block(tokens.reshape(b, f * h * w, c))
        else:
            tokens = tokens + self.frame_embedding[:f]
            sequence = self.block(tokens.reshape(b * h * w, f, c))
        inverse = tuple(sorted(range(5), key=self.token_order.__getitem__))
        out = self.proj_out(sequence).reshape(tokens.shape).permute(*inverse)
        return to_frames(video + out)


def reference_op(name, channels, frames, norm_groups, **params):
    """The pre-rewrite layer of op ``name``."""
    if name in ("conv1d", "conv3d"):
        return OldTemporalConv(channels, frames, norm_groups, params.get("kernel", 3), 3 if name == "conv3d" else 1)
    return OldTemporalAttention(channels, frames, norm_groups, params.get("heads", 8), three_d=name == "attn3d")
