"""LatencyTable: a device's measured (or estimated) cost of every OpKey, as CSV + YAML sidecar.

The CSV holds one row per OpKey; the sidecar (same name, ``.yaml``) says where the numbers
come from. Both are validated on load, and every problem names the file, the row and what is
wrong, because a silently bad table silently misleads every search that uses it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from nas.errors import NasError
from nas.ops import OpKey, get_op
from nas.space.yaml_io import read_yaml_mapping, write_yaml

KEY_COLUMNS = OpKey.columns()
VALUE_COLUMNS = ["latency_p50_ms", "latency_p90_ms", "memory_mb", "samples", "status"]
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
# Optional last column: where the op runs (Neural Engine ``ne``, ``cpu``, ``gpu`` or ``mixed``), from
# MLComputePlan on a Mac or the estimate's rules; empty = not known. Tables without it still load.
PLACEMENT = "placement"
PLACEMENTS = ("", "ne", "cpu", "gpu", "mixed")
TABLE_COLUMNS = COLUMNS + [PLACEMENT]
STATUSES = ("ok", "oom", "timeout", "unsupported")
PROVENANCES = ("measured", "estimated", "published")
# Whole-model rows next to the temporal ops, so a whole generation can be costed.
SPATIAL = "spatial"  # the spatial UNet over all frames of one clip (channels = its first block width)
FIXED_PARTS = ("vae_decode", "text_encoder")  # once per generation, if measured
WHOLE_MODEL_OPS = (SPATIAL, *FIXED_PARTS)
SIDECAR_REQUIRED = ("device", "os", "backend", "compute_units", "precision", "tools", "date", "provenance")
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def sidecar_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".yaml")


@dataclass
class LatencyTable:
    """Rows (a DataFrame with COLUMNS) and sidecar metadata of one device table."""

    rows: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.meta.get("precision", "fp32")]

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "<table>"

    def lookup(self) -> dict[OpKey, dict[str, Any]]:
        """OpKey -> row values, for exact hits."""
        records = self.rows.to_dict("records")
        return {OpKey(*(r[c] for c in KEY_COLUMNS)): r for r in records}

    # ---------------------------------------------------------------- io
    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        if not path.is_file():
            raise NasError(f"{path}: no such table")
        side = sidecar_path(path)
        if not side.is_file():
            raise NasError(f"{path}: sidecar {side.name} is missing (device, backend, precision, provenance, ...)")
        meta = read_yaml_mapping(side)
        rows = read_rows(path)
        _check_sidecar(side, meta, rows)
        return cls(rows, meta, path)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.rows[TABLE_COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, path)
        write_yaml(sidecar_path(path), {**self.meta, "rows": len(self.rows)})
        self.path = path
        return path


def read_rows(path: Path, allow_partial_tail: bool = False) -> pd.DataFrame:
    """Read and validate a table CSV; with ``allow_partial_tail`` a half-written last line is dropped."""
    text = path.read_text()
    if allow_partial_tail and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise NasError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise NasError(f"{path}: missing column(s) {', '.join(missing)} (a table has: {', '.join(COLUMNS)})")
    return validate_rows(frame[[c for c in TABLE_COLUMNS if c in frame.columns]], path)


def validate_rows(frame: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """Parse types and check every row; returns the typed frame (TABLE_COLUMNS) with duplicates removed."""
    if PLACEMENT not in frame.columns:
        frame = frame.assign(**{PLACEMENT: ""})
    out = []
    for index, raw in enumerate(frame.to_dict("records")):
        where = f"{path}: row {index + 2}"  # +2: header line, 1-based lines
        out.append(_parse_row(raw, where))
    typed = pd.DataFrame(out, columns=TABLE_COLUMNS)
    seen: dict[tuple, tuple] = {}
    keep = []
    for index, row in enumerate(typed.itertuples(index=False)):
        key, values = tuple(row[: len(KEY_COLUMNS)]), tuple(row[len(KEY_COLUMNS):])
        if key in seen:
            if not _same_values(seen[key], values):
                raise NasError(f"{path}: row {index + 2}: duplicate key {_key_text(key)} with different values")
            continue
        seen[key] = values
        keep.append(index)
    return typed.iloc[keep].reset_index(drop=True)


def _parse_row(raw: dict[str, str], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    op = raw["op"].strip()
    if op not in WHOLE_MODEL_OPS:
        try:
            get_op(op)
        except KeyError as exc:
            raise NasError(f"{where}: {exc.args[0]}") from None
    row["op"] = op
    for column in KEY_COLUMNS[1:]:
        value = _number(raw[column], column, where, integer=True)
        if value < 0 or (column in ("channels", "frames", "height", "width") and value == 0):
            raise NasError(f"{where}: {column} must be positive, got {raw[column]!r}")
        row[column] = value
    status = raw["status"].strip()
    if status not in STATUSES:
        raise NasError(f"{where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    row["status"] = status
    row["samples"] = _number(raw["samples"], "samples", where, integer=True)
    for column in ("latency_p50_ms", "latency_p90_ms", "memory_mb"):
        text = raw[column].strip()
        if (status != "ok" or column == "memory_mb") and text == "":  # empty memory: not measured
            row[column] = math.nan
            continue
        value = _number(text, column, where)
        if status == "ok" and (math.isnan(value) or math.isinf(value) or value < 0):
            raise NasError(f"{where}: {column} must be a finite number >= 0, got {text!r}")
        row[column] = value
    placement = str(raw[PLACEMENT]).strip()
    if placement not in PLACEMENTS:
        raise NasError(f"{where}: placement must be empty or one of {', '.join(PLACEMENTS[1:])}, got {placement!r}")
    row[PLACEMENT] = placement
    if status == "ok" and row["latency_p90_ms"] < row["latency_p50_ms"]:
        raise NasError(f"{where}: latency_p90_ms ({row['latency_p90_ms']}) is below latency_p50_ms "
                       f"({row['latency_p50_ms']})")
    return row


def _number(text: str, column: str, where: str, integer: bool = False):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise NasError(f"{where}: {column} must be a number, got {text!r}") from None
    if integer:
        if not value.is_integer():
            raise NasError(f"{where}: {column} must be an integer, got {text!r}")
        return int(value)
    return value


def _same_values(a: tuple, b: tuple) -> bool:
    return all((x == y) or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(a, b))


def _key_text(key: Iterable) -> str:
    return "(" + ", ".join(str(k) for k in key) + ")"


def _check_sidecar(side: Path, meta: dict[str, Any], rows: pd.DataFrame) -> None:
    missing = [k for k in SIDECAR_REQUIRED if k not in meta]
    if missing:
        raise NasError(f"{side}: missing key(s) {', '.join(missing)}")
    if meta["provenance"] not in PROVENANCES:
        raise NasError(f"{side}: provenance must be one of {', '.join(PROVENANCES)}, got {meta['provenance']!r}")
    if meta["precision"] not in DTYPE_BYTES:
        raise NasError(f"{side}: precision must be one of {', '.join(DTYPE_BYTES)}, got {meta['precision']!r}")
    if "rows" in meta and meta["rows"] != len(rows):
        raise NasError(f"{side}: says {meta['rows']} rows but the CSV has {len(rows)} "
                       "(a partial profile? re-run its `nas profile` command to resume)")
    if not isinstance(meta["tools"], dict):
        raise NasError(f"{side}: tools must map tool names to versions")
