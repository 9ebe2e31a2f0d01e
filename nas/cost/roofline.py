"""Estimated device tables from a roofline of published chip figures, for devices not at hand.

Each key runs once on the meta device (nothing allocated) in the form the export ships
(attention as ``split_einsum``), and every aten op is placed by the Neural Engine rules of
:mod:`nas.cost.placement`: on the Neural Engine, or on the fallback unit (the CPU for
CPU_AND_NE). Every op with FLOPs (and every softmax; elementwise ops are taken as fused) costs
the larger of its compute time (its FLOPs at its unit's rate) and its memory time (the
activations it reads and writes and the weights it reads, at the chip's bandwidth), plus a
dispatch cost per op with FLOPs; tensors crossing units are copied (written and read once more)
with a fixed cost per switch. The Neural Engine's efficiency (the share of its published rate
that is reached) and its dispatch cost are fitted to published on-device figures of public
models (:mod:`nas.cost.calibration`), or the efficiency alone to one end-to-end figure of the
space's own. Rows carry provenance ``estimated`` and a ``placement``: replace them with a
measured table as soon as a device is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
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
    "a17-pro-ne": Chip(
        name="a17-pro-ne",
        device="iPhone 15 Pro Max (A17 Pro), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=17.5,
        bandwidth_gbs=51.2,
        dispatch_ms=0.05,
        sources=(
            "Apple, iPhone 15 Pro launch (Sept 2023): A17 Pro Neural Engine 35 trillion ops/s, counted in "
            "low-precision ops (FP16 taken as half, 17.5 TFLOPS)",
            "A17 Pro LPDDR5-6400 on a 64-bit bus = 51.2 GB/s (press teardowns)",
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
    "a14-ne": Chip(
        name="a14-ne",
        device="iPhone 12 (A14 Bionic), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=11.0,
        bandwidth_gbs=34.1,
        dispatch_ms=0.05,
        sources=(
            "Apple, iPhone 12 launch (Oct 2020): A14 Neural Engine 11 trillion ops/s",
            "A14 LPDDR4X-4266 on a 64-bit bus = 34.1 GB/s (press teardowns)",
            _FALLBACK_SOURCE,
        ),
    ),
    "m1-ne": Chip(
        name="m1-ne",
        device="iPad Pro / MacBook Pro (M1), 16-core Neural Engine",
        compute_units="CPU_AND_NE",
        fp16_tflops=11.0,
        bandwidth_gbs=68.25,
        dispatch_ms=0.05,
        sources=(
            "Apple, M1 launch (Nov 2020): Neural Engine 11 trillion ops/s; LPDDR4X-4266 on a 128-bit bus = 68.25 GB/s",
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


@dataclass(frozen=True)
class KeyWork:
    """What one workload asks of each unit, as the placement rules split it; ``weight_scale`` prices its weights
    at another width than traced (palettized weights: bits / 16)."""

    ne: UnitWork
    fallback: UnitWork
    weight_bytes: float
    transfer_bytes: float
    switches: int
    working_set_bytes: float
    placement: str
    notes: str
    weight_scale: float = 1.0

    @property
    def flops(self) -> float:
        return self.ne.flops + self.fallback.flops


def workload_work(
    module: torch.nn.Module, inputs, fallback_unit: str, weight_bytes: float, weight_scale: float = 1.0
) -> KeyWork:
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
        weight_scale,
    )


def key_work(space: SearchSpace, key: OpKey, chip: Chip, dtype_bytes: int = 2) -> KeyWork:
    """Work, placement and working set of one key, counted on the meta device."""
    with torch.device("meta"):
        workload = build_workload(space, key, "meta", torch.float16 if dtype_bytes == 2 else torch.float32)
        weights = sum(p.numel() for p in workload.module.parameters()) * dtype_bytes
        return workload_work(workload.module, workload.inputs, chip.fallback_unit, weights)


def roofline_ms(work: KeyWork, chip: Chip, efficiency: float, dispatch_ms: float | None = None) -> float:
    """Neural Engine part + fallback part + hand-overs between them; each op a roofline of its own.

    ``efficiency`` scales the Neural Engine's published rate; ``dispatch_ms`` is its cost per op with FLOPs
    (default: the chip's)."""
    bandwidth = chip.bandwidth_gbs * 1e9

    def part(unit: UnitWork, tflops: float, dispatch: float) -> float:
        if not unit.op_flops:
            return 0.0
        compute = np.asarray(unit.op_flops) / (tflops * 1e12)
        moved = np.asarray(unit.op_activation_bytes) + np.asarray(unit.op_weight_bytes) * work.weight_scale
        return float(np.maximum(compute, moved / bandwidth).sum() * 1e3) + dispatch * unit.ops

    ne = part(work.ne, chip.fp16_tflops * efficiency, chip.dispatch_ms if dispatch_ms is None else dispatch_ms)
    fallback = part(work.fallback, chip.fallback_tflops, chip.fallback_dispatch_ms)
    transfers = 2 * work.transfer_bytes / bandwidth * 1e3 + chip.switch_ms * work.switches
    return ne + fallback + transfers


def estimate_table(
    space: SearchSpace,
    chip: Chip,
    calibrate: tuple[Architecture, int, float] | None = None,
    command: str = "",
    holdout: bool = True,
    published: bool = False,
    check: tuple[Architecture, int, float] | None = None,
) -> CostTable:
    """A table for every planned key of ``space`` on ``chip``, fixed parts included.

    ``published``: the Neural Engine's efficiency and cost per op fitted to the published points of
    :mod:`nas.cost.calibration`, with their leave-one-out errors in the sidecar. ``calibrate`` =
    (architecture, UNet passes, whole-generation ms): the efficiency alone fitted to a published figure
    of the space's own, and (``holdout``) the published points predicted with it. ``check`` = the same
    triple, only predicted and reported next to the figure (the A18 Pro has no public-model point).
    """
    import nas
    from nas.cost.calibration import calibrate_published, calibrate_to, predict_point
    from nas.cost.cost_model import CostModel

    keys = table_plan(space)
    works = {key: key_work(space, key, chip) for key in keys}

    def table_at(efficiency: float, dispatch_ms: float) -> CostTable:
        rows = []
        for key, work in works.items():
            ms = roofline_ms(work, chip, efficiency, dispatch_ms)
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

    def generation_ms(architecture: Architecture, passes: int, efficiency: float, dispatch_ms: float):
        model = CostModel(space, table_at(efficiency, dispatch_ms))
        prediction = model.predict(architecture, passes)
        return prediction.latency_ms, prediction

    efficiency, dispatch_ms, calibration = 1.0, chip.dispatch_ms, None
    if published and calibrate is not None:
        raise NasError("calibrate on the published points or on one figure of the space's own, not both")
    if published:
        fit, calibration = calibrate_published()
        efficiency, dispatch_ms = fit.efficiency, fit.dispatch_ms
    elif calibrate is not None:
        architecture, passes, total_ms = calibrate
        efficiency = calibrate_to(lambda e: generation_ms(architecture, passes, e, dispatch_ms)[0], total_ms)
        calibration = {
            "fit_on": {
                "point": f"{space.name}/{architecture.id}",
                "chip": chip.name,
                "passes": passes,
                "published_ms": total_ms,
                "what": "whole generation: text encoder + passes x UNet + decoder (the space's generation)",
            },
            "efficiency": round(efficiency, 4),
        }
        if holdout:
            from nas.cost.calibration import POINTS, Fit

            held = [
                _compare(p.name, p.chip, p.ms, predict_point(p, Fit(efficiency, dispatch_ms)), p.what)
                for p in POINTS
                if p.stack != "2022"
            ]
            calibration["holdout"] = held
            calibration["holdout_mean_abs_error_pct"] = round(sum(abs(p["error_pct"]) for p in held) / len(held), 1)
    if check is not None:
        architecture, passes, total_ms = check
        predicted, prediction = generation_ms(architecture, passes, efficiency, dispatch_ms)
        calibration = calibration or {}
        calibration["check"] = {
            **_compare(
                f"{space.name}/{architecture.id}",
                chip.name,
                total_ms,
                predicted,
                f"whole generation ({passes} UNet passes with the space's text encoder and decoder), not fitted",
            ),
            "unet_ms": round(passes * prediction.unet_ms, 1),
            "fixed_ms": {f["part"]: round(f["total_ms"], 1) for f in prediction.fixed},
        }
    table = table_at(efficiency, dispatch_ms)
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
        "chip": chip.name,
        "space": space.name,
        "method": (
            f"per op roofline: on the Neural Engine max(FLOPs / ({chip.fp16_tflops} TFLOPS x efficiency "
            f"{efficiency:.3f}), bytes read and written / {chip.bandwidth_gbs} GB/s) + {dispatch_ms:.3f} ms per op "
            f"with FLOPs; ops off the Neural Engine on the {chip.fallback_unit} at {chip.fallback_tflops} TFLOPS + "
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


def estimate(
    space_path: str | Path,
    out: str | Path,
    chip_name: str = "a18-pro-ne",
    published: bool = False,
    calibrate_ms: float | None = None,
    check_ms: float | None = None,
    arch: str = "reference",
    passes: int = 4,
    command: str = "",
) -> CostTable:
    """``nas table estimate``: the estimated table of the space at ``space_path`` on a chip, saved to ``out``.

    ``published``: fit to the published points; ``calibrate_ms``: fit the efficiency to that whole-generation ms of
    ``arch`` at ``passes``; ``check_ms``: report that figure next to its prediction."""
    if published and calibrate_ms is not None:
        raise NasError("--calibrate published and --calibrate-ms are two ways to fit: give one")
    claim_table(out, [space_path])  # before any work: the sidecar must not land on the space
    space = SearchSpace.load(space_path)

    def figure(ms: float | None) -> tuple[Architecture, int, float] | None:
        return None if ms is None else (space.architecture(arch), passes, ms)

    table = estimate_table(
        space, chip(chip_name), figure(calibrate_ms), command=command, published=published, check=figure(check_ms)
    )
    table.save(out)
    return table


def _compare(name: str, chip_name: str, published: float, predicted: float, what: str) -> dict[str, Any]:
    return {
        "point": name,
        "chip": chip_name,
        "published_ms": round(float(published), 1),
        "predicted_ms": round(float(predicted), 1),
        "error_pct": round(float(100 * (predicted - published) / published), 1),
        "what": what,
    }


def chip(name: str) -> Chip:
    if name not in CHIPS:
        raise NasError(f"--chip: unknown chip {name!r} (known: {', '.join(CHIPS)})")
    return CHIPS[name]
