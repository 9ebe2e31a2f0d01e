"""Choice: what one slot of an architecture holds (an op type, its hyperparameters, a count)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NONE = "none"


@dataclass(frozen=True, order=True)
class Choice:
    """``count`` stacked layers of ``op`` with ``params``; ``none`` has count 0 and no params."""

    op: str
    count: int = 0
    params: tuple[tuple[str, int], ...] = field(default=())

    @property
    def is_none(self) -> bool:
        return self.op == NONE

    @property
    def param_dict(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def label(self) -> str:
        """Short human form, e.g. ``attn1d(heads=8)x2`` or ``none``."""
        if self.is_none:
            return NONE
        inner = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.op}({inner})x{self.count}"

    def as_dict(self) -> dict[str, Any]:
        """Canonical mapping as written in architecture YAML."""
        if self.is_none:
            return {"op": NONE}
        return {"op": self.op, "count": self.count, **dict(self.params)}


def summarize_choices(choices: list[Choice]) -> str:
    """``none, conv1d(kernel=3) x1|2, ...``: variants with their counts folded together (one line per slot)."""
    counts: dict[str, list[int]] = {}
    for choice in choices:
        variant = choice.label.rsplit("x", 1)[0] if not choice.is_none else choice.label
        counts.setdefault(variant, []).append(choice.count)
    return ", ".join(v if v == "none" else f"{v} x{'|'.join(map(str, c))}" for v, c in counts.items())
