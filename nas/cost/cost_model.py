"""CostModel: latency and peak memory of architectures, priced from a device table.

One forward of the video UNet costs the spatial UNet row plus, for every slot, ``count`` times
its temporal op's row. A generation costs ``steps`` forwards plus the fixed parts the table
holds (VAE decode, text encoder). Peak memory is the weights plus the largest activation
working set: the spatial UNet's own peak, or at some slot the tensors the UNet holds live
there plus that temporal op's working set.

Keys missing from the table are interpolated in log-log space along a work coordinate
(FLOPs for temporal ops, so attention cost grows with sequence length as it does; pixels x
frames for whole-model rows) between measured rows of the same op, heads and kernel,
preferring rows of the same width, with latencies made monotone in work. Every price says
whether it was exact, interpolated or extrapolated; a key with no basis, or one far outside
the measured range, is an error, never a silent zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nas.cost.memory import slot_context_bytes
from nas.cost.plan import choice_key, spatial_key
from nas.cost.table import FIXED_PARTS, WHOLE_MODEL_OPS, LatencyTable
from nas.errors import NasError
from nas.ops import OpKey, get_op
from nas.space import Architecture, SearchSpace

EXACT, INTERPOLATED, EXTRAPOLATED = "exact", "interpolated", "extrapolated"
MB = 2**20


@dataclass(frozen=True)
class KeyCost:
    """Price of one key: p50 latency, working-set memory, device status and how it was obtained."""

    latency_ms: float
    memory_mb: float
    status: str
    coverage: str
    placement: str = ""  # ne, cpu, gpu, mixed; "" when the table does not say (or the key is interpolated)

    @property
    def runs(self) -> bool:
        return self.status == "ok"


@dataclass
class Prediction:
    latency_ms: float
    memory_mb: float
    unet_ms: float
    fixed_ms: float
    steps: int
    weights_mb: float
    activation_mb: float
    runs: bool
    slots: list[dict[str, Any]]
    coverage: dict[str, int]
    placement: dict[str, int] | None = None  # keys priced by where they run ("unknown": the table does not say)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class CostModel:
    """Prices architectures of ``space`` with ``table``."""

    def __init__(self, space: SearchSpace, table: LatencyTable, max_extrapolation: float = 4.0):
        self.space = space
        self.table = table
        self.max_extrapolation = max_extrapolation
        self._rows = table.lookup()
        # Rows whose memory was not measured (a Mac without a footprint figure): the estimated working set.
        self.memory_estimated = sorted(k for k, r in self._rows.items()
                                       if r["status"] == "ok" and math.isnan(float(r["memory_mb"])))
        for key in self.memory_estimated:
            self._rows[key] = {**self._rows[key], "memory_mb": _estimated_working_set_mb(space, key, table.dtype_bytes)}
        self._cache: dict[OpKey, KeyCost] = {}
        self._context_mb = {k: v / MB for k, v in slot_context_bytes(space, table.dtype_bytes).items()}

    # ---------------------------------------------------------------- one key
    def key_cost(self, key: OpKey) -> KeyCost:
        if key not in self._cache:
            self._cache[key] = self._price_key(key)
        return self._cache[key]

    def _price_key(self, key: OpKey) -> KeyCost:
        row = self._rows.get(key)
        if row is not None:
            return _row_cost(row, EXACT)
        basis = [(k, r) for k, r in self._rows.items()
                 if k.op == key.op and k.heads == key.heads and k.kernel == key.kernel]
        same_width = [(k, r) for k, r in basis if k.channels == key.channels]
        if key.op in WHOLE_MODEL_OPS or same_width:
            basis = same_width
        if not basis:
            raise NasError(f"{self._where()}: no row to price {_key_text(key)}: the table has no {key.op} rows"
                           f" with heads={key.heads}, kernel={key.kernel}"
                           + (f", channels={key.channels}" if key.op in WHOLE_MODEL_OPS else ""))
        x = self._work(key)
        failed = [r for k, r in basis if r["status"] != "ok" and self._work(k) <= x]
        ok = sorted(((self._work(k), k, r) for k, r in basis if r["status"] == "ok"), key=lambda t: t[0])
        if failed:
            worst = failed[0]
            beyond = not ok or x > ok[-1][0]
            return KeyCost(math.inf, math.inf, worst["status"], EXTRAPOLATED if beyond else INTERPOLATED)
        if not ok:
            raise NasError(f"{self._where()}: no measured (status ok) row to price {_key_text(key)}")
        xs = np.array([t[0] for t in ok], dtype=float)
        lat = np.maximum.accumulate(np.array([t[2]["latency_p50_ms"] for t in ok], dtype=float))
        mem_x = np.array([_elements(t[1]) for t in ok], dtype=float)
        mem = np.array([t[2]["memory_mb"] for t in ok], dtype=float)
        lo, hi = xs[0], xs[-1]
        if lo <= x <= hi:
            coverage = INTERPOLATED
        elif x < lo / self.max_extrapolation or x > hi * self.max_extrapolation:
            raise NasError(f"{self._where()}: {_key_text(key)} is far outside the measured range of {key.op} "
                           f"(work {x:.3g} vs measured {lo:.3g}..{hi:.3g}); measure it (nas profile)")
        else:
            coverage = EXTRAPOLATED
        return KeyCost(_loglog(x, xs, lat), _loglog(_elements(key), *_sorted(mem_x, mem)), "ok", coverage)

    def _work(self, key: OpKey) -> float:
        if key.op in WHOLE_MODEL_OPS:
            return float(key.frames * key.height * key.width)
        op = get_op(key.op)
        params = {name: getattr(key, name) for name in ("heads", "kernel") if name in op.defaults}
        return float(op.cost(key.channels, key.frames, key.height, key.width, params).flops)

    def _where(self) -> str:
        return str(self.table.path) if self.table.path else "table"

    # ---------------------------------------------------------------- one architecture
    @cached_property
    def spatial(self) -> KeyCost:
        return self.key_cost(spatial_key(self.space))

    @cached_property
    def fixed_ms(self) -> float:
        """VAE decode and text encoder, once per generation, where the table has them."""
        total = 0.0
        for key, row in self._rows.items():
            if key.op in FIXED_PARTS and row["status"] == "ok":
                total += row["latency_p50_ms"]
        return total

    def default_steps(self) -> int:
        return int(self.space.budgets.get("steps", 1))

    def predict(self, architecture: Architecture, steps: int | None = None) -> Prediction:
        steps = self.default_steps() if steps is None else steps
        spatial = self.spatial
        slots, unet_ms, activation_mb = [], spatial.latency_ms, spatial.memory_mb
        params = self.space.params_spatial
        coverage = {EXACT: 0, INTERPOLATED: 0, EXTRAPOLATED: 0}
        coverage[spatial.coverage] += 1
        if self.memory_estimated:  # said in the coverage, as the keys whose working set is estimated
            coverage["memory_estimated"] = sum(k in self.memory_estimated for k in self._keys_of(architecture))
        placement = {spatial.placement or "unknown": 1}
        runs = spatial.runs
        for slot in self.space.slots:
            choice = architecture.choice(slot.name)
            key = choice_key(self.space, slot, choice)
            row: dict[str, Any] = {"slot": slot.name, "choice": choice.label, "latency_ms": 0.0, "working_set_mb": 0.0,
                                   "coverage": "-", "status": "ok"}
            if key is not None:
                cost = self.key_cost(key)
                params += get_op(choice.op).cost(slot.channels, key.frames, slot.height, slot.width,
                                                 choice.param_dict).params * choice.count
                row.update(latency_ms=cost.latency_ms * choice.count, working_set_mb=cost.memory_mb,
                           coverage=cost.coverage, status=cost.status, placement=cost.placement)
                placement[cost.placement or "unknown"] = placement.get(cost.placement or "unknown", 0) + 1
                unet_ms += cost.latency_ms * choice.count
                activation_mb = max(activation_mb, self._context_mb[slot.name] + cost.memory_mb)
                coverage[cost.coverage] += 1
                runs = runs and cost.runs
            slots.append(row)
        weights_mb = params * self.table.dtype_bytes / MB
        return Prediction(
            latency_ms=steps * unet_ms + self.fixed_ms,
            memory_mb=weights_mb + activation_mb,
            unet_ms=unet_ms,
            fixed_ms=self.fixed_ms,
            steps=steps,
            weights_mb=weights_mb,
            activation_mb=activation_mb,
            runs=runs,
            slots=slots,
            coverage=coverage,
            placement=placement,
        )

    def _keys_of(self, architecture: Architecture) -> list[OpKey]:
        keys = [spatial_key(self.space)]
        for slot in self.space.slots:
            key = choice_key(self.space, slot, architecture.choice(slot.name))
            if key is not None:
                keys.append(key)
        return keys

    # ---------------------------------------------------------------- many architectures
    def encode(self, architecture: Architecture) -> np.ndarray:
        """Choice index per slot: the row format :meth:`price` takes."""
        return np.array([slot.choices.index(architecture.choice(slot.name)) for slot in self.space.slots])

    @cached_property
    def _slot_arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per slot, over its choices: latency (ms, count layers), working set incl. context (MB), params."""
        arrays = []
        for slot in self.space.slots:
            lat, mem, par = [], [], []
            for choice in slot.choices:
                key = choice_key(self.space, slot, choice)
                if key is None:
                    lat.append(0.0), mem.append(0.0), par.append(0)
                    continue
                cost = self.key_cost(key)
                lat.append(cost.latency_ms * choice.count)
                mem.append(self._context_mb[slot.name] + cost.memory_mb)
                par.append(get_op(choice.op).cost(slot.channels, key.frames, slot.height, slot.width,
                                                  choice.param_dict).params * choice.count)
            arrays.append((np.array(lat), np.array(mem), np.array(par, dtype=np.int64)))
        return arrays

    def price(self, choices: np.ndarray, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Latency (ms per generation) and peak memory (MB) of many architectures at once.

        ``choices``: int array (n_architectures, n_slots) of choice indices (see :meth:`encode`).
        Architectures that cannot run on the device get ``inf``.
        """
        steps = self.default_steps() if steps is None else steps
        choices = np.asarray(choices)
        n = choices.shape[0]
        unet = np.full(n, self.spatial.latency_ms)
        activation = np.full(n, self.spatial.memory_mb)
        params = np.full(n, self.space.params_spatial, dtype=np.int64)
        for column, (lat, mem, par) in enumerate(self._slot_arrays):
            index = choices[:, column]
            unet += lat[index]
            np.maximum(activation, mem[index], out=activation)
            params += par[index]
        return steps * unet + self.fixed_ms, params * (self.table.dtype_bytes / MB) + activation


def _estimated_working_set_mb(space: SearchSpace, key: OpKey, dtype_bytes: int) -> float:
    """Peak tensor bytes of one key's workload, counted on the meta device (as the roofline estimate does)."""
    import torch

    from nas.cost.memory import MemoryTracker
    from nas.profile.workload import build_workload

    with torch.device("meta"):
        workload = build_workload(space, key, "meta", torch.float16 if dtype_bytes == 2 else torch.float32)
        tracker = MemoryTracker()
        with torch.no_grad(), tracker:
            workload()
    return tracker.peak / MB


def _row_cost(row: dict[str, Any], coverage: str) -> KeyCost:
    if row["status"] != "ok":
        return KeyCost(math.inf, math.inf, row["status"], coverage)
    return KeyCost(float(row["latency_p50_ms"]), float(row["memory_mb"]), "ok", coverage,
                   str(row.get("placement", "")))


def _elements(key: OpKey) -> float:
    return float(key.channels * key.frames * key.height * key.width)


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs, kind="stable")
    return xs[order], np.maximum.accumulate(ys[order])


def _loglog(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Piecewise-linear in log-log between neighbours; proportional to x beyond the ends."""
    if len(xs) == 1 or x <= xs[0]:
        return float(ys[0] * x / xs[0]) if xs[0] > 0 else float(ys[0])
    if x >= xs[-1]:
        return float(ys[-1] * x / xs[-1])
    lx, ly = np.log(np.maximum(xs, 1e-30)), np.log(np.maximum(ys, 1e-30))
    return float(np.exp(np.interp(math.log(x), lx, ly)))


def _key_text(key: OpKey) -> str:
    return (f"{key.op}(channels={key.channels}, frames={key.frames}, {key.height}x{key.width}, "
            f"heads={key.heads}, kernel={key.kernel})")
