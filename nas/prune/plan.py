"""Which source tensor slice fills each tensor of a pruned UNet2DConditionModel or AutoencoderKL.

The walk goes over the source and target configs level by level (diffusers' block layout) and
records, for every target tensor, the source tensor it comes from and, along each dimension,
the *channel spaces* that dimension runs over. A channel space is one set of channels that must
be pruned the same way wherever it appears: the residual stream of a level (tied through
identity shortcuts and residual attention), a ResNet's hidden width, an attention's inner width,
its query/key and value/output widths (grouped per head), GEGLU's hidden width (both halves),
the time embedding. Concatenated inputs (the up blocks' skip connections) are lists of spaces,
so their columns are remapped from the kept channels of the skip they come from.

Depth follows BK-SDM: a down block keeps its first layers; an up block keeps its first and last
layers (whose inputs have the same widths as the target's) and, between them, the layers whose
skip sources survive. Attention dropped at a level, or a dropped mid block, simply leaves those
source tensors unused. Nothing here names an SD1.5 tensor: the walk reads the block types,
widths and depths from the two configs.

A VAE is the same walk with parts left out: its encoder is a down path (no time embedding, no
attention, no skips kept), its decoder an up path with no skip concatenations (the same layers
kept: first, last, and the last ones between), and each has a mid block whose attention is a single
head as wide as the stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

TIMESTEP = "timestep"  # a dimension fed by the sinusoidal timestep features (refit, not sliced)


@dataclass
class Space:
    """A channel space: its widths in source and target and its groups (GroupNorm groups or heads)."""

    name: str
    groups_s: int
    groups_t: int
    width_s: int | None = None
    width_t: int | None = None
    importance: torch.Tensor | None = None


@dataclass
class Recipe:
    """How one target tensor is made: ``source`` (a key, or a function for a synthesised tensor),
    and per dimension None (kept whole), TIMESTEP, or a list of spaces laid end to end."""

    source: str | Callable[[], torch.Tensor]
    dims: tuple[Any, ...]
    head_scale: str | None = None  # query of an attention: rescale for the new head width


@dataclass
class Plan:
    source_shapes: dict[str, tuple[int, ...]]
    target_shapes: dict[str, tuple[int, ...]]
    fail: Callable[[str], Exception]
    spaces: dict[str, Space] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)  # kept source layer -> target layer, for the report

    # ------------------------------------------------------------ spaces
    def space(self, name: str, groups_s: int, groups_t: int) -> str:
        self.spaces[name] = Space(name, groups_s, groups_t)
        self.parent[name] = name
        return name

    def root(self, name: str) -> Space:
        while self.parent[name] != name:
            name = self.parent[name]
        return self.spaces[name]

    def tie(self, a: str, b: str) -> None:
        """``a`` and ``b`` are joined by an identity (a residual): one selection for both."""
        ra, rb = self.root(a), self.root(b)
        if ra is not rb:
            self.parent[rb.name] = ra.name
            ra.width_s, ra.width_t = _same(self, ra, rb, "width_s"), _same(self, ra, rb, "width_t")

    # ------------------------------------------------------------ recipes
    def take(
        self,
        target: str,
        source: str | Callable[[], torch.Tensor],
        dims: tuple[Any, ...],
        head_scale: str | None = None,
    ) -> None:
        if target not in self.target_shapes:
            return  # e.g. a bias the target does not have
        if isinstance(source, str) and source not in self.source_shapes:
            raise self.fail(f"the target's {target} has no source tensor {source}")
        self.recipes[target] = Recipe(source, dims, head_scale)

    def has_target(self, key: str) -> bool:
        return key in self.target_shapes

    def has_source(self, key: str) -> bool:
        return key in self.source_shapes

    def infer_widths(self) -> None:
        """Widths of each space from the single-space dimensions; then check every concatenation."""
        for key, recipe in self.recipes.items():
            shape_s = self._source_shape(recipe)
            for d, dim in enumerate(recipe.dims):
                if isinstance(dim, list) and len(dim) == 1:
                    space = self.root(dim[0])
                    for attr, width in (("width_s", shape_s[d]), ("width_t", self.target_shapes[key][d])):
                        have = getattr(space, attr)
                        if have is not None and have != width:
                            raise self.fail(f"{key}: channel space {space.name} is {have} wide elsewhere, {width} here")
                        setattr(space, attr, width)
        for key, recipe in self.recipes.items():
            shape_s = self._source_shape(recipe)
            for d, dim in enumerate(recipe.dims):
                if isinstance(dim, list):
                    spaces = [self.root(s) for s in dim]
                    if any(s.width_s is None for s in spaces):
                        raise self.fail(f"{key}: a channel space of dimension {d} has no known width")
                    if sum(s.width_s for s in spaces) != shape_s[d]:
                        raise self.fail(
                            f"{key}: dimension {d} is {shape_s[d]} wide in the source, "
                            f"its parts add up to {sum(s.width_s for s in spaces)}"
                        )
                    if sum(s.width_t for s in spaces) != self.target_shapes[key][d]:
                        raise self.fail(
                            f"{key}: dimension {d} is {self.target_shapes[key][d]} wide in the target, "
                            f"its parts add up to {sum(s.width_t for s in spaces)}"
                        )
                elif dim is None and shape_s[d] != self.target_shapes[key][d]:
                    raise self.fail(
                        f"{key}: dimension {d} is {shape_s[d]} in the source and "
                        f"{self.target_shapes[key][d]} in the target (it cannot be pruned)"
                    )
        for space in {id(self.root(n)): self.root(n) for n in self.spaces}.values():
            if space.width_t > space.width_s:
                raise self.fail(
                    f"the target is wider than the source ({space.name}: {space.width_t} > {space.width_s})"
                )
            if (
                space.width_s % space.groups_s
                or space.width_t % space.groups_t
                or space.groups_t > space.groups_s
                or space.width_t // space.groups_t > space.width_s // space.groups_s
            ):
                raise self.fail(
                    f"{space.name}: {space.width_t} channels in {space.groups_t} groups do not fit "
                    f"{space.width_s} channels in {space.groups_s} groups (each kept GroupNorm group or "
                    "head must come from one source group)"
                )

    def _source_shape(self, recipe: Recipe) -> tuple[int, ...]:
        if isinstance(recipe.source, str):
            return self.source_shapes[recipe.source]
        return tuple(recipe.source().shape)

    def distinct_spaces(self) -> list[Space]:
        return list({id(self.root(n)): self.root(n) for n in self.spaces}.values())


def _same(plan: Plan, a: Space, b: Space, attr: str) -> int | None:
    x, y = getattr(a, attr), getattr(b, attr)
    if x is not None and y is not None and x != y:
        raise plan.fail(
            f"{a.name} and {b.name} are joined by an identity shortcut but are {x} and {y} wide; "
            "keep equal widths where the source's are equal and vice versa"
        )
    return x if x is not None else y


# ---------------------------------------------------------------- the walk over two configs
@dataclass
class Layout:
    """What the walk needs of one config: a UNet2DConditionModel's, or an AutoencoderKL's (whose
    encoder is a down path without skips, time or attention, and whose decoder an up path alike)."""

    widths: list[int]
    layers: list[int]
    attention: list[bool]  # per level, down path
    up_attention: list[bool]  # per level (index = level), up path
    heads: list[int]
    mid: bool
    mid_attention: bool
    groups: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> Layout:
        """A UNet2DConditionModel config."""
        widths = list(config["block_out_channels"])
        n = len(widths)
        per_level = lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * n  # noqa: E731
        heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
        down = list(config.get("down_block_types", ()))
        up = list(config.get("up_block_types", ()))
        mid = config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
        return cls(
            widths=widths,
            layers=per_level(config.get("layers_per_block", 2)),
            attention=["CrossAttn" in t for t in down],
            up_attention=["CrossAttn" in t for t in reversed(up)],
            heads=per_level(heads),
            mid=mid is not None,
            mid_attention=mid is not None and "CrossAttn" in mid,
            groups=config.get("norm_num_groups", 32),
        )

    @classmethod
    def of_autoencoder(cls, config: dict[str, Any]) -> Layout:
        """An AutoencoderKL config: one width and depth list for encoder and decoder, attention in
        the mid blocks only (one head as wide as the stream, as diffusers builds it)."""
        widths = list(config["block_out_channels"])
        n = len(widths)
        return cls(
            widths=widths,
            layers=[config.get("layers_per_block", 1)] * n,
            attention=[False] * n,
            up_attention=[False] * n,
            heads=[1] * n,
            mid=True,
            mid_attention=config.get("mid_block_add_attention", True),
            groups=config.get("norm_num_groups", 32),
        )


def up_source_layer(j: int, kept: int, source: int) -> int:
    """Source up-block layer for target layer ``j`` of ``kept + 1`` (BK-SDM): the first from the first
    and the last from the last (their input widths match); between them, the layer whose skip source
    (a kept down layer) survives."""
    if j == 0:
        return 0
    if j == kept:
        return source
    return source - kept + j


def check_target(plan: Plan, src: Layout, tgt: Layout) -> None:
    """Refuse what no slicing of the source can give: more levels, depth or attention than it has."""
    n = len(tgt.widths)
    if n > len(src.widths):
        raise plan.fail(f"the target has {n} levels, the source only {len(src.widths)}")
    if n < len(src.widths):
        raise plan.fail(
            f"the target has {n} levels, the source {len(src.widths)}: removing a whole level is not "
            "supported (prune depth within levels)"
        )
    for level in range(n):
        if tgt.layers[level] > src.layers[level]:
            raise plan.fail(
                f"the target is deeper than the source at level {level} "
                f"({tgt.layers[level]} > {src.layers[level]} layers per block)"
            )
        if tgt.layers[level] < 1:
            raise plan.fail(f"level {level}: at least one layer per block is needed")
        for path, t_att, s_att in (("down", tgt.attention, src.attention), ("up", tgt.up_attention, src.up_attention)):
            if t_att[level] and not s_att[level]:
                raise plan.fail(f"the target has attention in its {path} block at level {level}, the source does not")
    if tgt.mid and not src.mid:
        raise plan.fail("the target has a mid block, the source does not")
    if tgt.mid_attention and not src.mid_attention:
        raise plan.fail("the target's mid block has attention, the source's does not")


def walk(plan: Plan, src: Layout, tgt: Layout) -> None:
    """A UNet2DConditionModel: time embedding, down path (skips kept), mid block, up path, output."""
    check_target(plan, src, tgt)
    G, g = src.groups, tgt.groups
    t1 = plan.space("time_embedding.linear_1", 1, 1)
    temb = plan.space("time_embedding", 1, 1)
    plan.take("time_embedding.linear_1.weight", "time_embedding.linear_1.weight", ([t1], TIMESTEP))
    plan.take("time_embedding.linear_1.bias", "time_embedding.linear_1.bias", ([t1],))
    plan.take("time_embedding.linear_2.weight", "time_embedding.linear_2.weight", ([temb], [t1]))
    plan.take("time_embedding.linear_2.bias", "time_embedding.linear_2.bias", ([temb],))

    prev = _conv_in(plan, "", G, g)
    prev, skips = _down_path(plan, "", src, tgt, prev, temb)
    if tgt.mid:
        attend = None
        if tgt.mid_attention:
            attend = lambda t, s: _attention(plan, t, s, prev, src.heads[-1], tgt.heads[-1], G, g)  # noqa: E731
        _mid(plan, "mid_block", prev, temb, G, g, attend)
    prev = _up_path(plan, "", src, tgt, prev, temb, skips)
    _conv_out(plan, "", prev)


def walk_autoencoder(plan: Plan, src: Layout, tgt: Layout) -> None:
    """An AutoencoderKL: the encoder (down path, mid block, output) and the decoder (input, mid block,
    up path without skip concatenations, output); quant_conv and post_quant_conv keep the latent width."""
    check_target(plan, src, tgt)
    G, g = src.groups, tgt.groups
    for prefix in ("encoder.", "decoder."):
        prev = _conv_in(plan, prefix, G, g)
        if prefix == "encoder.":
            prev, _ = _down_path(plan, prefix, src, tgt, prev, None)
        attend = (lambda t, s, stream=prev: _self_attention(plan, t, s, stream)) if tgt.mid_attention else None
        _mid(plan, f"{prefix}mid_block", prev, None, G, g, attend)
        if prefix == "decoder.":
            prev = _up_path(plan, prefix, src, tgt, prev, None, None)
        _conv_out(plan, prefix, prev)
    for conv in ("quant_conv", "post_quant_conv"):
        plan.take(f"{conv}.weight", f"{conv}.weight", (None, None, None, None))
        plan.take(f"{conv}.bias", f"{conv}.bias", (None,))


def _conv_in(plan: Plan, prefix: str, G: int, g: int) -> str:
    prev = plan.space(f"{prefix}conv_in", G, g)
    plan.take(f"{prefix}conv_in.weight", f"{prefix}conv_in.weight", ([prev], None, None, None))
    plan.take(f"{prefix}conv_in.bias", f"{prefix}conv_in.bias", ([prev],))
    return prev


def _conv_out(plan: Plan, prefix: str, prev: str) -> None:
    plan.take(f"{prefix}conv_norm_out.weight", f"{prefix}conv_norm_out.weight", ([prev],))
    plan.take(f"{prefix}conv_norm_out.bias", f"{prefix}conv_norm_out.bias", ([prev],))
    plan.take(f"{prefix}conv_out.weight", f"{prefix}conv_out.weight", (None, [prev], None, None))
    plan.take(f"{prefix}conv_out.bias", f"{prefix}conv_out.bias", (None,))


def _down_path(plan: Plan, prefix: str, src: Layout, tgt: Layout, prev: str, temb: str | None) -> tuple[str, list[str]]:
    """Down blocks keep their first layers (BK-SDM); returns the stream and every layer's output (the skips)."""
    G, g = src.groups, tgt.groups
    n = len(tgt.widths)
    skips = [prev]
    for level in range(n):
        stream = plan.space(f"{prefix}down{level}", G, g)
        for k in range(tgt.layers[level]):
            name = f"{prefix}down_blocks.{level}.resnets.{k}"
            _resnet(plan, name, name, [prev], stream, temb, G, g)
            if tgt.attention[level]:
                name = f"{prefix}down_blocks.{level}.attentions.{k}"
                _attention(plan, name, name, stream, src.heads[level], tgt.heads[level], G, g)
            plan.layers.append({"block": f"{prefix}down_blocks.{level}", "target": k, "source": k})
            prev = stream
            skips.append(stream)
        if level < n - 1:
            down = plan.space(f"{prefix}down{level}.downsampler", G, g)
            for p in ("weight", "bias"):
                conv = f"{prefix}down_blocks.{level}.downsamplers.0.conv.{p}"
                plan.take(conv, conv, ([down], [stream], None, None) if p == "weight" else ([down],))
            prev = down
            skips.append(down)
    return prev, skips


def _mid(plan: Plan, name: str, prev: str, temb: str | None, G: int, g: int, attend) -> None:
    """ResNet, attention (``attend(target, source)``; None: none), ResNet: all on one stream."""
    _resnet(plan, f"{name}.resnets.0", f"{name}.resnets.0", [prev], prev, temb, G, g)
    if attend:
        attend(f"{name}.attentions.0", f"{name}.attentions.0")
    _resnet(plan, f"{name}.resnets.1", f"{name}.resnets.1", [prev], prev, temb, G, g)


def _up_path(
    plan: Plan, prefix: str, src: Layout, tgt: Layout, prev: str, temb: str | None, skips: list[str] | None
) -> str:
    """Up blocks keep their first and last layers and those between whose skip source survives (BK-SDM);
    ``skips`` None: no concatenated inputs (a VAE decoder), the same layers kept."""
    G, g = src.groups, tgt.groups
    n = len(tgt.widths)
    for i in range(n):
        level = n - 1 - i
        kept, had = tgt.layers[level], src.layers[level]
        for j in range(kept + 1):
            m = up_source_layer(j, kept, had)
            inputs = [prev] if skips is None else [prev, skips.pop()]
            out = plan.space(f"{prefix}up{level}.{j}", G, g)
            _resnet(
                plan,
                f"{prefix}up_blocks.{i}.resnets.{j}",
                f"{prefix}up_blocks.{i}.resnets.{m}",
                inputs,
                out,
                temb,
                G,
                g,
            )
            if tgt.up_attention[level]:
                _attention(
                    plan,
                    f"{prefix}up_blocks.{i}.attentions.{j}",
                    f"{prefix}up_blocks.{i}.attentions.{m}",
                    out,
                    src.heads[level],
                    tgt.heads[level],
                    G,
                    g,
                )
            plan.layers.append({"block": f"{prefix}up_blocks.{i}", "target": j, "source": m})
            prev = out
        if i < n - 1:
            up = plan.space(f"{prefix}up{level}.upsampler", G, g)
            for p in ("weight", "bias"):
                conv = f"{prefix}up_blocks.{i}.upsamplers.0.conv.{p}"
                plan.take(conv, conv, ([up], [prev], None, None) if p == "weight" else ([up],))
            prev = up
    return prev


def _resnet(plan: Plan, t: str, s: str, inputs: list[str], out: str, temb: str | None, G: int, g: int) -> None:
    hidden = plan.space(f"{t}.hidden", G, g)
    for p in ("weight", "bias"):
        plan.take(f"{t}.norm1.{p}", f"{s}.norm1.{p}", (inputs,))
        plan.take(f"{t}.norm2.{p}", f"{s}.norm2.{p}", ([hidden],))
    plan.take(f"{t}.conv1.weight", f"{s}.conv1.weight", ([hidden], inputs, None, None))
    plan.take(f"{t}.conv1.bias", f"{s}.conv1.bias", ([hidden],))
    if temb is not None:
        plan.take(f"{t}.time_emb_proj.weight", f"{s}.time_emb_proj.weight", ([hidden], [temb]))
        plan.take(f"{t}.time_emb_proj.bias", f"{s}.time_emb_proj.bias", ([hidden],))
    plan.take(f"{t}.conv2.weight", f"{s}.conv2.weight", ([out], [hidden], None, None))
    plan.take(f"{t}.conv2.bias", f"{s}.conv2.bias", ([out],))
    if plan.has_target(f"{t}.conv_shortcut.weight"):
        if plan.has_source(f"{s}.conv_shortcut.weight"):
            plan.take(f"{t}.conv_shortcut.weight", f"{s}.conv_shortcut.weight", ([out], inputs, None, None))
            plan.take(f"{t}.conv_shortcut.bias", f"{s}.conv_shortcut.bias", ([out],))
        else:  # the source's identity shortcut, written as a 1x1 convolution that copies channels
            width = plan.source_shapes[f"{s}.conv2.bias"][0]
            plan.take(
                f"{t}.conv_shortcut.weight", lambda: torch.eye(width)[:, :, None, None], ([out], inputs, None, None)
            )
            plan.take(f"{t}.conv_shortcut.bias", lambda: torch.zeros(width), ([out],))
    else:
        if len(inputs) != 1:
            raise plan.fail(f"{t}: a concatenated input needs a shortcut convolution")
        if plan.has_source(f"{s}.conv_shortcut.weight"):
            raise plan.fail(
                f"{t}: the target keeps its width across this layer where the source changes it "
                "(no shortcut convolution to inherit)"
            )
        plan.tie(inputs[0], out)


def _attention(plan: Plan, t: str, s: str, stream: str, heads_s: int, heads_t: int, G: int, g: int) -> None:
    inner = plan.space(f"{t}.inner", 1, 1)  # the transformer's own residual stream (LayerNorms)
    for p in ("weight", "bias"):
        plan.take(f"{t}.norm.{p}", f"{s}.norm.{p}", ([stream],))
    kernel = (None, None) if len(plan.target_shapes.get(f"{t}.proj_in.weight", ())) == 4 else ()
    plan.take(f"{t}.proj_in.weight", f"{s}.proj_in.weight", ([inner], [stream], *kernel))
    plan.take(f"{t}.proj_in.bias", f"{s}.proj_in.bias", ([inner],))
    plan.take(f"{t}.proj_out.weight", f"{s}.proj_out.weight", ([stream], [inner], *kernel))
    plan.take(f"{t}.proj_out.bias", f"{s}.proj_out.bias", ([stream],))
    b = 0
    while plan.has_target(f"{t}.transformer_blocks.{b}.norm1.weight"):
        tb, sb = f"{t}.transformer_blocks.{b}", f"{s}.transformer_blocks.{b}"
        if not plan.has_source(f"{sb}.norm1.weight"):
            raise plan.fail(f"the target is deeper than the source: {tb} has no source")
        for p in ("weight", "bias"):
            for norm in ("norm1", "norm2", "norm3"):
                plan.take(f"{tb}.{norm}.{p}", f"{sb}.{norm}.{p}", ([inner],))
        for attn in ("attn1", "attn2"):
            context = [inner] if attn == "attn1" else None  # cross-attention reads the text (not pruned)
            _qkv(plan, f"{tb}.{attn}", f"{sb}.{attn}", inner, context, heads_s, heads_t)
        ff = plan.space(f"{tb}.ff", 1, 1)
        plan.take(f"{tb}.ff.net.0.proj.weight", f"{sb}.ff.net.0.proj.weight", ([ff, ff], [inner]))  # GEGLU halves
        plan.take(f"{tb}.ff.net.0.proj.bias", f"{sb}.ff.net.0.proj.bias", ([ff, ff],))
        plan.take(f"{tb}.ff.net.2.weight", f"{sb}.ff.net.2.weight", ([inner], [ff]))
        plan.take(f"{tb}.ff.net.2.bias", f"{sb}.ff.net.2.bias", ([inner],))
        b += 1


def _self_attention(plan: Plan, t: str, s: str, stream: str) -> None:
    """A VAE mid block's attention: GroupNorm, then one head as wide as the stream, added back to it."""
    for p in ("weight", "bias"):
        plan.take(f"{t}.group_norm.{p}", f"{s}.group_norm.{p}", ([stream],))
    _qkv(plan, t, s, stream, [stream], 1, 1)


def _qkv(plan: Plan, t: str, s: str, stream: str, context: list[str] | None, heads_s: int, heads_t: int) -> None:
    """to_q/to_k/to_v/to_out of one attention over ``stream`` (keys and values from ``context``; None: a
    width that is not pruned, e.g. the text), pruned head by head; queries rescaled for the new head width."""
    qk = plan.space(f"{t}.qk", heads_s, heads_t)
    vo = plan.space(f"{t}.vo", heads_s, heads_t)
    plan.take(f"{t}.to_q.weight", f"{s}.to_q.weight", ([qk], [stream]), head_scale=qk)
    plan.take(f"{t}.to_q.bias", f"{s}.to_q.bias", ([qk],), head_scale=qk)
    plan.take(f"{t}.to_k.weight", f"{s}.to_k.weight", ([qk], context))
    plan.take(f"{t}.to_k.bias", f"{s}.to_k.bias", ([qk],))
    plan.take(f"{t}.to_v.weight", f"{s}.to_v.weight", ([vo], context))
    plan.take(f"{t}.to_v.bias", f"{s}.to_v.bias", ([vo],))
    plan.take(f"{t}.to_out.0.weight", f"{s}.to_out.0.weight", ([stream], [vo]))
    plan.take(f"{t}.to_out.0.bias", f"{s}.to_out.0.bias", ([stream],))


def head_scale(space: Space) -> float:
    """Query rescale that keeps the softmax temperature when a head keeps d_t of its d_s dims: logits
    were a sum over d_s products / sqrt(d_s); the kept d_t products best stand in for it at 1/sqrt(d_s)."""
    d_s, d_t = space.width_s // space.groups_s, space.width_t // space.groups_t
    return math.sqrt(d_t / d_s)
