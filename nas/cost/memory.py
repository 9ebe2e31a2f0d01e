"""The activation context a slot runs in: what the spatial UNet holds live around its temporal layers."""

from __future__ import annotations

from nas.space import SearchSpace


def slot_context_bytes(space: SearchSpace, dtype_bytes: int) -> dict[str, int]:
    """Bytes the spatial UNet holds live when each slot's temporal layers run (batch 1 clip).

    That is the skip connections stored so far (down path) or still to be consumed (up path),
    the current hidden state, and the per-frame text embeddings; a temporal layer's own working
    set comes on top of this.
    """
    backbone = space.backbone
    channels = backbone["block_out_channels"]
    levels = len(channels)
    per_block = backbone.get("layers_per_block", 2)
    layers = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block] * levels
    frames = space.video.frames

    def size(level: int, width: int) -> int:
        h, w = space.video.level_size(level)
        return frames * width * h * w

    text = frames * space.text_tokens * space.cross_attention_dim
    skips = [size(0, channels[0])]  # conv_in output
    at: dict[tuple[str, int, int], int] = {}
    for level in range(levels):
        for position in range(layers[level]):
            current = size(level, channels[level])
            at[("down", level, position)] = sum(skips) + current
            skips.append(current)
        if level < levels - 1:
            skips.append(size(level + 1, channels[level]))
    at[("mid", levels - 1, 0)] = sum(skips) + size(levels - 1, channels[-1])
    for level in reversed(range(levels)):
        for position in range(layers[level] + 1):
            skips.pop()
            at[("up", level, position)] = sum(skips) + size(level, channels[level])
    return {s.name: (at[(s.path, s.level, s.position)] + text) * dtype_bytes for s in space.slots}
