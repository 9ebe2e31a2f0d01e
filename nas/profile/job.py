"""``nas profile`` as one call: a plan file read, the backend's own options routed to it, the run.

The command line offers every backend's options at once (``--device`` for torch,
``--compute-units`` for Core ML, ``--precision`` for both); each profiler receives only those its
constructor declares, so a plugin backend takes the ones it names without any table here, and an
option left unset (None) falls back to the profiler's own default (fp32 on torch, fp16 on Core ML).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from nas.cost.plan import read_plan
from nas.cost.table import CostTable
from nas.errors import NasError
from nas.profile.runner import profile


def backend_options(backend: str, **given: Any) -> dict[str, Any]:
    """The options of ``given`` that ``backend``'s profiler takes, leaving out those set to None."""
    from nas.profile.base import get_profiler

    try:
        takes = inspect.signature(get_profiler(backend).__init__).parameters
    except KeyError as exc:
        raise NasError(f"--backend: {exc.args[0]}") from None
    return {name: value for name, value in given.items() if name in takes and value is not None}


def profile_space(
    space_path: str | Path,
    backend: str,
    out: str | Path,
    *,
    plan: str | Path | None = None,
    device: str | None = "cpu",
    precision: str | None = None,
    compute_units: str | None = "CPU_AND_NE",
    warmup: int = 3,
    repeats: int = 50,
    budget_s: float = 10.0,
    time_limit_s: float = 30.0,
    memory_limit_mb: float | None = None,
    command: str = "",
    progress: bool = True,
) -> CostTable:
    """Measure the keys of ``plan`` (a plan CSV; default: the whole space) into the table ``out``, resuming it."""
    keys = read_plan(plan) if plan else None
    options = backend_options(backend, device=device, precision=precision, compute_units=compute_units)
    return profile(
        space_path,
        backend,
        out,
        keys=keys,
        memory_limit_mb=memory_limit_mb,
        command=command,
        progress=progress,
        warmup=warmup,
        repeats=repeats,
        budget_s=budget_s,
        time_limit_s=time_limit_s,
        inputs=(plan,) if plan else (),
        **options,
    )
