"""Choice: what one slot of an architecture holds (an op type, its hyperparameters, a count)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas.ops import op_spec

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


def parse_op(entry: dict[str, Any], other_keys: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The op spec (:func:`nas.ops.op_spec`) an ``{op: NAME, **params}`` mapping names (None for ``none``)
    and its parameters.

    A space's choices and an architecture's slots are both written this way. An unknown op, or a
    parameter the op does not have, raises ValueError (the caller says where); ``other_keys`` (an
    architecture's ``count``) are neither parameters nor errors.
    """
    try:
        op = op_spec(entry["op"])
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if entry["op"] == NONE:
        return None, {}
    params = {k: v for k, v in entry.items() if k not in ("op", *other_keys)}
    unknown = sorted(set(params) - set(op.defaults))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for op {entry['op']} "
            f"(known: {', '.join(op.defaults) or 'none'})"
        )
    return op, params


def summarize_choices(choices: list[Choice]) -> str:
    """``none, conv1d(kernel=3) x1|2, ...``: variants with their counts folded together (one line per slot)."""
    counts: dict[str, list[int]] = {}
    for choice in choices:
        variant = choice.label.rsplit("x", 1)[0] if not choice.is_none else choice.label
        counts.setdefault(variant, []).append(choice.count)
    return ", ".join(v if v == "none" else f"{v} x{'|'.join(map(str, c))}" for v, c in counts.items())
