"""The coreml backend: convert each key to an .mlpackage; time it on macOS.

Conversion runs anywhere; loading and predicting needs macOS. Where the timing cannot run,
``export_packages`` writes the packages and a manifest, a Mac runs ``nas table time DIR``
(``time_packages``), and ``nas table import DIR`` (``import_results``) makes the table.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, KEY_COLUMNS, LatencyTable, table_columns, validate_rows
from nas.errors import NasError
from nas.export.coreml import convert
from nas.ops import OpKey
from nas.ops.key import parse_params
from nas.profile.base import Profiler, register_profiler
from nas.profile.timing import time_call
from nas.profile.workload import build_workload
from nas.space import SearchSpace
from nas.space.yaml_io import read_yaml_mapping, write_yaml

COMPUTE_UNITS = ("CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY", "ALL")
NEEDS_MACOS = ("timing Core ML packages needs macOS; here use --export-only DIR, then on a Mac "
               "`nas table time DIR --compute-units UNITS` and `nas table import DIR -o TABLE.csv`")


def on_macos() -> bool:
    return platform.system() == "Darwin"


def package_name(key: OpKey) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(str(v) for v in key.as_dict().values())) + ".mlpackage"


@register_profiler
class CoreMLProfiler(Profiler):
    name = "coreml"

    def __init__(self, space, compute_units: str = "CPU_AND_NE", precision: str = "fp16", target: str = "iOS18",
                 **options: Any):
        super().__init__(space, **options)
        if compute_units not in COMPUTE_UNITS:
            raise NasError(f"--compute-units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}")
        if not on_macos():
            raise NasError(NEEDS_MACOS)
        self.compute_units, self.precision, self.target = compute_units, precision, target

    def measure(self, key: OpKey) -> dict[str, Any]:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / package_name(key)
            workload = build_workload(self.space, key)
            convert(workload.module, workload.inputs, workload.input_names, precision=self.precision,
                    target=self.target).save(str(path))
            return time_package(path, workload, self.compute_units, self.warmup, self.repeats, self.time_limit_s,
                                self.budget_s)

    def metadata(self) -> dict[str, Any]:
        import coremltools

        meta = self.common_metadata()
        meta.update(device=platform.machine(), backend="coreml", compute_units=self.compute_units,
                    precision=self.precision)
        meta["tools"]["coremltools"] = str(coremltools.__version__)
        return meta


def time_package(path: Path, workload, compute_units: str, warmup: int, repeats: int, time_limit_s: float,
                 budget_s: float) -> dict[str, Any]:
    """Load a package with the given compute units and time predictions (macOS only).

    Core ML exposes no per-prediction memory figure, so ``memory_mb`` is the size of the
    package's inputs, weights excluded, as a lower bound; measure memory with Xcode/Instruments.
    """
    import coremltools as ct

    model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
    feed = {name: x.numpy().astype(np.float32) for name, x in zip(workload.input_names, workload.inputs)}
    timing = time_call(lambda: model.predict(feed), warmup, repeats, time_limit_s, budget_s)
    if timing.timed_out:
        return {"latency_p50_ms": "", "latency_p90_ms": "", "memory_mb": "", "samples": 0, "status": "timeout"}
    return {"latency_p50_ms": timing.p50_ms, "latency_p90_ms": timing.p90_ms,
            "memory_mb": sum(v.nbytes for v in feed.values()) / 2**20, "samples": timing.samples, "status": "ok"}


def export_packages(space_path: str | Path, out_dir: str | Path, precision: str = "fp16", target: str = "iOS18",
                    progress: bool = True) -> Path:
    """Convert every planned key to DIR/<key>.mlpackage and write DIR/manifest.csv (resumable)."""
    import coremltools

    space = SearchSpace.load(space_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in tqdm(table_plan(space), desc=f"export {space.name} (coreml)", unit="op", disable=not progress):
        path = out_dir / package_name(key)
        status = "ok"
        if not path.exists():
            try:
                workload = build_workload(space, key)
                convert(workload.module, workload.inputs, workload.input_names, precision=precision,
                        target=target).save(str(path))
            except (MemoryError, RuntimeError, ValueError) as exc:
                status = "oom" if "memory" in str(exc).lower() else "unsupported"
        rows.append({**key.as_dict(), "package": path.name if status == "ok" else "", "status": status})
    pd.DataFrame(rows).to_csv(out_dir / "manifest.csv", index=False)
    write_yaml(out_dir / "export.yaml", {"space": space.name, "space_path": str(space_path), "precision": precision,
                                          "target": target, "tools": {"coremltools": coremltools.__version__}})
    return out_dir / "manifest.csv"


def time_packages(export_dir: str | Path, compute_units: str = "CPU_AND_NE", warmup: int = 3, repeats: int = 20,
                  time_limit_s: float = 30.0, budget_s: float = 10.0) -> Path:
    """On a Mac: time every package of an export folder; writes results.csv and results.yaml."""
    if not on_macos():
        raise NasError(NEEDS_MACOS)
    export_dir = Path(export_dir)
    manifest, info = _read_export(export_dir)
    space = SearchSpace.load(info["space_path"])
    rows = []
    for record in tqdm(manifest.to_dict("records"), desc="time coreml", unit="op"):
        key = OpKey.of(*(record[c] for c in KEY_COLUMNS[:-1]), parse_params(str(record["params"])))
        if record["status"] != "ok":
            values = {"latency_p50_ms": "", "latency_p90_ms": "", "memory_mb": "", "samples": 0,
                      "status": record["status"]}
        else:
            values = time_package(export_dir / record["package"], build_workload(space, key), compute_units,
                                  warmup, repeats, time_limit_s, budget_s)
        rows.append({**key.as_dict(), **values})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(export_dir / "results.csv", index=False)
    profiler_meta = Profiler.common_metadata()
    profiler_meta.update(device=platform.machine(), backend="coreml", compute_units=compute_units,
                         precision=info["precision"])
    write_yaml(export_dir / "results.yaml", profiler_meta)
    return export_dir / "results.csv"


def import_results(export_dir: str | Path, out: str | Path, command: str = "") -> LatencyTable:
    """Turn a Mac's results.csv (+ results.yaml) of an export folder into a validated table."""
    export_dir = Path(export_dir)
    results = export_dir / "results.csv"
    if not results.is_file():
        raise NasError(f"{results}: no results yet (time the export on a Mac with `nas table time {export_dir}`)")
    if not (export_dir / "results.yaml").is_file():
        raise NasError(f"{export_dir / 'results.yaml'}: missing (written by `nas table time` with the results)")
    meta = read_yaml_mapping(export_dir / "results.yaml")
    frame = pd.read_csv(results, dtype=str, keep_default_na=False)
    _, info = _read_export(export_dir)
    meta = {**meta, "space": info["space"], "command": command}
    meta["tools"] = {**info.get("tools", {}), **meta.get("tools", {})}
    table = LatencyTable(validate_rows(table_columns(frame, results), results), meta)
    table.save(out)
    return table


def _read_export(export_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    manifest = export_dir / "manifest.csv"
    if not manifest.is_file():
        raise NasError(f"{manifest}: not an export folder (made by `nas profile --backend coreml --export-only`)")
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    return frame, read_yaml_mapping(export_dir / "export.yaml")
