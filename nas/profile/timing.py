"""Timing protocol shared by the profilers and the accuracy check, so both measure alike."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from nas.cost.memory import MemoryTracker


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p90_ms: float
    samples: int
    timed_out: bool = False


def time_call(run: Callable[[], object], warmup: int = 3, repeats: int = 20, time_limit_s: float = 30.0,
              budget_s: float = 10.0, sync: Callable[[], None] = lambda: None) -> Timing:
    """Warm up, then time up to ``repeats`` calls (at least 3, within ``budget_s`` once past 3).

    A single call slower than ``time_limit_s`` ends the measurement as timed out.
    """
    samples: list[float] = []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            start = time.perf_counter()
            run()
            sync()
            elapsed = time.perf_counter() - start
            if elapsed > time_limit_s:
                return Timing(elapsed * 1e3, elapsed * 1e3, 1, timed_out=True)
            if index >= warmup:
                samples.append(elapsed * 1e3)
                if len(samples) >= 3 and sum(samples) / 1e3 > budget_s:
                    break
    return Timing(float(np.percentile(samples, 50)), float(np.percentile(samples, 90)), len(samples))


def peak_memory_mb(run: Callable[[], object]) -> float:
    """Peak tensor memory (MB) one call allocates beyond its inputs and weights."""
    with torch.inference_mode(), MemoryTracker() as tracker:
        run()
    return tracker.peak_mb


def device_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None
