"""The coreml backend: convert each key to an .mlpackage; time it on macOS.

Conversion runs anywhere; loading and predicting needs macOS. Where the timing cannot run,
``export_packages`` writes the packages and a manifest, a Mac runs ``nas table time DIR``
(``time_packages``), and ``nas table import DIR`` (``import_results``) makes the table.
"""

from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, KEY_COLUMNS, PLACEMENT, LatencyTable, table_columns, validate_rows
from nas.errors import NasError
from nas.export.coreml import convert
from nas.ops import OpKey
from nas.ops.key import parse_params
from nas.profile.base import Profiler, register_profiler
from nas.profile.timing import time_call
from nas.cost.workload import build_workload
from nas.space import SearchSpace
from nas.space.yaml_io import read_yaml_mapping, write_yaml

COMPUTE_UNITS = ("CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY", "ALL")
SPACE_COPY = "space.yaml"  # the space, copied into the export folder
INPUTS = "inputs"  # folder of the packages' inputs (.npy)
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
            values = time_package(path, workload, self.compute_units, self.warmup, self.repeats,
                                  self.time_limit_s, self.budget_s)
            values.pop(PLACEMENT)  # the profile runner writes the required columns only
            return values

    def metadata(self) -> dict[str, Any]:
        import coremltools

        meta = self.common_metadata()
        meta.update(device=platform.machine(), backend="coreml", compute_units=self.compute_units,
                    precision=self.precision)
        meta["tools"]["coremltools"] = str(coremltools.__version__)
        return meta


def time_package(path: Path, workload, compute_units: str, warmup: int, repeats: int, time_limit_s: float,
                 budget_s: float, runtime: CoreMLRuntime | None = None) -> dict[str, Any]:
    """Load a package with the given compute units and time predictions (macOS, or a stand-in ``runtime``)."""
    feed = {name: x.numpy().astype(np.float32) for name, x in zip(workload.input_names, workload.inputs)}
    return time_loaded(path, feed, compute_units, warmup, repeats, time_limit_s, budget_s, runtime or CoreMLRuntime())


def time_loaded(path: Path, feed: dict[str, np.ndarray], compute_units: str, warmup: int, repeats: int,
                time_limit_s: float, budget_s: float, runtime: CoreMLRuntime) -> dict[str, Any]:
    """Time one package: warm-up, then ``repeats`` predictions (p50/p90); memory and placement if known.

    ``memory_mb`` is the growth of the process's physical footprint during the predictions over
    the footprint once the model is loaded (the working set, weights and inputs excluded),
    sampled while they run; where the OS gives no footprint it is left empty (unmeasured) and the
    cost model uses the estimated working set. ``placement`` comes from MLComputePlan (macOS 14.4+).
    """
    predict = runtime.load(path, compute_units)
    placement = runtime.placement(path, compute_units)
    with _FootprintSampler(runtime) as sampler:
        timing = time_call(lambda: predict(feed), warmup, repeats, time_limit_s, budget_s)
    if timing.timed_out:
        return {"latency_p50_ms": "", "latency_p90_ms": "", "memory_mb": "", "samples": 0, "status": "timeout",
                PLACEMENT: placement}
    memory = "" if sampler.growth_bytes is None else sampler.growth_bytes / 2**20
    return {"latency_p50_ms": timing.p50_ms, "latency_p90_ms": timing.p90_ms, "memory_mb": memory,
            "samples": timing.samples, "status": "ok", PLACEMENT: placement}


class CoreMLRuntime:
    """The Core ML runtime through coremltools (macOS only): load, per-op placement, memory footprint.

    Tests use a stand-in with the same three methods (``FakeCoreMLRuntime`` in tests/test_profile.py).
    """

    def __init__(self):
        if not on_macos():
            raise NasError(NEEDS_MACOS)

    def load(self, path: Path, compute_units: str) -> Callable[[dict], Any]:
        import coremltools as ct

        return ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units)).predict

    def placement(self, path: Path, compute_units: str) -> str:
        """``ne``, ``cpu``, ``gpu`` or ``mixed`` from MLComputePlan's preferred device per op; "" before macOS 14.4."""
        try:
            import coremltools as ct
            from coremltools.models.compute_plan import MLComputePlan

            compiled = ct.models.utils.compile_model(str(path))
            plan = MLComputePlan.load_from_path(compiled, compute_units=getattr(ct.ComputeUnit, compute_units))
            devices = set()
            for op in plan.model_structure.program.functions["main"].block.operations:
                usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                if usage is not None:
                    devices.add(type(usage.preferred_compute_device).__name__)
        except Exception:  # older macOS or coremltools: no compute plan, placement unknown
            return ""
        units = {"MLNeuralEngineComputeDevice": "ne", "MLCPUComputeDevice": "cpu", "MLGPUComputeDevice": "gpu"}
        named = {units.get(d, "mixed") for d in devices}
        return named.pop() if len(named) == 1 else ("mixed" if named else "")

    def footprint_bytes(self) -> int | None:
        """The process's physical footprint (what iOS's jetsam limit counts), from proc_pid_rusage."""
        import ctypes
        import os

        class RusageInfoV2(ctypes.Structure):
            _fields_ = [("uuid", ctypes.c_uint8 * 16)] + [(n, ctypes.c_uint64) for n in (
                "user_time", "system_time", "pkg_idle_wkups", "interrupt_wkups", "pageins", "wired_size",
                "resident_size", "phys_footprint", "proc_start_abstime", "proc_exit_abstime",
                "child_user_time", "child_system_time", "child_pkg_idle_wkups", "child_interrupt_wkups",
                "child_pageins", "child_elapsed_abstime", "diskio_bytesread", "diskio_byteswritten")]

        try:
            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
            info = RusageInfoV2()
            if libc.proc_pid_rusage(os.getpid(), 2, ctypes.byref(info)) != 0:
                return None
            return int(info.phys_footprint)
        except (OSError, AttributeError):
            return None


class _FootprintSampler:
    """Samples ``runtime.footprint_bytes()`` every millisecond in a thread; ``growth_bytes`` = peak - start."""

    def __init__(self, runtime, interval_s: float = 0.001):
        import threading

        self.runtime, self.interval_s = runtime, interval_s
        self.start = runtime.footprint_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = self.runtime.footprint_bytes()
            if value is not None and self.peak is not None:
                self.peak = max(self.peak, value)

    def __enter__(self):
        if self.start is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.start is not None:
            last = self.runtime.footprint_bytes()
            if last is not None:
                self.peak = max(self.peak, last)

    @property
    def growth_bytes(self) -> int | None:
        return None if self.start is None or self.peak is None else max(0, self.peak - self.start)


def export_packages(space_path: str | Path, out_dir: str | Path, precision: str = "fp16", target: str = "iOS18",
                    progress: bool = True, attention: str = "split_einsum") -> Path:
    """Convert every planned key to DIR/<key>.mlpackage and write what a Mac needs to time them (resumable).

    The folder is self-contained: ``space.yaml`` (a copy of the space), ``inputs/<key>.<name>.npy``
    (each package's inputs), ``manifest.csv`` and ``export.yaml`` with paths relative to DIR, so it
    can be copied alone to a Mac with ``pip install snapgen-nas`` and no checkout.
    """
    import coremltools

    space = SearchSpace.load(space_path)
    out_dir = Path(out_dir)
    (out_dir / INPUTS).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space_path, out_dir / SPACE_COPY)
    rows = []
    for key in tqdm(table_plan(space), desc=f"export {space.name} (coreml)", unit="op", disable=not progress):
        path = out_dir / package_name(key)
        stem = path.name.removesuffix(".mlpackage")
        workload = None
        status = "ok"
        if not path.exists():
            try:
                workload = build_workload(space, key)
                convert(workload.module, workload.inputs, workload.input_names, precision=precision,
                        target=target, attention=attention).save(str(path))
            except (MemoryError, RuntimeError, ValueError) as exc:
                status = "oom" if "memory" in str(exc).lower() else "unsupported"
        inputs = []
        if status == "ok":
            workload = workload or build_workload(space, key)
            for name, tensor in zip(workload.input_names, workload.inputs):
                relative = f"{INPUTS}/{stem}.{name}.npy"
                np.save(out_dir / relative, tensor.numpy().astype(np.float32))
                inputs.append(f"{name}={relative}")
        rows.append({**key.as_dict(), "package": path.name if status == "ok" else "", "inputs": ";".join(inputs),
                     "status": status})
    pd.DataFrame(rows).to_csv(out_dir / "manifest.csv", index=False)
    write_yaml(out_dir / "export.yaml", {"space": space.name, "space_path": SPACE_COPY, "precision": precision,
                                          "target": target, "attention": attention,
                                          "tools": {"coremltools": coremltools.__version__}})
    return out_dir / "manifest.csv"


def time_packages(export_dir: str | Path, compute_units: str = "CPU_AND_NE", warmup: int = 3, repeats: int = 20,
                  time_limit_s: float = 30.0, budget_s: float = 10.0, runtime: CoreMLRuntime | None = None,
                  progress: bool = True) -> Path:
    """On a Mac: time every package of an export folder; writes results.csv and results.yaml in it.

    Needs only the folder (see :func:`export_packages`). ``runtime`` defaults to the Core ML
    runtime, which exists on macOS only; tests pass a stand-in.
    """
    if compute_units not in COMPUTE_UNITS:
        raise NasError(f"--compute-units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}")
    export_dir = Path(export_dir)
    manifest, info = _read_export(export_dir)
    runtime = runtime or CoreMLRuntime()
    rows = []
    for record in tqdm(manifest.to_dict("records"), desc="time coreml", unit="op", disable=not progress):
        key = OpKey.of(*(record[c] for c in KEY_COLUMNS[:-1]), parse_params(str(record["params"])))
        if record["status"] != "ok":
            values = {"latency_p50_ms": "", "latency_p90_ms": "", "memory_mb": "", "samples": 0,
                      "status": record["status"], PLACEMENT: ""}
        else:
            feed = _read_inputs(export_dir, record)
            values = time_loaded(export_dir / record["package"], feed, compute_units, warmup, repeats, time_limit_s,
                                 budget_s, runtime)
        rows.append({**key.as_dict(), **values})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(export_dir / "results.csv", index=False)
    profiler_meta = Profiler.common_metadata()
    profiler_meta.update(device=_mac_name(), backend="coreml", compute_units=compute_units,
                         precision=info["precision"],
                         note=("measured on this Mac's own Neural Engine/CPU/GPU, not on an iPhone; memory_mb = "
                               "growth of the process physical footprint during prediction, empty if unmeasured"))
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


def _read_inputs(export_dir: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """The package's inputs, from the ``name=relative/path.npy`` list of its manifest row (never pickled)."""
    feed = {}
    for item in filter(None, str(record.get("inputs", "")).split(";")):
        name, _, relative = item.partition("=")
        path = export_dir / relative
        if Path(relative).is_absolute() or ".." in Path(relative).parts or not path.is_file():
            raise NasError(f"{export_dir / 'manifest.csv'}: input {relative!r} of {record['package']} is not a file "
                           "inside the export folder")
        feed[name] = np.load(path, allow_pickle=False)
    if not feed:
        raise NasError(f"{export_dir / 'manifest.csv'}: no inputs listed for {record['package']} (export made "
                       "before inputs were saved: export again)")
    return feed


def _mac_name() -> str:
    return f"Mac ({platform.machine()}, {platform.mac_ver()[0] or platform.system()})"
