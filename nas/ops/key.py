"""OpKey: the lookup key of one measured thing in a device table.

Every row of a latency table and every cost the cost model sums is addressed by an OpKey.
``params`` carries every parameter of the op (its defaults filled in) as one canonical text,
``name=value`` pairs sorted by name and joined by ``;`` (``heads=4``, ``fold=8;kernel=3``), so
two settings of any parameter, a user op's included, are two rows, and keys of different ops
share one CSV schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def format_params(params: Mapping[str, Any]) -> str:
    """Canonical text of an op's parameters (sorted ``name=value`` joined by ``;``)."""
    parts = []
    for name in sorted(params):
        value = params[name]
        text = (
            str(int(value))
            if isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
            else str(value)
        )
        if not _NAME.match(str(name)) or not _VALUE.match(text):
            raise ValueError(f"op parameter {name}={value!r} cannot be part of a table key")
        parts.append(f"{name}={text}")
    return ";".join(parts)


def parse_params(text: str) -> dict[str, int | str]:
    """Inverse of :func:`format_params`; integer values come back as ints. Raises ValueError."""
    out: dict[str, int | str] = {}
    if not text.strip():
        return out
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or not _NAME.match(name) or not _VALUE.match(value):
            raise ValueError(f"params must be name=value pairs joined by ';', got {text!r}")
        if name in out:
            raise ValueError(f"params name {name!r} twice in {text!r}")
        out[name] = int(value) if re.fullmatch(r"-?\d+", value) and str(int(value)) == value else value
    return out


@dataclass(frozen=True, order=True)
class OpKey:
    """One op at one shape with all its parameters: the unit a profiler measures and a table stores."""

    op: str
    channels: int
    frames: int
    height: int
    width: int
    params: str = ""

    @classmethod
    def of(
        cls, op: str, channels: int, frames: int, height: int, width: int, params: Mapping[str, Any] | None = None
    ) -> OpKey:
        return cls(op, int(channels), int(frames), int(height), int(width), format_params(params or {}))

    @classmethod
    def columns(cls) -> list[str]:
        """Column names, in order, as they appear in table CSVs."""
        return [f.name for f in fields(cls)]

    @property
    def param_dict(self) -> dict[str, int | str]:
        return parse_params(self.params)

    @property
    def heads(self) -> int:
        return int(self.param_dict.get("heads", 0))

    @property
    def kernel(self) -> int:
        return int(self.param_dict.get("kernel", 0))

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """Human form for messages: ``attn1d(channels=320, frames=16, 40x64, heads=8)``."""
        params = ", ".join(f"{k}={v}" for k, v in self.param_dict.items())
        return (
            f"{self.op}(channels={self.channels}, frames={self.frames}, {self.height}x{self.width}"
            + (f", {params}" if params else "")
            + ")"
        )

    def row_text(self) -> str:
        """The key as table columns, as sidecars and row errors name a row: ``op=attn1d channels=320 ...``
        (zero columns left out)."""
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items() if v != 0)
