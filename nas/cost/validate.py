"""``nas table validate``: load each device table with its sidecar (which checks them) and list its error rows.

Loading is the validation (:meth:`~nas.cost.table.CostTable.load` refuses a bad table with one
line); what is left to report is what a valid table may still hold: rows whose measurement
failed with an error, which the next ``nas profile`` of that table measures again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nas.cost.table import KEY_COLUMNS, CostTable
from nas.errors import NasError
from nas.ops import OpKey

DEFAULT_FOLDER = Path("latency_tables")


def validate_tables(paths: list[str | Path] | None = None) -> Iterator[tuple[Path, CostTable]]:
    """Each table at ``paths`` (default: every CSV in ``latency_tables/``), loaded and so checked, in turn.

    A generator, so that a caller reports the good tables before the first bad one stops it.
    """
    paths = [Path(p) for p in paths or sorted(DEFAULT_FOLDER.glob("*.csv"))]
    if not paths:
        raise NasError(f"no tables given and none in {DEFAULT_FOLDER}/")
    for path in paths:
        yield path, CostTable.load(path)


def error_rows(table: CostTable) -> list[tuple[OpKey, str]]:
    """The keys whose measurement failed with an error, and the error's message."""
    rows = table.rows[table.rows["status"] == "error"].to_dict("records")
    return [(OpKey(*(row[c] for c in KEY_COLUMNS)), row["message"]) for row in rows]
