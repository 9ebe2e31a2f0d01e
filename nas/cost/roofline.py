"""Estimated device tables from a roofline of published chip figures, for devices not at hand.

Each key's time is the larger of its compute time (FLOPs at the chip's FP16 rate) and its
memory time (weights plus every op output written once, at the chip's bandwidth), plus a fixed per-layer dispatch cost; one
efficiency factor on the compute rate is then calibrated so that a published end-to-end
number is reproduced. Work and traffic are counted on the meta device (no allocation); the
Neural Engine materialises attention score matrices, so those are added to traffic and to
the working set, and sequences over its axis limit are marked unsupported. Rows carry
provenance ``estimated``: replace them with a measured table as soon as a device is at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.cost.memory import MemoryTracker
from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, SPATIAL, LatencyTable, validate_rows
from nas.errors import NasError
from nas.ops import OpKey
from nas.profile.workload import build_workload
from nas.space import Architecture, SearchSpace


@dataclass(frozen=True)
class Chip:
    """Published figures of one accelerator, with where they come from."""

    name: str
    device: str
    compute_units: str
    fp16_tflops: float
    bandwidth_gbs: float
    dispatch_ms: float  # per layer launch, a floor for tiny ops
    max_axis: int  # longest sequence an attention may have on this unit
    sources: tuple[str, ...] = field(default=())


CHIPS = {
    "a18-pro-ne": Chip(
        name="a18-pro-ne",
        device="iPhone 16 Pro Max (A18 Pro), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=17.5,
        bandwidth_gbs=60.0,
        dispatch_ms=0.05,
        max_axis=16384,
        sources=(
            "Apple, iPhone 16 Pro launch (Sept 2024): A18 Pro 16-core Neural Engine, 35 TOPS (low-precision "
            "ops; FP16 taken as half, 17.5 TFLOPS); 8 GB RAM (press coverage: gadgets360, phonearena)",
            "Apple: 17% more memory bandwidth than A17 Pro; A17 Pro LPDDR5-6400 on a 64-bit bus = 51.2 GB/s, "
            "so ~60 GB/s",
            "Neural Engine axis limit 16384 (coremltools users' reports; apple/ml-stable-diffusion notes)",
            "Calibration: SnapGen-V (arXiv 2412.10494), 0.6B UNet, 4 steps, 4.12 s per 5 s clip on iPhone 16 Pro Max",
        ),
    ),
}


@dataclass(frozen=True)
class KeyWork:
    flops: float
    moved_bytes: float
    working_set_bytes: float
    supported: bool


def key_work(space: SearchSpace, key: OpKey, chip: Chip, dtype_bytes: int = 2) -> KeyWork:
    """FLOPs, bytes moved and working set of one key, counted on the meta device."""
    with torch.device("meta"):
        workload = build_workload(space, key, "meta", torch.float16 if dtype_bytes == 2 else torch.float32)
        counter, tracker = FlopCounterMode(display=False), MemoryTracker()
        with torch.no_grad(), counter, tracker:
            workload()
    weights = sum(p.numel() for p in workload.module.parameters()) * dtype_bytes
    moved = weights + tracker.moved  # every output written once; reads of it assumed fused or cached
    working = tracker.peak
    supported = True
    sequences = _attention_sequences(key)
    if sequences is not None:
        batch, length = sequences
        scores = key.heads * batch * length * length * dtype_bytes
        moved += 2 * scores
        working += scores
        supported = length <= chip.max_axis
    return KeyWork(float(counter.get_total_flops()), float(moved), float(working), supported)


def _attention_sequences(key: OpKey) -> tuple[int, int] | None:
    """(number of sequences, sequence length) of the built-in attention ops."""
    if key.op == "attn1d":
        return key.height * key.width, key.frames
    if key.op == "attn3d":
        return 1, key.frames * key.height * key.width
    return None


def roofline_ms(work: KeyWork, chip: Chip, efficiency: float, layers: int = 1) -> float:
    compute = work.flops / (chip.fp16_tflops * 1e12 * efficiency) * 1e3
    memory = work.moved_bytes / (chip.bandwidth_gbs * 1e9) * 1e3
    return max(compute, memory) + chip.dispatch_ms * layers


def estimate_table(space: SearchSpace, chip: Chip, calibrate: tuple[Architecture, int, float] | None = None,
                   command: str = "") -> LatencyTable:
    """A table for every planned key of ``space`` on ``chip``; ``calibrate`` = (arch, steps, total_ms)."""
    import nas
    from nas.cost.cost_model import CostModel

    keys = table_plan(space)
    works = {key: key_work(space, key, chip) for key in keys}
    # The spatial UNet launches one layer per module with weights; temporal ops count as ~10.
    spatial_layers = sum(1 for m in build_workload(space, keys[0], "meta").module.modules()
                         if any(True for _ in m.parameters(recurse=False)))

    def table_at(efficiency: float) -> LatencyTable:
        rows = []
        for key, work in works.items():
            layers = spatial_layers if key.op == SPATIAL else 10
            ms = roofline_ms(work, chip, efficiency, layers)
            status = "ok" if work.supported else "unsupported"
            rows.append({**key.as_dict(), "latency_p50_ms": ms if work.supported else math.nan,
                         "latency_p90_ms": ms if work.supported else math.nan,
                         "memory_mb": work.working_set_bytes / 2**20 if work.supported else math.nan,
                         "samples": 0, "status": status})
        frame = pd.DataFrame(rows, columns=COLUMNS).map(
            lambda v: "" if isinstance(v, float) and math.isnan(v) else str(v))
        return LatencyTable(validate_rows(frame, f"estimate for {chip.name}"), {"precision": "fp16"})

    efficiency = 1.0
    if calibrate is not None:
        architecture, steps, total_ms = calibrate
        efficiency = _calibrate(lambda e: CostModel(space, table_at(e)).predict(architecture, steps).latency_ms,
                                total_ms)
    table = table_at(efficiency)
    table.meta = {
        "device": chip.device,
        "os": "iOS 18 (assumed)",
        "backend": "coreml",
        "compute_units": chip.compute_units,
        "precision": "fp16",
        "tools": {"nas": nas.__version__},
        "date": date.today().isoformat(),
        "provenance": "estimated",
        "space": space.name,
        "method": (f"roofline: max(FLOPs / ({chip.fp16_tflops} TFLOPS x efficiency {efficiency:.3f}), "
                   f"bytes / {chip.bandwidth_gbs} GB/s) + {chip.dispatch_ms} ms per layer; working set and "
                   "traffic counted on the meta device, attention scores materialised"),
        "calibration": (None if calibrate is None else
                        {"architecture": calibrate[0].id, "steps": calibrate[1], "total_ms": calibrate[2],
                         "efficiency": round(efficiency, 4)}),
        "sources": list(chip.sources),
        "command": command,
    }
    return table


def _calibrate(total: Callable[[float], float], target_ms: float) -> float:
    """Efficiency in (0, 1] whose predicted total matches ``target_ms`` (bisection; total falls as it grows)."""
    low, high = 1e-3, 1.0
    if total(high) > target_ms:
        raise NasError(f"the roofline cannot reach {target_ms} ms even at full efficiency (memory-bound)")
    for _ in range(60):
        middle = math.sqrt(low * high)
        if total(middle) > target_ms:
            low = middle
        else:
            high = middle
    return high


def chip(name: str) -> Chip:
    if name not in CHIPS:
        raise NasError(f"--chip: unknown chip {name!r} (known: {', '.join(CHIPS)})")
    return CHIPS[name]

