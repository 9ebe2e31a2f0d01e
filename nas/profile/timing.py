"""Timing protocol shared by the profilers and the accuracy check, so both measure alike.

Shared machines (cloud VMs, laptops under load) change speed by 10-30% from one second to the
next. Each timed call is therefore paired with short fixed *speed probe* runs around it: the
call's time divided by the probe's is stable across such drift, and scaling that ratio by a
reference probe time (kept in the table's sidecar as ``probe_ms``) gives latencies that stay
comparable between a profile and a later check. One probe run is itself noisy (~1.5x from run
to run), so the scale is the median of a window of probe runs taken around the last several
calls (:class:`SpeedScale`): a call inherits neither one probe's noise nor a burst that lands on
the few milliseconds of probing around it. Calls of a second or more are not scaled at all
(``LONG_CALL_MS``): drift averages out within them, and the probe, run between such calls,
misreads the machine (with the scale, five forwards of one full-size model spread 20.6-29.5 s;
as timed, 27.9-29.4 s). A full-size table is therefore in the speed of the day it was measured.
On a machine of steady speed the correction is a no-op.

Inside a whole UNet a layer never finds its weights in the CPU's caches: the layers before it
have evicted them, and a UNet forward's own traffic exceeds the last-level cache. Timed alone in
a loop, a part finds them warm, and the table's parts then add up to less than the whole
(5-8% for the tiny space on a 2-core VM). So on a CPU each timed call, of a part or of a whole
model, starts from caches swept by :func:`evict_caches` (twice the largest cache), and the
process keeps freed memory for reuse (:func:`keep_freed_memory`) so that no call pays for page
faults that a deployed model, with its memory planned once, never takes.
"""

from __future__ import annotations

import functools
import platform
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.ops.memory_tracker import MemoryTracker


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p90_ms: float
    samples: int
    timed_out: bool = False


class SpeedProbe:
    """A fixed ~1 ms CPU workload whose time tracks machine speed.

    It mixes what UNet layers spend time on: a matmul, a small convolution, and a chain of
    small norm/activation/attention calls whose cost is mostly per-call dispatch overhead.
    """

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.matrix = torch.randn(256, 256, generator=generator)
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.norm = torch.nn.GroupNorm(8, 32)
        self.image = torch.randn(2, 32, 16, 16, generator=generator)
        self.tokens = torch.randn(4, 64, 32, generator=generator)

    def run(self) -> float:
        """Seconds one probe took."""
        start = time.perf_counter()
        with torch.inference_mode():
            self.matrix @ self.matrix
            x = self.image
            for _ in range(4):
                x = torch.nn.functional.silu(self.norm(self.conv(x)))
                torch.nn.functional.scaled_dot_product_attention(self.tokens, self.tokens, self.tokens)
        return time.perf_counter() - start

    def reference_ms(self, runs: int = 200) -> float:
        """Median probe time now: the scale that probe-relative timings are reported in."""
        for _ in range(20):
            self.run()
        return float(np.median([self.run() for _ in range(runs)]) * 1e3)


class SpeedScale:
    """Reference probe time over the median probe time of a window around the recent calls.

    ``before()`` and ``after()`` each add ``runs`` probe runs to a window of the last ``window``
    runs (the last eight calls' probing); the first ``before()`` fills ``start`` runs, so a short
    measurement does not pay for a full window. ``factor()`` turns a call's time into the
    reference scale.
    """

    def __init__(self, probe: SpeedProbe, reference_ms: float, runs: int = 4, window: int = 64, start: int = 16):
        self.probe, self.reference_ms, self.runs, self.start = probe, reference_ms, runs, start
        self.times: deque[float] = deque(maxlen=window)

    def _add(self, runs: int) -> None:
        for _ in range(runs):
            self.times.append(self.probe.run() * 1e3)

    def before(self) -> None:
        self._add(self.start if not self.times else self.runs)

    def after(self) -> None:
        self._add(self.runs)

    def factor(self) -> float:
        return self.reference_ms / float(np.median(self.times))


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse rather than hand large blocks back to the kernel.

    By default every tensor over 32 MB is mapped fresh and unmapped when freed, so each full-size
    UNet forward faults in gigabytes of new pages: on the 2-core VM, ~2M minor page faults and
    6-8 s of kernel time per forward, varying with the host's memory pressure. That is a cost of
    the allocator, not of the architecture, and it was the largest part of the whole-model noise:
    five forwards of one full-size model took 31.5-34.3 s (sys 5.7-7.8 s) by default and
    27.9-29.4 s (no page faults once warm) with this. Process-wide; returns whether it applied
    (glibc only: elsewhere the allocator is left as it is).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None or platform.libc_ver()[0] != "glibc":
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # malloc.h
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


# Calls this long are reported as timed, not probe-scaled. Over a second the machine's drift from one
# moment to the next averages out within the call itself, while the probe, run between calls, reads
# the state a long call leaves behind: on the 2-core VM, probe medians taken between five full-size
# forwards (27.9-29.4 s each) ranged 2.4-3.4 ms, and scaling by them spread the times to 20.6-29.5 s.
LONG_CALL_MS = 1000.0

_sweep: torch.Tensor | None = None


def largest_cache_bytes(default: int = 32 * 2**20) -> int:
    """The CPU's largest cache (Linux sysfs), or ``default`` where it cannot be read."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        match = re.fullmatch(r"(\d+)([KMG]?)", path.read_text().strip())
        if match:
            sizes.append(int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)])
    return max(sizes, default=default)


def evict_caches() -> None:
    """Write a buffer twice the largest cache, so the next call finds caches as it would in a whole model."""
    global _sweep
    if _sweep is None:
        _sweep = torch.empty(2 * largest_cache_bytes() // 4)
    _sweep.fill_(1.0)


def time_call(
    run: Callable[[], object],
    warmup: int = 3,
    repeats: int = 20,
    time_limit_s: float = 30.0,
    budget_s: float = 10.0,
    sync: Callable[[], None] = lambda: None,
    probe: SpeedProbe | None = None,
    probe_ms: float | None = None,
    evict: Callable[[], None] | None = None,
) -> Timing:
    """Warm up, then time up to ``repeats`` calls: at least 3, and no more once the timed calls, with
    their probe runs and cache sweeps, have taken ``budget_s`` (for a 1 ms op those take ~40x the call).

    With ``probe`` and ``probe_ms``, each call is reported as ``call x probe_ms / probe``, the probe
    time being the median of the probe runs around the recent calls (see :class:`SpeedScale`),
    unless the calls take a second or more (median): those are reported as timed (LONG_CALL_MS).
    With ``evict``, it runs before every call (see :func:`evict_caches`). A single call slower
    than ``time_limit_s`` ends the measurement as timed out.
    """
    samples: list[float] = []
    raw: list[float] = []
    spent = 0.0
    scale = SpeedScale(probe, probe_ms) if probe is not None and probe_ms else None
    with torch.inference_mode():
        for index in range(warmup + repeats):
            timed = index >= warmup
            began = time.perf_counter()
            if scale is not None and timed:
                scale.before()
            if evict is not None:
                evict()
            start = time.perf_counter()
            run()
            sync()
            elapsed = time.perf_counter() - start
            if elapsed > time_limit_s:
                return Timing(elapsed * 1e3, elapsed * 1e3, 1, timed_out=True)
            if timed:
                if scale is not None:
                    scale.after()
                samples.append(elapsed * 1e3 * (scale.factor() if scale is not None else 1.0))
                raw.append(elapsed * 1e3)
                spent += time.perf_counter() - began  # probing and sweeping too: the budget is the key's time
                if len(samples) >= 3 and spent > budget_s:
                    break
    if np.median(raw) >= LONG_CALL_MS:
        samples = raw
    return Timing(float(np.percentile(samples, 50)), float(np.percentile(samples, 90)), len(samples))


def working_set_mb(run: Callable[[], object]) -> float:
    """Working set of one call: the peak tensor memory (MB) it allocates beyond its inputs and weights."""
    with torch.inference_mode(), MemoryTracker() as tracker:
        run()
    return tracker.peak_mb


def device_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None
