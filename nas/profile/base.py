"""Profiler: the base of measurement backends (one per way of running a model).

A backend measures one OpKey at a time and says what device it measured on. The runner
(``nas.profile.runner``) owns everything around it — the plan, resume, progress, the time
and memory limits enforced from outside the measuring process — so a new backend only
implements :meth:`measure` and :meth:`metadata`.
"""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from nas.ops import OpKey
from nas.space import SearchSpace

_BACKENDS: dict[str, type[Profiler]] = {}


class Profiler:
    """Measures OpKeys of one space on one device."""

    name: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, warmup: int = 3, repeats: int = 20, time_limit_s: float = 30.0,
                 budget_s: float = 10.0, **options: Any):
        self.space = space
        self.warmup = warmup
        self.repeats = repeats
        self.time_limit_s = time_limit_s
        self.budget_s = budget_s

    def measure(self, key: OpKey) -> dict[str, Any]:
        """Row values: latency_p50_ms, latency_p90_ms, memory_mb, samples, status."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Sidecar fields: device, os, backend, compute_units, precision, tools."""
        raise NotImplementedError

    def limit_memory(self, limit_mb: float) -> None:
        """Make allocations beyond ``limit_mb`` more than now fail (as an out-of-memory error), in this process.

        The default caps the process's address space (Linux; macOS has no such limit), which suits
        host memory; a backend on an accelerator overrides it with that device's own limit, since an
        address-space cap breaks driver initialisation (CUDA maps far more address space than it uses).
        """
        import resource

        if not Path("/proc/self/statm").exists():
            return
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = used + int(limit_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    @staticmethod
    def common_metadata() -> dict[str, Any]:
        import nas

        return {
            "os": f"{platform.system()} {platform.release()}",
            "date": date.today().isoformat(),
            "provenance": "measured",
            "tools": {"nas": nas.__version__, "python": platform.python_version()},
        }


def register_profiler(cls: type[Profiler]) -> type[Profiler]:
    _BACKENDS[cls.name] = cls
    return cls


def get_profiler(name: str) -> type[Profiler]:
    from nas.plugins import load_inherited
    from nas.profile import coreml_profiler, torch_profiler  # noqa: F401  (register built-ins)

    if name not in _BACKENDS:
        load_inherited()  # the profiling worker: the parent's --plugin modules
    if name not in _BACKENDS:
        raise KeyError(f"unknown profiler backend {name!r} (known: {', '.join(sorted(_BACKENDS))})")
    return _BACKENDS[name]
