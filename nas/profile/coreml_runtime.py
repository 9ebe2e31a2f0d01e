"""Timing Core ML packages with the Core ML runtime: compute units, chains of chunks, memory, placement.

One place for what every Core ML timing shares: the per-op table profiler, the timing of an
export folder (``nas table time``) and ``nas export coreml --compute-units``. The runtime exists
on macOS only; :class:`CoreMLRuntime` is the one object that touches it, so the timing logic
(warm-up, repeats, p50/p90, chained chunks, footprint, placement) runs the same with any object
offering its three methods (tests pass a stand-in).
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.cost.table import WORKING_SET
from nas.errors import NasError
from nas.profile.timing import time_call

# The Core ML compute units, the Neural Engine one (the default everywhere) first.
COMPUTE_UNITS = ("CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY", "ALL")
NEEDS_MACOS = (
    "timing Core ML packages needs macOS; here use --export-only DIR, then on a Mac "
    "`nas table time DIR --compute-units UNITS` and `nas table import DIR -o TABLE.csv`"
)

Predictor = tuple[Sequence[str], Callable[[dict], Mapping[str, Any]]]


def on_macos() -> bool:
    return platform.system() == "Darwin"


def check_compute_units(compute_units: str) -> str:
    """``compute_units`` if it names Core ML compute units, else the one-line error."""
    if compute_units not in COMPUTE_UNITS:
        raise NasError(f"--compute-units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}")
    return compute_units


def run_chain(predictors: Sequence[Predictor], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``(input names, predict)`` pairs in order; every value made so far is available by name.

    This is how the chunks of a split model run: each reads the model inputs and the outputs of
    the chunks before it (a single package is a chain of one).
    """
    values = dict(inputs)
    for names, predict in predictors:
        values.update(predict({name: values[name] for name in names}))
    return values


def merged_placement(placements: Iterable[str]) -> str:
    """Where a chain runs: the one unit all its packages name, ``mixed`` if they differ, "" if any is unknown."""
    named = set(placements)
    if not named or "" in named:
        return ""
    return named.pop() if len(named) == 1 else "mixed"


def time_chain(
    packages: Sequence[str | Path],
    feed: Mapping[str, Any],
    compute_units: str,
    warmup: int = 3,
    repeats: int = 20,
    time_limit_s: float = math.inf,
    budget_s: float = math.inf,
    runtime: CoreMLRuntime | None = None,
) -> dict[str, Any]:
    """Load ``packages`` on ``compute_units`` and time ``repeats`` chained predictions after ``warmup``.

    Returns ``latency_p50_ms``, ``latency_p90_ms``, ``samples``, ``status`` (``ok`` or ``timeout``:
    one call over ``time_limit_s``), ``load_s`` (loading compiles for the units; the Neural Engine
    compile can take minutes the first time, so it is apart), ``placement`` (MLComputePlan, macOS
    14.4+, else "") and ``working_set_mb``: the growth of the process's physical footprint while the
    predictions run over the footprint once loaded (the working set; weights and inputs are
    already resident), or "" where the OS gives no footprint (unmeasured, never the input bytes).
    """
    check_compute_units(compute_units)
    runtime = runtime or CoreMLRuntime()
    paths = [Path(p) for p in packages]
    start = time.perf_counter()
    chain = [runtime.load(path, compute_units) for path in paths]
    load_s = round(time.perf_counter() - start, 2)
    placement = merged_placement(runtime.placement(path, compute_units) for path in paths)
    with FootprintSampler(runtime) as sampler:
        timing = time_call(lambda: run_chain(chain, feed), warmup, repeats, time_limit_s, budget_s)
    if timing.timed_out:
        return {
            "latency_p50_ms": "",
            "latency_p90_ms": "",
            WORKING_SET: "",
            "samples": 0,
            "status": "timeout",
            "placement": placement,
            "load_s": load_s,
        }
    memory = "" if sampler.growth_bytes is None else sampler.growth_bytes / 2**20
    return {
        "latency_p50_ms": timing.p50_ms,
        "latency_p90_ms": timing.p90_ms,
        WORKING_SET: memory,
        "samples": timing.samples,
        "status": "ok",
        "placement": placement,
        "load_s": load_s,
    }


class CoreMLRuntime:
    """The Core ML runtime through coremltools (macOS only): load, per-op placement, memory footprint.

    Tests use a stand-in with the same three methods (``StandInCoreMLRuntime`` in tests/coreml_stand_in.py).
    """

    def __init__(self, needs_macos: str = NEEDS_MACOS):
        if not on_macos():
            raise NasError(needs_macos)

    def load(self, path: Path, compute_units: str) -> Predictor:
        """The package's input names and its ``predict``, compiled for ``compute_units``."""
        import coremltools as ct

        model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        return [f.name for f in model.get_spec().description.input], model.predict

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
        return merged_placement(units.get(d, "mixed") for d in devices)

    def footprint_bytes(self) -> int | None:
        """The process's physical footprint (what iOS's jetsam limit counts), from proc_pid_rusage."""
        import ctypes
        import os

        class RusageInfoV2(ctypes.Structure):
            _fields_ = [("uuid", ctypes.c_uint8 * 16)] + [
                (n, ctypes.c_uint64)
                for n in (
                    "user_time",
                    "system_time",
                    "pkg_idle_wkups",
                    "interrupt_wkups",
                    "pageins",
                    "wired_size",
                    "resident_size",
                    "phys_footprint",
                    "proc_start_abstime",
                    "proc_exit_abstime",
                    "child_user_time",
                    "child_system_time",
                    "child_pkg_idle_wkups",
                    "child_interrupt_wkups",
                    "child_pageins",
                    "child_elapsed_abstime",
                    "diskio_bytesread",
                    "diskio_byteswritten",
                )
            ]

        try:
            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
            info = RusageInfoV2()
            if libc.proc_pid_rusage(os.getpid(), 2, ctypes.byref(info)) != 0:
                return None
            return int(info.phys_footprint)
        except (OSError, AttributeError):
            return None


class FootprintSampler:
    """Samples ``runtime.footprint_bytes()`` every millisecond in a thread; ``growth_bytes`` = peak - start."""

    def __init__(self, runtime, interval_s: float = 0.001):
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
