"""OpKey: the lookup key of one measured thing in a device table.

Every row of a latency table and every cost the cost model sums is addressed by an OpKey.
Fields that do not apply to an op are 0, so keys of different ops share one CSV schema.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True, order=True)
class OpKey:
    """One op at one shape: the unit a profiler measures and a table stores."""

    op: str
    channels: int
    frames: int
    height: int
    width: int
    heads: int = 0
    kernel: int = 0

    @classmethod
    def columns(cls) -> list[str]:
        """Column names, in order, as they appear in table CSVs."""
        return [f.name for f in fields(cls)]

    def as_dict(self) -> dict:
        return asdict(self)
