"""Printing helpers shared by the commands: aligned tables, short numbers, status counts."""

from __future__ import annotations

from typing import Any


def print_table(header: list[str], rows: list[list[Any]]) -> None:
    """Left-aligned columns, two spaces apart, header first."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def si(value: float) -> str:
    """1234567 -> '1.23 G'-style short numbers for FLOP counts."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def status_counts(table) -> str:
    """``12 ok, 1 oom``: a device table's rows counted by status."""
    return ", ".join(f"{v} {k}" for k, v in table.rows["status"].value_counts().to_dict().items())
