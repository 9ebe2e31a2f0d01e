"""Architecture: one choice per slot of a search space, with a stable short id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.space.choice import NONE, Choice, parse_op
from nas.space.yaml_io import read_yaml_mapping, write_yaml

if TYPE_CHECKING:
    from nas.space.search_space import SearchSpace


@dataclass(frozen=True)
class Architecture:
    """Choices in slot order; equal architectures have equal ids whatever file they came from."""

    space_name: str
    choices: tuple[tuple[str, Choice], ...]

    @property
    def id(self) -> str:
        """First 10 hex digits of the SHA-1 of the canonical slot mapping."""
        canonical = json.dumps(self.slots_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:10]

    def choice(self, slot_name: str) -> Choice:
        return dict(self.choices)[slot_name]

    def slots_dict(self) -> dict[str, dict[str, Any]]:
        return {name: choice.as_dict() for name, choice in self.choices}

    def to_dict(self) -> dict[str, Any]:
        """Canonical form, as written to YAML (``id`` is informative and recomputed on load)."""
        return {"space": self.space_name, "id": self.id, "slots": self.slots_dict()}

    def save(self, path: str | Path) -> Path:
        return write_yaml(path, self.to_dict())

    def describe(self) -> str:
        return " ".join(f"{name}={choice.label}" for name, choice in self.choices)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> Architecture:
        data = read_yaml_mapping(path)
        named = data.get("space")
        if named is not None and named != space.name:
            raise NasError(f"{path}: architecture is for space {named!r}, not {space.name!r} ({space.source})")
        return cls.from_dict(space, data, source=str(path))

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any], source: str = "<dict>") -> Architecture:
        """Validate ``{'slots': {slot: {op, count, **params}}}`` against ``space``."""
        slots = data.get("slots")
        if not isinstance(slots, dict):
            raise NasError(f"{source}: 'slots' must map every slot of space {space.name!r} to a choice")
        unknown = [name for name in slots if name not in space.slot_names]
        if unknown:
            raise NasError(
                f"{source}: slot {unknown[0]!r} is not in space {space.name!r} (slots: {', '.join(space.slot_names)})"
            )
        missing = [name for name in space.slot_names if name not in slots]
        if missing:
            raise NasError(f"{source}: no choice for slot(s) {', '.join(missing)} (write {{op: none}} for none)")
        choices = []
        for slot in space.slots:
            choice = _parse_choice(slots[slot.name], slot, f"{source}: slot {slot.name}")
            if choice not in slot.choices:
                allowed = ", ".join(c.label for c in slot.choices)
                raise NasError(
                    f"{source}: slot {slot.name}: {choice.label} is not a choice of this slot (choices: {allowed})"
                )
            choices.append((slot.name, choice))
        return cls(space.name, tuple(choices))

    @classmethod
    def from_labels(cls, space: SearchSpace, labels: dict[str, str]) -> Architecture:
        """The architecture whose slots hold the choices with these labels (optuna's params, CSV columns)."""
        return cls(
            space.name,
            tuple((slot.name, next(c for c in slot.choices if c.label == labels[slot.name])) for slot in space.slots),
        )


def _parse_choice(raw: Any, slot, where: str) -> Choice:
    if raw == NONE or raw is None:
        return Choice(NONE)
    if not isinstance(raw, dict) or "op" not in raw:
        raise NasError(f"{where}: expected a mapping like {{op: attn1d, count: 1, heads: 8}}, got {raw!r}")
    try:
        op, params = parse_op(raw, other_keys=("count",))
    except ValueError as exc:
        raise NasError(f"{where}: {exc}") from None
    if op is None:
        return Choice(NONE)
    op_name = raw["op"]
    # What is left out is taken from the slot when the slot offers a single value for it.
    offered = [c for c in slot.choices if c.op == op_name]
    for name, default in op.defaults.items():
        if name not in params:
            values = sorted({c.param_dict[name] for c in offered})
            if len(values) > 1:
                raise NasError(f"{where}: give {name} (this slot allows {values})")
            params[name] = values[0] if values else default
    counts = sorted({c.count for c in offered})
    count = raw.get("count", counts[0] if len(counts) == 1 else None)
    if not isinstance(count, int) or isinstance(count, bool):
        raise NasError(f"{where}: 'count' must be an integer (this slot allows {counts or 'none'})")
    return Choice(op_name, count, tuple(sorted(params.items())))
