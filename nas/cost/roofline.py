"""Estimated device tables from a roofline of published chip figures, for devices not at hand.

Each key runs once on the meta device (nothing allocated) in the form the export ships
(attention as ``split_einsum``), and every aten op is placed by the Neural Engine rules of
:mod:`nas.cost.placement`: on the Neural Engine, or on the fallback unit (the CPU for
CPU_AND_NE). Each unit's time is the larger of its compute time (its FLOPs at the unit's rate)
and its memory time (its share of the weights plus every output it writes, at the chip's
bandwidth), plus a dispatch cost per op with FLOPs; tensors crossing units are copied (written
and read once more) with a fixed cost per switch. One efficiency factor on the Neural Engine's
rate is calibrated on one published on-device figure, and the others published for other
chips are predicted with it: their error is the hold-out error the sidecar reports. Rows carry
provenance ``estimated`` and a ``placement``: replace them with a measured table as soon as a
device is at hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nas.cost.placement import ANE, RULES, PlacementTracker, UnitWork
from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, PLACEMENT, WORKING_SET, CostTable, claim_table, validate_rows
from nas.cost.workload import build_workload
from nas.errors import NasError
from nas.ops import OpKey
from nas.ops.memory_tracker import MemoryTracker
from nas.space import Architecture, SearchSpace


@dataclass(frozen=True)
class Chip:
    """Published figures of one accelerator, with where they come from."""

    name: str
    device: str
    compute_units: str
    fp16_tflops: float
    bandwidth_gbs: float
    dispatch_ms: float  # per Neural Engine op with FLOPs, a floor for tiny ops
    fallback_unit: str = "cpu"  # where ops the Neural Engine cannot run go (CPU for CPU_AND_NE)
    fallback_tflops: float = 0.5  # assumed effective FP16 rate of that unit
    fallback_dispatch_ms: float = 0.02
    switch_ms: float = 0.1  # assumed fixed cost of handing a tensor to another unit
    sources: tuple[str, ...] = field(default=())


_FALLBACK_SOURCE = (
    "Fallback (ops the Neural Engine cannot run, on the CPU with CPU_AND_NE): 0.5 TFLOPS FP16 "
    "effective, 0.02 ms per op, 0.1 ms per hand-over between units: ASSUMED (Apple publishes no "
    "CPU FLOPS or unit-switch cost); rules of nas/cost/placement.py"
)
CHIPS = {
    "a18-pro-ne": Chip(
        name="a18-pro-ne",
        device="iPhone 16 Pro Max (A18 Pro), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=17.5,
        bandwidth_gbs=60.0,
        dispatch_ms=0.05,
        sources=(
            "Apple, iPhone 16 Pro launch (Sept 2024): A18 Pro 16-core Neural Engine, 35 TOPS (counted in "
            "low-precision ops since the A17 Pro; FP16 taken as half, 17.5 TFLOPS); 8 GB RAM (press "
            "coverage: gadgets360, phonearena)",
            "Apple: 17% more memory bandwidth than A17 Pro; A17 Pro LPDDR5-6400 on a 64-bit bus = 51.2 GB/s, "
            "so ~60 GB/s",
            _FALLBACK_SOURCE,
        ),
    ),
    "a16-ne": Chip(
        name="a16-ne",
        device="iPhone 14 Pro Max (A16 Bionic), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=17.0,
        bandwidth_gbs=51.2,
        dispatch_ms=0.05,
        sources=(
            "Apple, iPhone 14 Pro launch (Sept 2022): A16 Neural Engine 17 trillion ops/s (FP16-era count)",
            "A16 LPDDR5-6400 on a 64-bit bus = 51.2 GB/s (press teardowns)",
            _FALLBACK_SOURCE,
        ),
    ),
    "a15-ne": Chip(
        name="a15-ne",
        device="iPhone 13 Pro Max (A15 Bionic), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=15.8,
        bandwidth_gbs=34.1,
        dispatch_ms=0.05,
        sources=(
            "Apple, iPhone 13 launch (Sept 2021): A15 Neural Engine 15.8 trillion ops/s",
            "A15 LPDDR4X-4266 on a 64-bit bus = 34.1 GB/s (press teardowns)",
            _FALLBACK_SOURCE,
        ),
    ),
    "m2-ne": Chip(
        name="m2-ne",
        device="iPad Pro (M2), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=15.8,
        bandwidth_gbs=100.0,
        dispatch_ms=0.05,
        sources=(
            "Apple, M2 launch (June 2022): Neural Engine 15.8 trillion ops/s, 100 GB/s unified memory",
            _FALLBACK_SOURCE,
        ),
    ),
}

# SD 2.1-base UNet (stabilityai/stable-diffusion-2-1-base config), as apple/ml-stable-diffusion converts it.
SD21_BASE_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    norm_num_groups=32,
)


@dataclass(frozen=True)
class PublishedPoint:
    """One published on-device figure: ``ms`` for ``calls`` UNet evaluations of a known model on a chip."""

    name: str
    chip: str
    ms: float
    what: str
    source: str


# apple/ml-stable-diffusion README (performance benchmark table): SD 2.1-base, 512x512, 6-bit palettized
# weights, SPLIT_EINSUM_V2 attention, CPU_AND_NE; one iteration = one UNet call at batch 2 (CFG).
SD21_POINTS = (
    PublishedPoint(
        "sd21-iphone14promax",
        "a16-ne",
        1000 / 2.69,
        "SD 2.1-base UNet 64x64 latent, batch 2, 6-bit, one iteration (2.69 it/s)",
        "apple/ml-stable-diffusion README, iPhone 14 Pro Max",
    ),
    PublishedPoint(
        "sd21-iphone13promax",
        "a15-ne",
        1000 / 2.55,
        "SD 2.1-base UNet 64x64 latent, batch 2, 6-bit, one iteration (2.55 it/s)",
        "apple/ml-stable-diffusion README, iPhone 13 Pro Max",
    ),
    PublishedPoint(
        "sd21-ipadpro-m2",
        "m2-ne",
        1000 / 3.07,
        "SD 2.1-base UNet 64x64 latent, batch 2, 6-bit, one iteration (3.07 it/s)",
        "apple/ml-stable-diffusion README, iPad Pro M2",
    ),
)


@dataclass(frozen=True)
class KeyWork:
    """What one workload asks of each unit, as the placement rules split it."""

    ne: UnitWork
    fallback: UnitWork
    weight_bytes: float
    transfer_bytes: float
    switches: int
    working_set_bytes: float
    placement: str
    notes: str

    @property
    def flops(self) -> float:
        return self.ne.flops + self.fallback.flops


def workload_work(module: torch.nn.Module, inputs, fallback_unit: str, weight_bytes: float) -> KeyWork:
    """Run ``module(*inputs)`` (meta tensors) once with the placement and memory trackers."""
    from nas.ops.ane import use_attention

    use_attention(module, "split_einsum")  # the form the export ships to the Neural Engine
    placement, tracker = PlacementTracker(inputs, fallback_unit), MemoryTracker()
    with torch.no_grad(), tracker, placement:
        module(*inputs)
    placement.finish()
    return KeyWork(
        placement.units.get(ANE, UnitWork()),
        placement.units.get(fallback_unit, UnitWork()),
        float(weight_bytes),
        placement.transfer_bytes,
        placement.switches,
        float(tracker.peak),
        placement.placement,
        placement.notes,
    )


def key_work(space: SearchSpace, key: OpKey, chip: Chip, dtype_bytes: int = 2) -> KeyWork:
    """Work, placement and working set of one key, counted on the meta device."""
    with torch.device("meta"):
        workload = build_workload(space, key, "meta", torch.float16 if dtype_bytes == 2 else torch.float32)
        weights = sum(p.numel() for p in workload.module.parameters()) * dtype_bytes
        return workload_work(workload.module, workload.inputs, chip.fallback_unit, weights)


def roofline_ms(work: KeyWork, chip: Chip, efficiency: float) -> float:
    """Neural Engine part + fallback part + hand-overs between them, each a roofline."""
    bandwidth = chip.bandwidth_gbs * 1e9
    share = work.fallback.flops / work.flops if work.flops else 0.0

    def part(unit: UnitWork, tflops: float, weights: float, dispatch_ms: float) -> float:
        if unit.flops == 0 and unit.written_bytes == 0:
            return 0.0
        compute = unit.flops / (tflops * 1e12) * 1e3
        memory = (weights + unit.written_bytes) / bandwidth * 1e3
        return max(compute, memory) + dispatch_ms * unit.ops

    ne = part(work.ne, chip.fp16_tflops * efficiency, work.weight_bytes * (1 - share), chip.dispatch_ms)
    fallback = part(work.fallback, chip.fallback_tflops, work.weight_bytes * share, chip.fallback_dispatch_ms)
    transfers = 2 * work.transfer_bytes / bandwidth * 1e3 + chip.switch_ms * work.switches
    return ne + fallback + transfers


def sd21_work(fallback_unit: str = "cpu", weight_bits: int = 6) -> KeyWork:
    """SD 2.1-base's UNet at 512x512, batch 2 (one CFG iteration), ``weight_bits`` palettized weights."""
    from diffusers import UNet2DConditionModel

    from nas.ops.ane import ChannelsFirstAttnProcessor

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD21_BASE_UNET).to(torch.float16)
        unet.set_attn_processor(ChannelsFirstAttnProcessor("split_einsum"))
        inputs = (
            torch.empty(2, 4, 64, 64, dtype=torch.float16),
            torch.full((2,), 500.0),
            torch.empty(2, 77, 1024, dtype=torch.float16),
        )
        weights = sum(p.numel() for p in unet.parameters()) * weight_bits / 8
        return workload_work(_Positional(unet), inputs, fallback_unit, weights)


class _Positional(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, text):
        return self.unet(sample, timestep, text, return_dict=False)[0]


def estimate_table(
    space: SearchSpace,
    chip: Chip,
    calibrate: tuple[Architecture, int, float] | None = None,
    command: str = "",
    holdout: bool = True,
) -> CostTable:
    """A table for every planned key of ``space`` on ``chip``; ``calibrate`` = (arch, UNet passes, total_ms).

    With ``calibrate`` and ``holdout``, the apple/ml-stable-diffusion SD 2.1 figures (other chips)
    are predicted with the fitted efficiency, and the reverse fit (on the iPhone 14 Pro Max SD 2.1
    figure) predicts ``calibrate``'s total: the sidecar reports every predicted/published pair.
    """
    import nas
    from nas.cost.cost_model import CostModel

    keys = table_plan(space)
    works = {key: key_work(space, key, chip) for key in keys}

    def table_at(efficiency: float) -> CostTable:
        rows = []
        for key, work in works.items():
            ms = roofline_ms(work, chip, efficiency)
            rows.append(
                {
                    **key.as_dict(),
                    "latency_p50_ms": ms,
                    "latency_p90_ms": ms,
                    WORKING_SET: work.working_set_bytes / 2**20,
                    "samples": 0,
                    "status": "ok",
                    "message": "",
                    PLACEMENT: work.placement,
                }
            )
        frame = pd.DataFrame(rows, columns=COLUMNS).astype(str)
        return CostTable(validate_rows(frame, f"estimate for {chip.name}"), {"precision": "fp16"})

    efficiency, calibration = 1.0, None
    if calibrate is not None:
        architecture, passes, total_ms = calibrate
        space_total = lambda e: CostModel(space, table_at(e)).predict(architecture, passes).latency_ms  # noqa: E731
        efficiency = _calibrate(space_total, total_ms)
        calibration = {
            "fit_on": {
                "point": f"{space.name}/{architecture.id}",
                "chip": chip.name,
                "passes": passes,
                "published_ms": total_ms,
            },
            "efficiency": round(efficiency, 4),
        }
        if holdout:
            calibration.update(_holdout(chip, efficiency, space_total, total_ms, f"{space.name}/{architecture.id}"))
    table = table_at(efficiency)
    off_ne = {k.row_text(): f"{w.placement}: {w.notes}" for k, w in works.items() if w.placement != ANE}
    table.meta = {
        "device": chip.device,
        "os": "iOS 18 (assumed)",
        "backend": "coreml",
        "compute_units": chip.compute_units,
        "precision": "fp16",
        "tools": {"nas": nas.__version__},
        "date": date.today().isoformat(),
        "provenance": "estimated",
        "attention": "split_einsum",
        "space": space.name,
        "method": (
            f"per unit roofline: Neural Engine max(FLOPs / ({chip.fp16_tflops} TFLOPS x efficiency "
            f"{efficiency:.3f}), bytes / {chip.bandwidth_gbs} GB/s) + {chip.dispatch_ms} ms per op with "
            f"FLOPs; ops off the Neural Engine on the {chip.fallback_unit} at {chip.fallback_tflops} TFLOPS + "
            f"{chip.fallback_dispatch_ms} ms per op; hand-overs copy the tensor (2 x bytes / bandwidth) + "
            f"{chip.switch_ms} ms; attention as split_einsum; counted on the meta device"
        ),
        "placement_rules": dict(RULES),
        "placement": {"rows_on_ne": sum(w.placement == ANE for w in works.values()), "off_ne": off_ne},
        "calibration": calibration,
        "sources": list(chip.sources),
        "command": command,
    }
    return table


def _holdout(
    chip: Chip, efficiency: float, space_total: Callable[[float], float], space_ms: float, space_point: str
) -> dict[str, Any]:
    """Predict the published figures the fit did not use, both ways, and give the errors."""
    sd21 = sd21_work(chip.fallback_unit)
    predictions = []
    for point in SD21_POINTS:
        predicted = roofline_ms(sd21, CHIPS[point.chip], efficiency)
        predictions.append(_compare(point.name, point.chip, point.ms, predicted, f"{point.what}; {point.source}"))
    first = SD21_POINTS[0]
    try:
        reverse = _calibrate(lambda e: roofline_ms(sd21, CHIPS[first.chip], e), first.ms)
        predictions.append(
            _compare(
                space_point,
                chip.name,
                space_ms,
                space_total(reverse),
                f"fitted on {first.name} instead (efficiency {reverse:.4f})",
            )
        )
    except NasError:  # that figure is faster than the roofline allows at any efficiency
        predictions.append(
            _compare(
                space_point,
                chip.name,
                space_ms,
                space_total(1.0),
                f"fitted on {first.name} instead: unreachable, shown at efficiency 1",
            )
        )
    errors = [abs(p["error_pct"]) for p in predictions]
    return {
        "holdout": predictions,
        "holdout_mean_abs_error_pct": round(sum(errors) / len(errors), 1),
        "note": "apple/ml-stable-diffusion used SPLIT_EINSUM_V2 (query chunks, 10-30% faster on mobile); "
        "the estimate models SPLIT_EINSUM",
    }


def _compare(name: str, chip_name: str, published: float, predicted: float, what: str) -> dict[str, Any]:
    return {
        "point": name,
        "chip": chip_name,
        "published_ms": round(published, 1),
        "predicted_ms": round(predicted, 1),
        "error_pct": round(100 * (predicted - published) / published, 1),
        "what": what,
    }


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


def write_estimate(
    space_path: str | Path,
    out: str | Path,
    chip_name: str = "a18-pro-ne",
    calibrate_arch: str = "reference",
    calibrate_ms: float | None = None,
    passes: int = 4,
    command: str = "",
) -> CostTable:
    """``nas table estimate``: the estimate of the space at ``space_path`` for ``chip_name`` (calibrated so that
    ``calibrate_arch`` takes ``calibrate_ms`` per generation of ``passes``, if given), written to ``out``."""
    claim_table(out, [space_path])  # before any work: the sidecar must not land on the space
    space = SearchSpace.load(space_path)
    calibrate = None if calibrate_ms is None else (space.architecture(calibrate_arch), passes, calibrate_ms)
    table = estimate_table(space, chip(chip_name), calibrate, command=command)
    table.save(out)
    return table
