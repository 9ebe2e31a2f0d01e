"""The table plan: every OpKey a search space can ask a device table for, once each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from nas.cost.table import FIXED_PARTS, KEY_COLUMNS, SPATIAL
from nas.errors import NasError
from nas.ops import OpKey, op_spec
from nas.ops.key import parse_params
from nas.outputs import claim
from nas.space import SearchSpace
from nas.space.choice import Choice
from nas.space.generation import CLIP, DECODER, FixedPart
from nas.space.search_space import Slot


def backbone_fingerprint(space: SearchSpace) -> str:
    """Ten hex digits that change with anything the spatial UNet's cost depends on besides the clip shape.

    Two backbones of the same first width are different rows; the same backbone in two spaces
    (say one with fewer choices) shares its row.
    """
    spec = {
        "backbone": space.backbone,
        "text_tokens": space.text_tokens,
        "latent_channels": space.video.latent_channels,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


def part_fingerprint(part: FixedPart) -> str:
    """Ten hex digits of what a fixed part's cost depends on (its config's structure, not its name or weights):
    SD1.5's built-in decoder and a saved folder of the same config share their row."""
    spec = {"kind": part.kind, **part.structure}
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


def fixed_part_key(space: SearchSpace, kind: str) -> OpKey:
    """The table key of a fixed part of ``space``'s generation.

    ``text_encoder``: channels = its width, one prompt of ``text_tokens`` tokens (height), width 1.
    ``decoder``: its input, channels = latent channels at the latent's height and width, one frame
    (``decode: per_frame``, run once per latent frame) or the clip's frames (``clip``, run once).
    params names the part's fingerprint (:func:`part_fingerprint`).
    """
    generation = space.generation
    part = generation.part(kind)
    params = {kind: part_fingerprint(part)}
    if kind == DECODER:
        v = space.video
        frames = v.frames if generation.decode == CLIP else 1
        return OpKey.of(kind, v.latent_channels, frames, v.latent_height, v.latent_width, params)
    return OpKey.of(kind, part.structure["hidden_size"], 1, space.text_tokens, 1, params)


def fixed_part_calls(space: SearchSpace, kind: str) -> int:
    """How many times one generation runs a fixed part's key: the decoder once per frame (per_frame) or once."""
    if kind == DECODER and space.generation.decode != CLIP:
        return space.video.frames
    return 1


def spatial_key(space: SearchSpace) -> OpKey:
    """The spatial UNet over one clip; channels is the first block width, params the backbone's fingerprint."""
    v = space.video
    return OpKey.of(
        SPATIAL,
        space.backbone["block_out_channels"][0],
        v.frames,
        v.latent_height,
        v.latent_width,
        {"backbone": backbone_fingerprint(space)},
    )


def choice_key(space: SearchSpace, slot: Slot, choice: Choice) -> OpKey | None:
    """Key of one layer of ``choice`` at ``slot`` (None for the ``none`` op, which costs nothing)."""
    if choice.is_none:
        return None
    return op_spec(choice.op).key(slot.channels, space.video.frames, slot.height, slot.width, choice.param_dict)


def table_plan(space: SearchSpace) -> list[OpKey]:
    """Unique keys in a stable order: the spatial UNet first, the fixed parts (text encoder, decoder), then ops
    by slot order."""
    keys = [spatial_key(space), *(fixed_part_key(space, kind) for kind in FIXED_PARTS)]
    for slot in space.slots:
        for choice in slot.choices:
            key = choice_key(space, slot, choice)
            if key is not None and key not in keys:
                keys.append(key)
    return keys


def plan_frame(keys: list[OpKey]) -> pd.DataFrame:
    return pd.DataFrame([k.as_dict() for k in keys], columns=KEY_COLUMNS)


def space_plan(space_path: str | Path, out: str | Path | None = None) -> pd.DataFrame:
    """``nas table plan``: every key of the space at ``space_path``, written to ``out`` if given (not over the space)."""
    claim((), [space_path], named=[out])
    frame = plan_frame(table_plan(SearchSpace.load(space_path)))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
    return frame


def read_plan(path: str | Path) -> list[OpKey]:
    """The keys of a plan CSV (as ``nas table plan`` writes it, possibly cut down by hand).

    A plan lets one device measure part of a space (``nas profile --plan``); a wrong column set
    or a key that does not parse is one line naming the file, before any worker starts.
    """
    path = Path(path)
    if not path.is_file():
        raise NasError(f"{path}: no such plan")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != KEY_COLUMNS:
        raise NasError(f"{path}: a plan has the columns {', '.join(KEY_COLUMNS)}")
    try:
        return [
            OpKey.of(op, c, f, h, w, parse_params(params)) for op, c, f, h, w, params in frame.itertuples(index=False)
        ]
    except ValueError as exc:
        raise NasError(f"{path}: {exc}") from None
