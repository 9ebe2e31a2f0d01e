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
from nas.registry import Registry
from nas.space import SearchSpace

# The built-in backends, imported on first use (the coreml one pulls in coremltools).
PROFILER_REGISTRY: Registry[type[Profiler]] = Registry(
    "profiler",
    "nas.profilers",
    {"torch": "nas.profile.torch_profiler:TorchProfiler", "coreml": "nas.profile.coreml_profiler:CoreMLProfiler"},
)


class Profiler:
    """Measures OpKeys of one space on one device."""

    name: ClassVar[str] = ""

    def __init__(
        self,
        space: SearchSpace,
        warmup: int = 3,
        repeats: int = 20,
        time_limit_s: float = 30.0,
        budget_s: float = 10.0,
        **options: Any,
    ):
        self.space = space
        self.warmup = warmup
        self.repeats = repeats
        self.time_limit_s = time_limit_s
        self.budget_s = budget_s

    def measure(self, key: OpKey) -> dict[str, Any]:
        """Row values: latency_p50_ms, latency_p90_ms, working_set_mb, samples, status."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Sidecar fields: device, os, backend, precision, tools; torch_device (torch) or compute_units (Core ML)."""
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
    """Class decorator: make ``cls`` usable as ``nas profile --backend NAME``; a taken name is refused."""
    return PROFILER_REGISTRY.register(cls)


def get_profiler(name: str) -> type[Profiler]:
    """The class registered as ``name``; UnknownName (a NasError and KeyError naming the known backends) if none."""
    return PROFILER_REGISTRY.get(name)


def list_profilers() -> list[str]:
    """Names of all registered profiler backends."""
    return PROFILER_REGISTRY.names()


def describe_profilers() -> list[dict[str, Any]]:
    """``nas profilers``: each backend's name, source and docstring line."""
    return PROFILER_REGISTRY.describe()
