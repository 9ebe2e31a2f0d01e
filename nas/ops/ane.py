"""Neural-Engine-friendly building blocks: rank-4 channels-first tensors, as Apple recommends.

Apple's guidance for the Neural Engine ("Deploying Transformers on the Apple Neural Engine",
apple/ml-ane-transformers, apple/ml-stable-diffusion ``attention.py``): keep tensors rank 4
in the channels-first layout ``(B, C, X, S)``, run ``nn.Linear`` as a 1x1 ``Conv2d``,
normalise over the channel axis, and split attention per head with einsum
(``split_einsum``) so every matmul is a small rank-4 batched matmul; avoid reshapes and
transposes. The functions here compute with the parameters of ordinary torch/diffusers
modules (``nn.Linear``, ``nn.LayerNorm``, diffusers ``Attention`` and ``FeedForward``), so
the layers keep their parameter names and old checkpoints load unchanged.

``X`` is an axis of independent positions (pixels for attention over frames, 1 for
attention over a whole clip) and ``S`` the attended sequence, as in Apple's ``(B, C, 1, S)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_IMPLEMENTATIONS = ("split_einsum", "sdpa")


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer`` applied over the channel axis of ``(B, C, X, S)``: a 1x1 Conv2d with its weights."""
    return F.conv2d(x, layer.weight[:, :, None, None], layer.bias)


def group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``norm`` (a GroupNorm) on a rank-4 ``(B, C, A, S)`` tensor without going through rank 5.

    Core ML lowers ``group_norm`` through a ``(B, G, C/G, A, S)`` reshape; grouping as
    ``(B, G, C/G*A, S)`` normalises the same elements with rank-4 tensors only.
    """
    b, c, a, s = x.shape
    groups = norm.num_groups
    grouped = x.reshape(b, groups, (c // groups) * a, s)
    centred = grouped - grouped.mean(dim=(2, 3), keepdim=True)
    variance = (centred * centred).mean(dim=(2, 3), keepdim=True)
    out = (centred / torch.sqrt(variance + norm.eps)).reshape(b, c, a, s)
    if norm.affine:
        out = out * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
    return out


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the channel axis of ``(B, C, X, S)`` (Apple's LayerNormANE), ``norm``'s affine."""
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    variance = (centred * centred).mean(dim=1, keepdim=True)
    out = centred / torch.sqrt(variance + norm.eps)
    if norm.weight is not None:
        out = out * norm.weight[None, :, None, None]
    if norm.bias is not None:
        out = out + norm.bias[None, :, None, None]
    return out


def split_einsum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """Attention per head with einsum on ``(B, C, X, S)`` (apple/ml-stable-diffusion SPLIT_EINSUM).

    ``q`` is ``(B, C, X, Sq)``; ``k`` and ``v`` are ``(B, C, X, Sk)``; every head is a pair of
    rank-4 einsums and one softmax over the key axis; the heads are concatenated on channels.
    """
    dim = q.shape[1] // heads
    k = k.transpose(1, 3)  # (B, Sk, X, C)
    out = []
    for head in range(heads):
        part = slice(head * dim, (head + 1) * dim)
        weights = torch.einsum("bchq,bkhc->bkhq", q[:, part], k[:, :, :, part]) * scale  # (B, Sk, X, Sq)
        weights = weights.softmax(dim=1)
        out.append(torch.einsum("bkhq,bchk->bchq", weights, v[:, part]))
    return torch.cat(out, dim=1)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """The same attention through one fused ``scaled_dot_product_attention`` (an iOS18 Core ML op).

    The heads go to a rank-4 ``(B*X, heads, S, C/heads)`` layout and back: more transposes,
    one attention op instead of 2 einsums and a softmax per head.
    """
    b, c, x, sq = q.shape
    dim = c // heads

    def to_heads(t: torch.Tensor) -> torch.Tensor:
        s = t.shape[3]
        return t.permute(0, 2, 3, 1).reshape(b * x, s, heads, dim).transpose(1, 2)

    # Core ML keeps one SDPA op only at the default scale; pass it only when it differs.
    extra = {} if math.isclose(scale, dim**-0.5) else {"scale": scale}
    out = F.scaled_dot_product_attention(to_heads(q), to_heads(k), to_heads(v), **extra)
    return out.transpose(1, 2).reshape(b, x, sq, c).permute(0, 3, 1, 2)


def attend(attention: nn.Module, x: torch.Tensor, context: torch.Tensor | None, implementation: str) -> torch.Tensor:
    """A diffusers ``Attention`` (q/k/v/out linears, ``heads``, ``scale``) on ``(B, C, X, S)`` tensors."""
    context = x if context is None else context
    q, k, v = linear(x, attention.to_q), linear(context, attention.to_k), linear(context, attention.to_v)
    core = split_einsum if implementation == "split_einsum" else sdpa
    out = linear(core(q, k, v, attention.heads, attention.scale), attention.to_out[0])
    return out / attention.rescale_output_factor


def feed_forward(ff: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A diffusers GEGLU ``FeedForward`` on ``(B, C, X, S)``: proj, half * gelu(other half), out."""
    hidden, gate = linear(x, ff.net[0].proj).chunk(2, dim=1)
    return linear(hidden * F.gelu(gate), ff.net[2])


def transformer_block(block: nn.Module, x: torch.Tensor, implementation: str) -> torch.Tensor:
    """A diffusers ``BasicTransformerBlock`` (layer_norm, self-attention only, GEGLU) on ``(B, C, X, S)``.

    The same function as ``block(tokens)`` on the ``(B*X, S, C)`` token layout.
    """
    x = x + attend(block.attn1, layer_norm(x, block.norm1), None, implementation)
    return x + feed_forward(block.ff, layer_norm(x, block.norm3))


def check_implementation(implementation: str) -> str:
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, got {implementation!r}")
    return implementation


def use_attention(module: nn.Module, implementation: str) -> None:
    """Set ``implementation`` on every submodule that offers ``set_attention`` (VideoUNet, attention ops)."""
    check_implementation(implementation)
    for sub in module.modules():
        if hasattr(sub, "set_attention"):
            sub.set_attention(implementation)


class ChannelsFirstAttnProcessor:
    """A diffusers attention processor computing on ``(B, C, 1, S)`` as apple/ml-stable-diffusion does.

    Set on the spatial UNet's attention layers at export (``VideoUNet.set_attention``): tokens
    ``(B, S, C)`` go to ``(B, C, 1, S)``, the projections run as 1x1 convs and the core as
    ``split_einsum`` (or one ``sdpa`` op); the result is the same as diffusers' processor.
    """

    def __init__(self, implementation: str = "split_einsum"):
        self.implementation = check_implementation(implementation)

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        image = hidden_states.ndim == 4  # a VAE's attention: (B, C, H, W) in, a group norm and a residual around
        if (
            attention_mask is not None
            or hidden_states.ndim not in (3, 4)
            or attn.spatial_norm is not None
            or (attn.group_norm is not None and not image)
            or attn.norm_cross
            or (attn.residual_connection and not image)
            or getattr(attn, "norm_q", None) is not None
        ):
            raise ValueError(
                "ChannelsFirstAttnProcessor supports plain (cross-)attention of (B, S, C) tokens "
                "without mask, norms or residual, as in SD 1.x/2.x UNets, and a VAE's (B, C, H, W) self-attention"
            )
        if image:
            b, c, h, w = hidden_states.shape
            x = hidden_states if attn.group_norm is None else attn.group_norm(hidden_states)
            out = attend(attn, x.reshape(b, c, 1, h * w), None, self.implementation).reshape(b, c, h, w)
            out = out * attn.rescale_output_factor  # attend divides; diffusers divides after the residual
            if attn.residual_connection:
                out = out + hidden_states
            return out / attn.rescale_output_factor
        x = hidden_states.transpose(1, 2)[:, :, None]
        context = None if encoder_hidden_states is None else encoder_hidden_states.transpose(1, 2)[:, :, None]
        return attend(attn, x, context, self.implementation)[:, :, 0].transpose(1, 2)
