"""SearchSpace: a spatial backbone, a video shape, and the slots where temporal layers go.

Loaded from YAML (see ``search_spaces/``) and validated in full at load time, so that a
mistake in a space is reported once, naming the file, before any search or training starts.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.options import renamed_keys
from nas.space.choice import NONE, Choice, parse_op
from nas.space.generation import Generation, parse_generation
from nas.space.library_cache import kept
from nas.space.yaml_io import read_yaml_mapping

if TYPE_CHECKING:
    import numpy as np

    from nas.space.architecture import Architecture

PATHS = ("down", "mid", "up")
DOWN_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D"}
UP_BLOCKS = {"CrossAttnUpBlock2D", "UpBlock2D"}
MID_BLOCKS = {"UNetMidBlock2DCrossAttn", None}
BUDGET_RENAMES = {"steps": "passes", "memory_mb": "peak_memory_mb"}  # old budgets key -> its name now
# Backbone options that add conditioning paths the video forward does not implement.
UNSUPPORTED_BACKBONE_KEYS = (
    "class_embed_type",
    "addition_embed_type",
    "encoder_hid_dim",
    "encoder_hid_dim_type",
    "time_cond_proj_dim",
    "num_class_embeds",
)


@dataclass(frozen=True)
class VideoShape:
    """Clip size in pixels and frames; the latent is pixels / latent_scale."""

    frames: int
    height: int
    width: int
    latent_scale: int = 8
    latent_channels: int = 4

    @property
    def latent_height(self) -> int:
        return self.height // self.latent_scale

    @property
    def latent_width(self) -> int:
        return self.width // self.latent_scale

    def level_size(self, level: int) -> tuple[int, int]:
        """Latent (height, width) at a resolution level (0 = full latent, each level halves)."""
        return self.latent_height >> level, self.latent_width >> level


@dataclass(frozen=True)
class Slot:
    """A place for temporal layers: after spatial layer ``position`` of the ``path`` block at ``level``."""

    name: str
    path: str
    level: int
    position: int
    channels: int
    height: int
    width: int
    choices: tuple[Choice, ...]

    def placement(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "level": self.level, "position": self.position}


@dataclass(frozen=True)
class SearchSpace:
    """A search space; build with :meth:`load` (YAML file) or :meth:`from_dict`."""

    name: str
    backbone: dict[str, Any]
    video: VideoShape
    slots: tuple[Slot, ...]
    architectures: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    text_tokens: int = 77
    description: str = ""
    source: str = "<dict>"
    prune_from: dict[str, Any] | None = None  # where the backbone's 2D weights come from (`nas prune`)
    generation_given: dict[str, Any] | None = None  # the ``generation`` mapping as written (None: not given)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        return cls.from_dict(read_yaml_mapping(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> SearchSpace:
        def fail(problem: str) -> NasError:
            return NasError(f"{source}: {problem}")

        known = {
            "name",
            "description",
            "backbone",
            "video",
            "text_tokens",
            "choices",
            "counts",
            "slots",
            "architectures",
            "budgets",
            "prune_from",
            "generation",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise fail(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise fail("'name' must be a non-empty string")
        backbone = _backbone_config(data.get("backbone"), fail)
        levels = len(backbone["block_out_channels"])
        video = _video_shape(data.get("video"), levels, fail)
        default_choices = data.get("choices")
        default_counts = data.get("counts", [1])
        raw_slots = data.get("slots")
        if not isinstance(raw_slots, list) or not raw_slots:
            raise fail("'slots' must be a non-empty list")
        slots = []
        for index, raw in enumerate(raw_slots):
            slots.append(_slot(raw, index, backbone, video, default_choices, default_counts, fail))
        names = [s.name for s in slots]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise fail(f"slot name(s) used twice: {', '.join(duplicated)}")
        places = [(s.path, s.level, s.position) for s in slots]
        if len(set(places)) != len(places):
            raise fail("two slots share the same path, level and position")
        architectures = data.get("architectures", {}) or {}
        if not isinstance(architectures, dict):
            raise fail("'architectures' must map names to architectures")
        budgets = _budgets(data.get("budgets", {}) or {}, fail, source)
        text_tokens = data.get("text_tokens", 77)
        if not (isinstance(text_tokens, int) and text_tokens > 0):
            raise fail(f"'text_tokens' must be a positive integer, got {text_tokens!r}")
        space = cls(
            name=name,
            backbone=backbone,
            video=video,
            slots=tuple(slots),
            architectures=architectures,
            budgets=budgets,
            text_tokens=text_tokens,
            description=str(data.get("description", "")),
            source=source,
            prune_from=_prune_from(data.get("prune_from"), fail),
            generation_given=data.get("generation"),
        )
        if space.generation_given is not None:
            space.generation  # noqa: B018  (a mistake in the fixed parts named is reported now)
        for arch_name in architectures:
            space.architecture(arch_name)  # validates every named architecture now
        space.params_spatial  # noqa: B018  (builds the backbone on meta: catches bad configs now)
        return space

    # ---------------------------------------------------------------- queries
    @cached_property
    def generation(self) -> Generation:
        """The text encoder and decoder a whole generation is priced with (:mod:`nas.space.generation`).

        Checked at load when the space names them; SD1.5's, the default for a space that does not,
        are checked against it on first use (pricing), so that a space of another shape that is
        never priced loads as before."""

        def fail(problem: str) -> NasError:
            if self.generation_given is None:
                problem += " (the space has no 'generation' key: SD1.5's parts are the default; name its own there)"
            return NasError(f"{self.source}: {problem}")

        return parse_generation(self.generation_given, self, fail)

    def slot(self, name: str) -> Slot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)

    @property
    def slot_names(self) -> list[str]:
        return [s.name for s in self.slots]

    @property
    def num_architectures(self) -> int:
        return math.prod(len(s.choices) for s in self.slots)

    @property
    def cross_attention_dim(self) -> int:
        dim = self.backbone.get("cross_attention_dim", 1280)
        return dim if isinstance(dim, int) else dim[0]

    @cached_property
    def params_spatial(self) -> int:
        """Parameters of the spatial backbone (counted on the meta device once, then read from a cache file:
        :mod:`nas.space.library_cache`)."""
        try:
            key = json.dumps(self.backbone, sort_keys=True)
        except TypeError:  # a value JSON cannot write (given through the API): counted, not remembered
            key = None
        try:
            return _count_backbone_params(self.backbone) if key is None else _backbone_params(key)
        except (TypeError, ValueError, AttributeError) as exc:
            raise NasError(f"{self.source}: backbone: {exc}") from None

    def architecture(self, name_or_path: str | Path):
        """A named architecture of this space, or one read from an architecture YAML file."""
        from nas.space.architecture import Architecture

        if isinstance(name_or_path, str) and name_or_path in self.architectures:
            return Architecture.from_dict(
                self,
                {"slots": self.architectures[name_or_path]},
                source=f"{self.source}: architecture {name_or_path!r}",
            )
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(self.architectures) or "none"
            raise NasError(
                f"{path}: no such architecture file, nor a named architecture of {self.source} (named: {known})"
            )
        return Architecture.load(path, self)

    def sample(self, seed: int | None = None):
        """A uniformly random architecture (one choice per slot)."""
        from nas.space.architecture import Architecture

        rng = random.Random(seed)
        return Architecture(self.name, tuple((s.name, rng.choice(s.choices)) for s in self.slots))

    def enumerate(self) -> Iterator:
        """Every architecture of the space, in slot-major order (use only for small spaces)."""
        from nas.space.architecture import Architecture

        for combo in itertools.product(*(s.choices for s in self.slots)):
            yield Architecture(self.name, tuple(zip(self.slot_names, combo)))

    # ---------------------------------------------------------------- choice rows
    # Many architectures at once are an int array, one row each, one column per slot holding the
    # index of its choice in ``slot.choices``: what vectorised pricing (CostModel.price), vectorised
    # proxies (score_many) and the search's table screen work on.
    def encode(self, architecture: Architecture) -> np.ndarray:
        """The choice row of ``architecture``."""
        import numpy as np

        return np.array([slot.choices.index(architecture.choice(slot.name)) for slot in self.slots])

    def decode(self, row: np.ndarray) -> Architecture:
        """The architecture of a choice row."""
        from nas.space.architecture import Architecture

        return Architecture(self.name, tuple((slot.name, slot.choices[int(i)]) for slot, i in zip(self.slots, row)))

    def random_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random choice rows, drawn slot by slot from the numpy Generator ``rng``."""
        import numpy as np

        return np.stack([rng.integers(0, len(slot.choices), n) for slot in self.slots], axis=1)

    def summary(self) -> dict[str, Any]:
        """Plain-data description for ``nas space show --json``."""
        return {
            "name": self.name,
            "source": self.source,
            "video": {
                "frames": self.video.frames,
                "height": self.video.height,
                "width": self.video.width,
                "latent_scale": self.video.latent_scale,
                "latent_height": self.video.latent_height,
                "latent_width": self.video.latent_width,
            },
            "params_spatial": self.params_spatial,
            "num_architectures": self.num_architectures,
            "slots": [
                {
                    **s.placement(),
                    "channels": s.channels,
                    "height": s.height,
                    "width": s.width,
                    "choices": [c.label for c in s.choices],
                }
                for s in self.slots
            ],
            "architectures": list(self.architectures),
            "budgets": self.budgets,
            "generation": self.generation_given or {"decoder": "sd15", "text_encoder": "sd15", "decode": "per_frame"},
        }


# -------------------------------------------------------------------- validation helpers
def _backbone_config(raw: Any, fail) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail("'backbone' must be a mapping (a diffusers UNet2DConditionModel config)")
    config = dict(raw)
    channels = config.get("block_out_channels")
    if not (isinstance(channels, list) and channels and all(isinstance(c, int) and c > 0 for c in channels)):
        raise fail("backbone.block_out_channels must be a list of positive integers")
    for key, allowed in (("down_block_types", DOWN_BLOCKS), ("up_block_types", UP_BLOCKS)):
        types = config.get(key)
        if not isinstance(types, list) or len(types) != len(channels):
            raise fail(f"backbone.{key} must list one block per level ({len(channels)})")
        bad = [t for t in types if t not in allowed]
        if bad:
            raise fail(f"backbone.{key}: unsupported block type {bad[0]!r} (supported: {', '.join(sorted(allowed))})")
    if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") not in MID_BLOCKS:
        raise fail(f"backbone.mid_block_type must be UNetMidBlock2DCrossAttn or null, got {config['mid_block_type']!r}")
    for key in UNSUPPORTED_BACKBONE_KEYS:
        if config.get(key) is not None:
            raise fail(f"backbone.{key} is not supported by the video UNet")
    groups = config.get("norm_num_groups", 32)
    if not isinstance(groups, int) or any(c % groups for c in channels):
        raise fail(f"backbone.norm_num_groups ({groups!r}) must divide every block_out_channels entry")
    return config


def _prune_from(raw: Any, fail) -> dict[str, Any] | None:
    """Optional ``prune_from``: the pretrained UNet the backbone is pruned from and how (``nas prune``)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise fail("'prune_from' must be a mapping (model, importance, calibration_batches)")
    unknown = sorted(set(raw) - {"model", "importance", "calibration_batches"})
    if unknown:
        raise fail(f"prune_from: unknown key(s) {', '.join(unknown)} (known: calibration_batches, importance, model)")
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise fail("prune_from.model must name the pretrained UNet (a non-empty string)")
    if raw.get("importance", "l1") not in ("l1", "taylor"):
        raise fail(f"prune_from.importance must be l1 or taylor, got {raw['importance']!r}")
    batches = raw.get("calibration_batches", 2)
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 1:
        raise fail(f"prune_from.calibration_batches must be a positive integer, got {batches!r}")
    return {"model": raw["model"], "importance": raw.get("importance", "l1"), "calibration_batches": batches}


def _video_shape(raw: Any, levels: int, fail) -> VideoShape:
    if not isinstance(raw, dict):
        raise fail("'video' must be a mapping with frames, height, width (pixels) and latent_scale")
    known = {"frames", "height", "width", "latent_scale", "latent_channels"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"video: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key in ("frames", "height", "width"):
        if key not in raw:
            raise fail(f"video.{key} is missing")
    for key, value in raw.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise fail(f"video.{key} must be a positive integer, got {value!r}")
    video = VideoShape(**raw)
    divisor = video.latent_scale * 2 ** (levels - 1)
    for key in ("height", "width"):
        pixels = getattr(video, key)
        if pixels % divisor:
            raise fail(
                f"video.{key} {pixels} px is not divisible by {divisor} "
                f"(latent_scale {video.latent_scale} x 2^{levels - 1} downsamplings)"
            )
    return video


def _budgets(raw: Any, fail, source: str) -> dict[str, float]:
    """The search's default limits; ``passes`` is UNet evaluations per generation, ``peak_memory_mb`` the
    predicted peak memory of a generation (old names, read with a deprecation line: :data:`BUDGET_RENAMES`)."""
    if not isinstance(raw, dict):
        raise fail("'budgets' must be a mapping")
    raw = renamed_keys(raw, BUDGET_RENAMES, f"{source}: budgets")
    known = {"latency_ms", "peak_memory_mb", "passes"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"budgets: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key, value in raw.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise fail(f"budgets.{key} must be a positive number, got {value!r}")
    return dict(raw)


def _block_layers(backbone: dict[str, Any], path: str, level: int) -> int:
    """Number of spatial layers (resnet[+attention]) of the block at ``level`` on ``path``."""
    if path == "mid":
        return 1
    levels = len(backbone["block_out_channels"])
    per_block = backbone.get("layers_per_block", 2)
    per_level = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block] * levels
    return per_level[level] + (1 if path == "up" else 0)


def _slot(raw, index, backbone, video, default_choices, default_counts, fail) -> Slot:
    if not isinstance(raw, dict):
        raise fail(f"slots[{index}] must be a mapping with name, path and level")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"slots[{index}] needs a 'name'")
    where = f"slot {name}"
    unknown = sorted(set(raw) - {"name", "path", "level", "position", "choices", "counts"})
    if unknown:
        raise fail(f"{where}: unknown key(s) {', '.join(unknown)}")
    path = raw.get("path")
    if path not in PATHS:
        raise fail(f"{where}: path must be one of {', '.join(PATHS)}, got {path!r}")
    channels_per_level = backbone["block_out_channels"]
    levels = len(channels_per_level)
    level = raw.get("level", levels - 1 if path == "mid" else None)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < levels:
        raise fail(f"{where}: level {level!r} does not exist (the backbone has levels 0-{levels - 1})")
    if path == "mid":
        if backbone.get("mid_block_type", "UNetMidBlock2DCrossAttn") is None:
            raise fail(f"{where}: the backbone has no mid block (mid_block_type is null)")
        if level != levels - 1:
            raise fail(f"{where}: the mid block is at level {levels - 1}, not {level}")
    layers = _block_layers(backbone, path, level)
    position = raw.get("position", layers - 1)
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < layers:
        raise fail(
            f"{where}: position {position!r} does not exist (the {path} block at level {level} "
            f"has positions 0-{layers - 1})"
        )
    height, width = video.level_size(level)
    choices = _choices(
        raw.get("choices", default_choices),
        raw.get("counts", default_counts),
        channels_per_level[level],
        f"{where}",
        fail,
    )
    return Slot(name, path, level, position, channels_per_level[level], height, width, choices)


def _choices(raw, counts, channels, where, fail) -> tuple[Choice, ...]:
    if raw is None:
        raise fail(f"{where}: no choices (give 'choices' at the top level or in the slot)")
    if not isinstance(raw, list) or not raw:
        raise fail(f"{where}: choices is empty")
    if not (isinstance(counts, list) and counts and all(isinstance(c, int) and c > 0 for c in counts)):
        raise fail(f"{where}: counts must be a non-empty list of positive integers, got {counts!r}")
    expanded: list[Choice] = []
    for entry in raw:
        entry = {"op": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or "op" not in entry:
            raise fail(f"{where}: each choice must be a mapping with an 'op', got {entry!r}")
        try:
            op, given = parse_op(entry)
        except ValueError as exc:
            raise fail(f"{where}: {exc}") from None
        if op is None:
            expanded.append(Choice(NONE))
            continue
        op_name = entry["op"]
        grid = {k: (v if isinstance(v, list) else [v]) for k, v in {**op.defaults, **given}.items()}
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            try:
                op.check_params(channels, params)
            except ValueError as exc:
                raise fail(f"{where}: {exc}") from None
            expanded.extend(Choice(op_name, count, tuple(sorted(params.items()))) for count in counts)
    if len(set(expanded)) != len(expanded):
        raise fail(f"{where}: the same choice is listed twice")
    return tuple(expanded)


@functools.lru_cache(maxsize=256)
def _backbone_params(config: str) -> int:
    """:func:`_count_backbone_params` of a backbone config (JSON), once per config and diffusers version.

    Every command and every API call that loads a space counts its backbone (building it on meta:
    ~0.2 s for the tiny space, ~1 s for SD1.5's, after ~3 s importing torch and diffusers), and a
    search loads its space in several places: once per process, and kept on disk between processes.
    """
    return int(kept("backbone_params", "diffusers", config, lambda: _count_backbone_params(json.loads(config))))


def _count_backbone_params(backbone: dict[str, Any]) -> int:
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**backbone)
    return sum(p.numel() for p in unet.parameters())
