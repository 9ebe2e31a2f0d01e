"""CostTable: a device's measured (or estimated) cost of every OpKey, as CSV + YAML sidecar.

The CSV holds one row per OpKey; the sidecar (same name, ``.yaml``) says where the numbers
come from. Both are validated on load, and every problem names the file, the row and what is
wrong, because a silently bad table silently misleads every search that uses it.

Format: the key columns are ``op, channels, frames, height, width, params`` (every op parameter,
see :class:`nas.ops.OpKey`), then the values and a ``message`` (why a measurement failed).
Tables of the first format (``heads`` and ``kernel`` columns instead of ``params``, no
``message``) are still read: their rows measured the op's defaults for every other parameter,
which is what the migrated key says. A column under its old name (``memory_mb``, now
``working_set_mb``: one op's working set, not a generation's peak memory) is read under the new
one with a deprecation line; the file itself is never changed.
"""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas import outputs
from nas.errors import NasError, NasWarning
from nas.ops import OpKey, check_op_name, op_defaults
from nas.ops.key import format_params, parse_params
from nas.options import renamed_keys
from nas.space.yaml_io import read_yaml_mapping, write_yaml

KEY_COLUMNS = OpKey.columns()
# placement: where the op runs (Neural Engine ``ne``, ``cpu``, ``gpu`` or ``mixed``), from MLComputePlan on a
# Mac or the estimate's rules; empty = not known. message: why a row failed. Tables without them still load.
PLACEMENT = "placement"
PLACEMENTS = ("", "ne", "cpu", "gpu", "mixed")
# working_set_mb: peak tensor memory one call allocates beyond its inputs and weights (whole-model fixed
# parts: their whole footprint). Old name memory_mb, which elsewhere means a generation's predicted peak.
WORKING_SET = "working_set_mb"
VALUE_COLUMNS = ["latency_p50_ms", "latency_p90_ms", WORKING_SET, "samples", "status", "message", PLACEMENT]
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
RENAMED_COLUMNS = {"memory_mb": WORKING_SET}  # old -> new: read under the new name, with a deprecation line
LEGACY_KEY_COLUMNS = ["op", "channels", "frames", "height", "width", "heads", "kernel"]
# ok: measured. oom/timeout: too big for the device (a larger shape fails too). unsupported: the device
# cannot run the op. error: the measurement itself failed (a bug, say in a user's op): not evidence about
# the device, kept with its message and measured again by the next `nas profile` run.
STATUSES = ("ok", "oom", "timeout", "unsupported", "error")
FAILED_BY_SIZE = ("oom", "timeout")
# adapted: an estimate (or a published table) rescaled to a few measurements of its device (nas table adapt);
# a measured table adapted to a new machine stays measured, its sidecar naming its parent.
PROVENANCES = ("measured", "estimated", "published", "adapted")
# Whole-model rows next to the temporal ops, so a whole generation can be costed.
SPATIAL = "spatial"  # the spatial UNet over all frames of one clip (channels = its first block width)
# The fixed parts of a generation (nas.space.generation): one text encoding; the decoder once per latent frame
# (per_frame) or once per clip. A generation without them priced is incomplete, never free.
FIXED_PARTS = ("text_encoder", "decoder")
RENAMED_OPS = {"vae_decode": "decoder"}  # old op name -> today's: read under the new name, with a deprecation line
WHOLE_MODEL_OPS = (SPATIAL, *FIXED_PARTS)
SIDECAR_REQUIRED = ("device", "os", "backend", "precision", "tools", "date", "provenance")
# where on the device it ran: a torch table names the torch device (cpu, cuda), any other the Core ML compute units
TORCH_BACKEND, TORCH_DEVICE, COMPUTE_UNITS = "torch", "torch_device", "compute_units"
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def sidecar_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".yaml")


# A sidecar (a table's, a Mac kit's results.yaml, a models import's; nas's or one written to resume by hand, as
# examples/search_own_device.py does) has these keys; a space, an architecture, a config has none of them.
is_sidecar = outputs.yaml_keys("backend", "precision", "provenance")


def table_outputs(csv_path: str | Path) -> list[outputs.Derived]:
    """The paths writing a table at ``csv_path`` derives: its sidecar (see :func:`nas.outputs.claim`)."""
    return [outputs.Derived(sidecar_path(csv_path), "the table's sidecar", is_sidecar)]


def claim_table(csv_path: str | Path, inputs=()) -> None:
    """Refuse, before any work, a table path whose sidecar would land on an input or on a file nas did not
    write, or a table path that is itself an input."""
    outputs.claim(table_outputs(csv_path), inputs, named=[csv_path])


@dataclass
class CostTable:
    """Rows (a DataFrame with COLUMNS) and sidecar metadata of one device table."""

    rows: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.meta.get("precision", "fp32")]

    def lookup(self) -> dict[OpKey, dict[str, Any]]:
        """OpKey -> row values, for exact hits."""
        records = self.rows.to_dict("records")
        return {OpKey(*(r[c] for c in KEY_COLUMNS)): r for r in records}

    # ---------------------------------------------------------------- io
    @classmethod
    def load(cls, path: str | Path) -> CostTable:
        path = Path(path)
        if not path.is_file():
            raise NasError(f"{path}: no such table")
        side = sidecar_path(path)
        if not side.is_file():
            raise NasError(f"{path}: sidecar {side.name} is missing (device, backend, precision, provenance, ...)")
        meta = sidecar_meta(read_yaml_mapping(side))
        rows = read_rows(path)
        _check_sidecar(side, meta, rows)
        return cls(rows, meta, path)

    def save(self, path: str | Path) -> Path:
        """Write the CSV and its sidecar; a sidecar path holding a file nas did not write is refused first."""
        path = Path(path)
        outputs.claim(table_outputs(path))
        with outputs.replaced(path) as tmp:
            self.rows.reindex(columns=COLUMNS).fillna({"message": "", PLACEMENT: ""}).to_csv(
                tmp, index=False, float_format="%.6g"
            )
        write_yaml(sidecar_path(path), {**self.meta, "rows": len(self.rows)})
        self.path = path
        return path


def __getattr__(name: str) -> Any:
    """``LatencyTable``, the old name of :class:`CostTable` (it holds memory too), for one release."""
    if name == "LatencyTable":
        warnings.warn("nas.cost.table.LatencyTable is deprecated; use CostTable", NasWarning, stacklevel=2)
        return CostTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def partial_tail(path: Path) -> bool:
    """Whether the file's last line was cut short (no newline: a profile killed mid-write)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def read_rows(path: Path, allow_partial_tail: bool = False) -> pd.DataFrame:
    """Read and validate a table CSV; with ``allow_partial_tail`` a half-written last line is left out.

    The file itself is never changed here.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise NasError(f"{path}: not a readable CSV ({exc})") from None
    if allow_partial_tail and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise NasError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    return validate_rows(table_columns(frame, path), path)


def renamed_columns(frame: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """``frame`` with each old column name (RENAMED_COLUMNS) under its new one.

    A frame with both names of a column is refused: which of the two holds the values is not known."""
    return frame.rename(columns=_renamed(str(path), tuple(frame.columns)))


@functools.cache
def _renamed(path: str, columns: tuple[str, ...]) -> dict[str, str]:
    """old -> new for a file's header, with one deprecation line per file and process: a command may read
    a table more than once (a search does, to record its setup), and says so once."""
    names = renamed_keys({c: c for c in columns}, RENAMED_COLUMNS, path, noun="column")
    return {old: new for new, old in names.items() if old != new}


@functools.cache
def _renamed_ops(path: str, ops: tuple[str, ...]) -> None:
    for old in ops:
        warnings.warn(
            f"{path}: op {old} is deprecated; use {RENAMED_OPS[old]} (rows read under the new name)",
            NasWarning,
            stacklevel=4,
        )


def table_columns(frame: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """The COLUMNS of a CSV read as text; an older format is migrated (first-format keys, renamed columns), a
    missing message or placement is empty."""
    frame = renamed_columns(frame, path)
    if "params" not in frame.columns and all(c in frame.columns for c in LEGACY_KEY_COLUMNS):
        frame = _migrate_first_format(frame)
    for optional in ("message", PLACEMENT):
        if optional not in frame.columns:
            frame = frame.assign(**{optional: ""})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise NasError(f"{path}: missing column(s) {', '.join(missing)} (a table has: {', '.join(COLUMNS)})")
    return frame[COLUMNS]


def _migrate_first_format(frame: pd.DataFrame) -> pd.DataFrame:
    """heads/kernel columns -> params (only those the op has; its other parameters were at their defaults)."""
    params = []
    for op, heads, kernel in zip(frame["op"], frame["heads"], frame["kernel"]):
        try:
            defaults = {} if op.strip() in WHOLE_MODEL_OPS else op_defaults(op.strip())
        except KeyError:
            defaults = {}  # reported by validate_rows with the row number
        params.append(
            ";".join(
                f"{name}={value.strip()}" for name, value in (("heads", heads), ("kernel", kernel)) if name in defaults
            )
        )
    return frame.drop(columns=["heads", "kernel"]).assign(params=params)


def validate_rows(frame: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """Parse types and check every row; returns the typed frame (COLUMNS) with duplicates removed.

    An op under its old name (RENAMED_OPS) is read under today's, with one deprecation line per file."""
    renamed = sorted({op.strip() for op in frame["op"] if op.strip() in RENAMED_OPS})
    if renamed:
        _renamed_ops(str(path), tuple(renamed))
        frame = frame.assign(op=[RENAMED_OPS.get(op.strip(), op) for op in frame["op"]])
    out = []
    for index, raw in enumerate(frame.to_dict("records")):
        where = f"{path}: row {index + 2}"  # +2: header line, 1-based lines
        out.append(_parse_row(raw, where))
    typed = pd.DataFrame(out, columns=COLUMNS)
    seen: dict[tuple, tuple[int, tuple]] = {}
    status = VALUE_COLUMNS.index("status")
    for index, row in enumerate(typed.itertuples(index=False)):
        key, values = tuple(row[: len(KEY_COLUMNS)]), tuple(row[len(KEY_COLUMNS) :])
        if key in seen and seen[key][1][status] != "error":  # a retried error row is superseded
            if not _same_values(seen[key][1], values):
                raise NasError(f"{path}: row {index + 2}: duplicate key {OpKey(*key).row_text()} with different values")
            continue
        seen[key] = (index, values)
    return typed.iloc[sorted(i for i, _ in seen.values())].reset_index(drop=True)


def _parse_row(raw: dict[str, str], where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    op = raw["op"].strip()
    if op not in WHOLE_MODEL_OPS:
        try:
            check_op_name(op)
        except KeyError as exc:
            raise NasError(f"{where}: {exc.args[0]}") from None
    row["op"] = op
    for column in ("channels", "frames", "height", "width"):
        value = _number(raw[column], column, where, integer=True)
        if value < 0 or (column in ("channels", "frames", "height", "width") and value == 0):
            raise NasError(f"{where}: {column} must be positive, got {raw[column]!r}")
        row[column] = value
    row["params"] = _params(raw["params"], op, where)
    status = raw["status"].strip()
    if status not in STATUSES:
        raise NasError(f"{where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    row["status"] = status
    row["message"] = _text(raw.get("message"))
    row["samples"] = _number(raw["samples"], "samples", where, integer=True)
    for column in ("latency_p50_ms", "latency_p90_ms", WORKING_SET):
        text = raw[column].strip()
        if (status != "ok" or column == WORKING_SET) and text == "":  # empty working set: not measured
            row[column] = math.nan
            continue
        value = _number(text, column, where)
        if status == "ok" and (math.isnan(value) or math.isinf(value) or value < 0):
            raise NasError(f"{where}: {column} must be a finite number >= 0, got {text!r}")
        row[column] = value
    placement = _text(raw.get(PLACEMENT))
    if placement not in PLACEMENTS:
        raise NasError(f"{where}: placement must be empty or one of {', '.join(PLACEMENTS[1:])}, got {placement!r}")
    row[PLACEMENT] = placement
    if status == "ok" and row["latency_p90_ms"] < row["latency_p50_ms"]:
        raise NasError(
            f"{where}: latency_p90_ms ({row['latency_p90_ms']}) is below latency_p50_ms ({row['latency_p50_ms']})"
        )
    return row


def _params(text: str, op: str, where: str) -> str:
    """Canonical params of a row: a temporal op's parameters must be its own; defaults are filled in."""
    try:
        params = parse_params(text)
    except ValueError as exc:
        raise NasError(f"{where}: {exc}") from None
    if op not in WHOLE_MODEL_OPS:
        defaults = op_defaults(op)
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise NasError(
                f"{where}: {op} has no parameter {', '.join(unknown)} (its parameters: {', '.join(defaults) or 'none'})"
            )
        params = {**defaults, **params}
    return format_params(params)


def _text(value: Any) -> str:
    """A free-text cell as one line; empty for a missing one (None or NaN from a frame built in code)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


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
    return all(
        (x == y) or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b)
    )


def sidecar_keys(meta: dict[str, Any]) -> tuple[str, ...]:
    """The keys a sidecar must have: the common ones and where it ran (torch device or compute units)."""
    return (*SIDECAR_REQUIRED, TORCH_DEVICE if meta.get("backend") == TORCH_BACKEND else COMPUTE_UNITS)


def sidecar_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A sidecar's fields in today's names: older torch tables kept their torch device in ``compute_units``."""
    if meta.get("backend") == TORCH_BACKEND and TORCH_DEVICE not in meta and COMPUTE_UNITS in meta:
        meta = {**meta, TORCH_DEVICE: meta[COMPUTE_UNITS]}
        del meta[COMPUTE_UNITS]
    return meta


def _check_sidecar(side: Path, meta: dict[str, Any], rows: pd.DataFrame) -> None:
    missing = [k for k in sidecar_keys(meta) if k not in meta]
    if missing:
        raise NasError(f"{side}: missing key(s) {', '.join(missing)}")
    if meta["provenance"] not in PROVENANCES:
        raise NasError(f"{side}: provenance must be one of {', '.join(PROVENANCES)}, got {meta['provenance']!r}")
    if meta["precision"] not in DTYPE_BYTES:
        raise NasError(f"{side}: precision must be one of {', '.join(DTYPE_BYTES)}, got {meta['precision']!r}")
    if "rows" in meta and meta["rows"] != len(rows):
        raise NasError(
            f"{side}: says {meta['rows']} rows but the CSV has {len(rows)} "
            "(a partial profile? re-run its `nas profile` command to resume)"
        )
    if not isinstance(meta["tools"], dict):
        raise NasError(f"{side}: tools must map tool names to versions")
