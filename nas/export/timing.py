"""Time converted packages with the Core ML runtime on chosen compute units (macOS only).

Loading compiles the program for the compute units (the Neural Engine compile can take
minutes the first time), so load time is reported apart from prediction time. Chunks run one
after another, each fed the model inputs and the outputs of the chunks before it.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nas.errors import NasError

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


def run_chain(predictors: Sequence[tuple[Sequence[str], Callable[[dict], Mapping]]],
              inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``(input names, predict)`` pairs in order; every value made so far is available by name."""
    values = dict(inputs)
    for names, predict in predictors:
        values.update(predict({name: values[name] for name in names}))
    return values


def time_packages(packages: Sequence[str | Path], inputs: Mapping[str, np.ndarray], compute_units: str,
                  runs: int = 5) -> dict[str, Any]:
    """Median and spread of ``runs`` chained predictions (after one warm-up) on ``compute_units``."""
    if platform.system() != "Darwin":
        raise NasError(f"timing on {compute_units} needs macOS (the Core ML runtime); "
                       f"{packages[0]} was written, time it on a Mac")
    if compute_units not in COMPUTE_UNITS:
        raise NasError(f"--compute-units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}")
    import coremltools as ct

    start = time.perf_counter()
    models = [ct.models.MLModel(str(p), compute_units=ct.ComputeUnit[compute_units]) for p in packages]
    load_s = time.perf_counter() - start
    chain = [([f.name for f in m.get_spec().description.input], m.predict) for m in models]
    run_chain(chain, inputs)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_chain(chain, inputs)
        times.append((time.perf_counter() - start) * 1000)
    return {"compute_units": compute_units, "runs": runs, "load_s": round(load_s, 2),
            "latency_ms_p50": round(statistics.median(times), 2), "latency_ms_min": round(min(times), 2),
            "latency_ms_max": round(max(times), 2)}
