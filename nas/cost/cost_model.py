"""CostModel: latency and peak memory of architectures, priced from a device table.

One forward of the video UNet costs the spatial UNet row plus, for every slot, ``count`` times
its temporal op's row. A whole generation costs the text encoder once (one prompt), ``passes``
forwards (UNet evaluations) and the decoder once per latent frame (``decode: per_frame``) or
once per clip: the fixed parts the space names (:mod:`nas.space.generation`). Peak memory is the
weights of all three, kept resident as an app that generates again keeps them, plus the largest
working set of the phases, which run one after the other: the UNet's (the spatial UNet's own
peak, or at some slot the tensors the UNet holds live there plus that temporal op's working
set), the text encoder's, or one decoder call's (one frame's, frame by frame). A fixed part the
table has no row for is *missing*: the prediction says so (``complete`` False, ``missing``), its
time and memory are not in the totals, and the caller decides (``nas cost`` marks the total
incomplete, ``nas search`` warns); it is never priced as zero silently. A row of the first form
(no fingerprint in params, once per generation, its ``working_set_mb`` the whole footprint) is
used as it was then, for the space its table was made for.

Keys missing from the table are interpolated in log-log space between measured rows of the
same op and parameters, preferring rows of the same width: latency along the op's FLOPs (so
attention cost grows with sequence length as it does), memory along the op's own working-set
size (``TemporalOp.working_set``: attention scores grow with the square of the sequence), and
pixels x frames for whole-model rows; latencies are made monotone in work. Both axes are
range-checked. Every price says whether it was exact, interpolated or extrapolated; a key with
no basis, or one far outside the measured range, is an error, never a silent zero. A shape
that failed for size (oom, timeout, unsupported) makes larger unmeasured shapes fail too,
unless a larger shape of the same op ran.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nas.cost.memory import slot_context_bytes
from nas.cost.plan import choice_key, fixed_part_calls, fixed_part_key, spatial_key
from nas.cost.table import FIXED_PARTS, SPATIAL, WHOLE_MODEL_OPS, WORKING_SET, CostTable
from nas.errors import NasError, NasWarning
from nas.model.size import choice_params, size_arrays
from nas.ops import OpKey, get_op
from nas.options import renamed_kwargs
from nas.space import Architecture, SearchSpace
from nas.space.library_cache import kept

EXACT, INTERPOLATED, EXTRAPOLATED = "exact", "interpolated", "extrapolated"
MISSING, LEGACY = "missing", "legacy"  # a fixed part with no row; one priced from a row of the first form
MB = 2**20


@dataclass(frozen=True)
class KeyCost:
    """Price of one key: p50 latency, working set (the table rows' ``working_set_mb``), device status and how
    it was obtained."""

    latency_ms: float
    working_set_mb: float
    status: str
    coverage: str
    message: str = ""
    placement: str = ""  # ne, cpu, gpu, mixed; "" when the table does not say (or the key is interpolated)

    @property
    def runs(self) -> bool:
        return self.status == "ok"

    @property
    def memory_mb(self) -> float:
        """The old name of :attr:`working_set_mb`, for one release."""
        warnings.warn("KeyCost.memory_mb is deprecated; use working_set_mb", NasWarning, stacklevel=2)
        return self.working_set_mb


@dataclass(frozen=True)
class FixedCost:
    """Price of one fixed part in a generation: ``calls`` x ``latency_ms`` (one call), its resident weights and one
    call's working set; ``coverage`` is ``missing`` when the table has no row for it (then the numbers are NaN)."""

    part: str  # text_encoder, decoder
    name: str  # as the space names it: sd15, tiny or a folder
    key: str  # the table key, as a row names it
    calls: int
    latency_ms: float
    weights_mb: float
    working_set_mb: float
    status: str
    coverage: str
    placement: str = ""

    @property
    def total_ms(self) -> float:
        return self.calls * self.latency_ms

    @property
    def priced(self) -> bool:
        return self.coverage != MISSING

    def as_dict(self) -> dict[str, Any]:
        """Plain values; what a missing part has no number for is None (NaN compares unequal to itself)."""
        values = {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "total_ms": self.total_ms}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


@dataclass
class Prediction:
    """Price of one architecture's whole generation: ``latency_ms`` = text encoder + ``passes`` x UNet + decoder
    calls, ``peak_memory_mb`` = weights (UNet's ``weights_mb`` + the fixed parts') + the largest working set of the
    phases; their parts (``fixed``: one entry per fixed part), and per slot the table's price of its op.

    ``complete`` is False when a fixed part has no row (``missing`` names it): the totals then hold only what
    the table prices. ``fixed_ms`` and ``fixed_mb`` are what the fixed parts add to the totals."""

    latency_ms: float
    peak_memory_mb: float
    unet_ms: float
    fixed_ms: float
    fixed_mb: float
    fixed_parts: list[str]  # the parts priced
    passes: int  # UNet evaluations per generation
    weights_mb: float
    activation_mb: float
    runs: bool
    slots: list[dict[str, Any]]
    coverage: dict[str, int]
    placement: dict[str, int] | None = None  # keys priced by where they run ("unknown": the table does not say)
    fixed: list[dict[str, Any]] | None = None  # FixedCost.as_dict() per fixed part, in the order a generation runs
    missing: list[str] | None = None
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def memory_mb(self) -> float:
        """Deprecated name of :attr:`peak_memory_mb` (kept for one release)."""
        warnings.warn("Prediction.memory_mb is deprecated; use peak_memory_mb", NasWarning, stacklevel=2)
        return self.peak_memory_mb


class CostModel:
    """Prices architectures of ``space`` with ``table``."""

    def __init__(self, space: SearchSpace, table: CostTable, max_extrapolation: float = 4.0):
        self.space = space
        self.table = table
        self.max_extrapolation = max_extrapolation
        self._rows = table.lookup()
        # Rows whose memory was not measured (a Mac without a footprint figure): the estimated working set.
        self.memory_estimated = sorted(
            k for k, r in self._rows.items() if r["status"] == "ok" and math.isnan(float(r[WORKING_SET]))
        )
        for key in self.memory_estimated:
            self._rows[key] = {
                **self._rows[key],
                WORKING_SET: _estimated_working_set_mb(space, key, table.dtype_bytes, table.meta.get("attention")),
            }
        self._cache: dict[OpKey, KeyCost] = {}
        # The attention form the rows ran in (Core ML tables and the roofline say; torch tables use the ops' default).
        self.attention = table.meta.get("attention")
        self._context_mb = {k: v / MB for k, v in slot_context_bytes(space, table.dtype_bytes).items()}
        made_for = table.meta.get("space")
        if made_for is not None and made_for != space.name:
            warnings.warn(
                f"{self._where()}: made for space {made_for!r}, pricing {space.name!r} with it (its "
                "spatial row must match this backbone; temporal rows are matched by shape and params)",
                NasWarning,
                stacklevel=2,
            )

    # ---------------------------------------------------------------- one key
    def key_cost(self, key: OpKey) -> KeyCost:
        if key not in self._cache:
            self._cache[key] = self._price_key(key)
        return self._cache[key]

    def _price_key(self, key: OpKey) -> KeyCost:
        row = self._rows.get(key)
        if row is None and key.op == SPATIAL:
            row = self._first_format_spatial(key)
        if row is not None:
            return _row_cost(row, EXACT)
        # Error rows say nothing about the device (the measurement itself failed): not a basis.
        basis = [
            (k, r)
            for k, r in self._rows.items()
            if k.op == key.op and k.params == key.params and r["status"] != "error"
        ]
        same_width = [(k, r) for k, r in basis if k.channels == key.channels]
        if key.op in WHOLE_MODEL_OPS or same_width:
            basis = same_width
        if not basis:
            raise NasError(f"{self._where()}: no row to price {key.text()}: {self._no_basis_hint(key)}")
        x = self._work(key)
        ok = sorted(((self._work(k), k, r) for k, r in basis if r["status"] == "ok"), key=lambda t: t[0])
        # A shape too big for the device (oom, timeout, unsupported past an axis limit) makes every larger
        # shape fail too, unless a larger shape ran: then the failure was not about size.
        failed = sorted(
            ((self._work(k), r) for k, r in basis if r["status"] != "ok" and self._work(k) <= x), key=lambda t: t[0]
        )
        if failed and not (ok and ok[-1][0] >= x):
            nearest = failed[-1][1]
            return KeyCost(math.inf, math.inf, nearest["status"], EXTRAPOLATED, nearest.get("message", ""))
        if not ok:
            raise NasError(f"{self._where()}: no measured (status ok) row to price {key.text()}")
        xs = np.array([t[0] for t in ok], dtype=float)
        lat = np.maximum.accumulate(np.array([t[2]["latency_p50_ms"] for t in ok], dtype=float))
        mem_x, mem = _sorted(
            np.array([self._working_set(t[1]) for t in ok], dtype=float),
            np.array([t[2][WORKING_SET] for t in ok], dtype=float),
        )
        coverage = INTERPOLATED
        for what, value, lo, hi in (
            ("work", x, xs[0], xs[-1]),
            ("working set", self._working_set(key), *mem_x[[0, -1]]),
        ):
            if min(value, lo) <= 0:  # an op that allocates nothing: no axis to check on
                continue
            if value < lo / self.max_extrapolation or value > hi * self.max_extrapolation:
                raise NasError(
                    f"{self._where()}: {key.text()} is far outside the measured range of {key.op} "
                    f"({what} {value:.3g} vs measured {lo:.3g}..{hi:.3g}); measure it (nas profile)"
                )
            if not lo <= value <= hi:
                coverage = EXTRAPOLATED
        return KeyCost(_loglog(x, xs, lat), _loglog(self._working_set(key), mem_x, mem), "ok", coverage)

    def _work(self, key: OpKey) -> float:
        """Latency axis: FLOPs of a temporal op; pixels x frames of a whole-model row."""
        if key.op in WHOLE_MODEL_OPS:
            return float(key.frames * key.height * key.width)
        return float(get_op(key.op).cost(key.channels, key.frames, key.height, key.width, key.param_dict).flops)

    def _working_set(self, key: OpKey) -> float:
        """Memory axis: the op's own working-set size (attention: grows with the square of its sequence)."""
        if key.op in WHOLE_MODEL_OPS:
            return float(key.channels * key.frames * key.height * key.width)
        op = get_op(key.op)
        attention = {"attention": self.attention} if self.attention and hasattr(op, "set_attention") else {}
        return float(op.working_set(key.channels, key.frames, key.height, key.width, key.param_dict, **attention))

    def _first_format_spatial(self, key: OpKey) -> dict[str, Any] | None:
        """A spatial row without a backbone fingerprint (first table format): only for the space it was made for."""
        row = self._rows.get(OpKey(SPATIAL, key.channels, key.frames, key.height, key.width))
        if row is None:
            return None
        made_for = self.table.meta.get("space")
        if made_for != self.space.name:
            raise NasError(
                f"{self._where()}: its spatial row has no backbone fingerprint (first table format) and "
                f"the table was made for space {made_for!r}, not {self.space.name!r}: profile this "
                f"space's spatial row (nas profile {self.space.source} ...)"
            )
        return row

    def _no_basis_hint(self, key: OpKey) -> str:
        if key.op == SPATIAL:
            return (
                f"the table has no spatial row for this backbone (made for space "
                f"{self.table.meta.get('space', '?')!r}); profile it (nas profile {self.space.source} ...)"
            )
        width = f" at channels={key.channels}" if key.op in WHOLE_MODEL_OPS else ""
        return f"the table has no {key.op} rows with params {key.params or '(none)'}{width}"

    def _where(self) -> str:
        return str(self.table.path) if self.table.path else "table"

    # ---------------------------------------------------------------- one architecture
    @cached_property
    def spatial(self) -> KeyCost:
        return self.key_cost(spatial_key(self.space))

    @cached_property
    def fixed(self) -> list[FixedCost]:
        """The fixed parts of the space's generation, priced (or missing) in this table."""
        return [self._fixed_cost(kind) for kind in FIXED_PARTS]

    def _fixed_cost(self, kind: str) -> FixedCost:
        key = fixed_part_key(self.space, kind)
        part = self.space.generation.part(kind)
        calls = fixed_part_calls(self.space, kind)
        common = {"part": kind, "name": part.describe(), "key": key.row_text()}
        legacy = self._legacy_fixed_row(kind)
        if key not in self._rows and legacy is not None:  # first form: once per generation, whole footprint
            cost = _row_cost(legacy, LEGACY)
            return FixedCost(
                **common,
                calls=1,
                latency_ms=cost.latency_ms,
                weights_mb=cost.working_set_mb,
                working_set_mb=0.0,
                status=cost.status,
                coverage=LEGACY,
                placement=cost.placement,
            )
        if key not in self._rows and not any(k.op == kind and k.params == key.params for k in self._rows):
            return FixedCost(
                **common,
                calls=calls,
                latency_ms=math.nan,
                weights_mb=math.nan,
                working_set_mb=math.nan,
                status=MISSING,
                coverage=MISSING,
            )
        cost = self.key_cost(key)
        weights = part_params(part) * self.table.dtype_bytes / MB
        return FixedCost(
            **common,
            calls=calls,
            latency_ms=cost.latency_ms,
            weights_mb=weights,
            working_set_mb=cost.working_set_mb,
            status=cost.status,
            coverage=cost.coverage,
            placement=cost.placement,
        )

    def _legacy_fixed_row(self, kind: str) -> dict[str, Any] | None:
        """A hand-written fixed-part row of the first form (no fingerprint), for the space the table was made for."""
        rows = [r for k, r in self._rows.items() if k.op == kind and not k.params]
        if not rows or self.table.meta.get("space") not in (None, self.space.name):
            return None
        return rows[0]

    @cached_property
    def missing(self) -> list[str]:
        """The fixed parts the table has no row for."""
        return [f.part for f in self.fixed if not f.priced]

    @cached_property
    def fixed_ms(self) -> float:
        """Text encoder and decoder calls of one generation, as far as the table prices them."""
        return float(sum(f.total_ms for f in self.fixed if f.priced))

    @cached_property
    def _fixed_weights_mb(self) -> float:
        return float(sum(f.weights_mb for f in self.fixed if f.priced))

    @cached_property
    def _fixed_working_set_mb(self) -> float:
        return float(max((f.working_set_mb for f in self.fixed if f.priced), default=0.0))

    @cached_property
    def _fixed_runs(self) -> bool:
        return all(f.status == "ok" for f in self.fixed if f.priced)

    @cached_property
    def fixed_parts(self) -> list[str]:
        return [f.part for f in self.fixed if f.priced]

    def fixed_mb(self, activation_mb: float) -> float:
        """What the fixed parts add to a generation's peak whose UNet working set is ``activation_mb``: their weights,
        and the part of their largest working set beyond the UNet's."""
        return self._fixed_weights_mb + max(0.0, self._fixed_working_set_mb - activation_mb)

    def default_passes(self) -> int:
        return int(self.space.budgets.get("passes", 1))

    @renamed_kwargs(steps="passes")
    def predict(self, architecture: Architecture, passes: int | None = None) -> Prediction:
        passes = self.default_passes() if passes is None else passes
        spatial = self.spatial
        slots, unet_ms, activation_mb = [], spatial.latency_ms, spatial.working_set_mb
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
            row: dict[str, Any] = {
                "slot": slot.name,
                "choice": choice.label,
                "latency_ms": 0.0,
                "working_set_mb": 0.0,
                "coverage": "-",
                "status": "ok",
                "message": "",
            }
            if key is not None:
                cost = self.key_cost(key)
                params += choice_params(self.space, slot, choice)
                row.update(
                    latency_ms=cost.latency_ms * choice.count,
                    working_set_mb=cost.working_set_mb,
                    coverage=cost.coverage,
                    status=cost.status,
                    message=cost.message,
                    placement=cost.placement,
                )
                placement[cost.placement or "unknown"] = placement.get(cost.placement or "unknown", 0) + 1
                unet_ms += cost.latency_ms * choice.count
                activation_mb = max(activation_mb, self._context_mb[slot.name] + cost.working_set_mb)
                coverage[cost.coverage] += 1
                runs = runs and cost.runs
            slots.append(row)
        weights_mb = params * self.table.dtype_bytes / MB
        fixed_mb = self.fixed_mb(activation_mb)
        runs = runs and self._fixed_runs
        return Prediction(
            latency_ms=passes * unet_ms + self.fixed_ms if runs else math.inf,
            peak_memory_mb=weights_mb + activation_mb + fixed_mb if runs else math.inf,
            unet_ms=unet_ms,
            fixed_ms=self.fixed_ms,
            fixed_mb=fixed_mb,
            fixed_parts=self.fixed_parts,
            passes=passes,
            weights_mb=weights_mb,
            activation_mb=activation_mb,
            runs=runs,
            slots=slots,
            coverage=coverage,
            placement=placement,
            fixed=[f.as_dict() for f in self.fixed],
            missing=self.missing,
            complete=not self.missing,
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
        """The row format :meth:`price` takes (:meth:`SearchSpace.encode`)."""
        return self.space.encode(architecture)

    @cached_property
    def _slot_arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per slot, over its choices: latency (ms, count layers), working set incl. context (MB), params."""
        arrays = []
        for slot, params in zip(self.space.slots, size_arrays(self.space, "params")):
            lat, mem = [], []
            for choice in slot.choices:
                key = choice_key(self.space, slot, choice)
                if key is None:
                    lat.append(0.0), mem.append(0.0)
                    continue
                cost = self.key_cost(key)
                lat.append(cost.latency_ms * choice.count)
                mem.append(self._context_mb[slot.name] + cost.working_set_mb)
            arrays.append((np.array(lat), np.array(mem), params))
        return arrays

    @renamed_kwargs(steps="passes")
    def price(self, choices: np.ndarray, passes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Latency (ms per generation) and peak memory (MB) of many architectures at once.

        ``choices``: int array (n_architectures, n_slots) of choice indices (see :meth:`encode`).
        Architectures that cannot run on the device get ``inf``.
        """
        passes = self.default_passes() if passes is None else passes
        choices = np.asarray(choices)
        n = choices.shape[0]
        unet = np.full(n, self.spatial.latency_ms)
        activation = np.full(n, self.spatial.working_set_mb)
        params = np.full(n, self.space.params_spatial, dtype=np.int64)
        for column, (lat, mem, par) in enumerate(self._slot_arrays):
            index = choices[:, column]
            unet += lat[index]
            np.maximum(activation, mem[index], out=activation)
            params += par[index]
        memory = (
            params * (self.table.dtype_bytes / MB)
            + self._fixed_weights_mb
            + np.maximum(activation, self._fixed_working_set_mb)
        )
        latency = passes * unet + self.fixed_ms
        if not self._fixed_runs:  # a fixed part the device cannot run: no generation runs
            latency, memory = np.full(n, math.inf), np.full(n, math.inf)
        return latency, memory


@functools.cache
def _part_params(kind: str, config_json: str) -> int:
    import torch

    from nas.cost.workload import fixed_part_module
    from nas.space.generation import FixedPart

    with torch.device("meta"):
        module = fixed_part_module(FixedPart(kind, "", json.loads(config_json)))
    return sum(p.numel() for p in module.parameters())


def part_params(part) -> int:
    """Parameters of a fixed part as a generation holds it (the decoder without the encoder), counted on meta
    once per config and library version, then read from the library-facts cache (``nas cost`` needs no torch)."""
    config = json.dumps(part.config, sort_keys=True, default=str)
    package = "transformers" if part.kind == "text_encoder" else "diffusers"
    return int(kept(f"{part.kind}_params", package, config, lambda: _part_params(part.kind, config)))


def _estimated_working_set_mb(space: SearchSpace, key: OpKey, dtype_bytes: int, attention: str | None) -> float:
    """Peak tensor bytes of one key's workload, counted on the meta device (as the roofline estimate does)."""
    import torch

    from nas.cost.workload import build_workload
    from nas.ops.memory_tracker import MemoryTracker

    with torch.device("meta"):
        workload = build_workload(space, key, "meta", torch.float16 if dtype_bytes == 2 else torch.float32)
        for module in workload.module.modules() if attention else ():
            if hasattr(module, "set_attention"):  # the form the rows ran in
                module.set_attention(attention)
        tracker = MemoryTracker()
        with torch.no_grad(), tracker:
            workload()
    return tracker.peak / MB


def _row_cost(row: dict[str, Any], coverage: str) -> KeyCost:
    if row["status"] != "ok":
        return KeyCost(
            math.inf, math.inf, row["status"], coverage, row.get("message", ""), str(row.get("placement", ""))
        )
    return KeyCost(
        float(row["latency_p50_ms"]), float(row[WORKING_SET]), "ok", coverage, "", str(row.get("placement", ""))
    )


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
