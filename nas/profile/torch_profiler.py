"""The torch backend: eager PyTorch on cpu, cuda or mps."""

from __future__ import annotations

import platform
from typing import Any

import torch

from nas.cost.table import WORKING_SET
from nas.cost.workload import build_workload
from nas.errors import NasError
from nas.machine import fingerprint
from nas.ops import OpKey
from nas.profile.base import Profiler, register_profiler
from nas.profile.timing import (
    SpeedProbe,
    device_sync,
    evict_caches,
    keep_freed_memory,
    time_call,
    working_set_mb,
)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@register_profiler
class TorchProfiler(Profiler):
    name = "torch"

    def __init__(
        self, space, device: str = "cpu", precision: str = "fp32", probe_ms: float | None = None, **options: Any
    ):
        super().__init__(space, **options)
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise NasError(f"--device {device}: not a torch device") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise NasError("--device cuda: no CUDA device is available here")
        if self.device.type == "mps" and not torch.backends.mps.is_available():
            raise NasError("--device mps: no MPS device is available here")
        if precision not in DTYPES:
            raise NasError(f"--precision must be one of {', '.join(DTYPES)}, got {precision!r}")
        self.precision = precision
        # CPU speed drifts on shared machines: time relative to a probe (see nas.profile.timing), in the
        # scale ``probe_ms`` of the rows a resumed table already has, or in a reference measured now.
        self.probe = SpeedProbe() if self.device.type == "cpu" else None
        self._probe_ms = float(probe_ms) if probe_ms else None

    @property
    def probe_ms(self) -> float | None:
        """The scale's reference probe time: the one given, or measured on first use (so a profiler built only
        to check its options, as the runner does before starting its worker, measures nothing)."""
        if self.probe is None:
            return None
        if self._probe_ms is None:
            self._probe_ms = self.probe.reference_ms()
        return self._probe_ms

    def measure(self, key: OpKey) -> dict[str, Any]:
        if self.device.type == "cpu":
            keep_freed_memory()
        workload = build_workload(self.space, key, self.device, DTYPES[self.precision])
        timing = time_call(
            workload,
            self.warmup,
            self.repeats,
            self.time_limit_s,
            self.budget_s,
            device_sync(self.device),
            self.probe,
            self.probe_ms,
            evict_caches if self.device.type == "cpu" else None,
        )
        if timing.timed_out:
            return {"latency_p50_ms": "", "latency_p90_ms": "", WORKING_SET: "", "samples": 0, "status": "timeout"}
        return {
            "latency_p50_ms": timing.p50_ms,
            "latency_p90_ms": timing.p90_ms,
            WORKING_SET: working_set_mb(workload),
            "samples": timing.samples,
            "status": "ok",
        }

    def limit_memory(self, limit_mb: float) -> None:
        """CUDA/MPS: cap what torch's allocator may hold (it raises OutOfMemoryError past it); CPU: address space.

        The reference probe is measured first: the cap is for the measured ops, not for the probe."""
        self.probe_ms  # noqa: B018  (measured on first use)
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            used = torch.cuda.memory_reserved(self.device)
            torch.cuda.set_per_process_memory_fraction(min(1.0, (used + limit_mb * 2**20) / total), self.device)
        elif self.device.type == "mps":
            total = torch.mps.recommended_max_memory()
            torch.mps.set_per_process_memory_fraction(
                min(2.0, (torch.mps.driver_allocated_memory() + limit_mb * 2**20) / total)
            )
        else:
            super().limit_memory(limit_mb)

    def metadata(self) -> dict[str, Any]:
        meta = self.common_metadata()
        if self.device.type == "cuda":
            device = torch.cuda.get_device_name(self.device)
        else:
            device = f"{platform.machine()} {platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"
        meta.update(device=device, backend="torch", torch_device=self.device.type, precision=self.precision)
        if self.probe_ms is not None:
            meta["probe_ms"] = self.probe_ms
        meta["tools"]["torch"] = str(torch.__version__)
        meta["machine"] = fingerprint(self.device.type)  # in the measuring process: its threads are the ones used
        return meta
