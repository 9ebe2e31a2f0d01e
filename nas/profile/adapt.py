"""``nas table adapt``: a device table moved to a new machine, or an estimate to its device, from a few keys.

A measured table holds one machine's speed on one day. Its short rows are in the scale of a speed
probe (``probe_ms``), which follows a machine's drift but not every difference between machines;
its rows of a second or more are absolute times (``nas.profile.timing.LONG_CALL_MS``), which follow
nothing. So on another machine a table can keep its order and lose its scale (1.6x on a second VM of
the same kind). Adapting measures K of its keys here (:func:`choose_keys`: the whole-model rows
first, then every op type in turn at spread sizes), with the protocol and in the probe scale of the
table, and fits the simplest correction the measurements support (:func:`fit_correction`): one
scale for every row; one per size regime (calls under a second, probe-relative, and calls of a
second or more, absolute) or one per op type only where that predicts held-out keys better (leave
one out) and each class has two measured keys at least. The new table is the parent with every row
rescaled and the measured keys replaced by their measurements; its sidecar names the parent (path
and digest), the fit, its leave-one-out error and the measured keys, and this machine.

Keys measured one at a time leave one thing unmeasured: how the parts add up inside a whole UNet pass
here (glue between slots, caches shared by neighbours). With ``models`` (``--models M``) the adapt
also times M random whole architectures end to end, as ``nas table check`` does but drawn from another
seed than the check's, and fits one more factor for the rows a UNet pass is made of
(:func:`fit_models`), kept only if it predicts held-out models better than the rows alone (on this
project's VM the 8-key tiny table, rows alone, over-predicted whole models by 4-7% in three checks).

The same fit adapts an *estimated* table (the roofline iPhone table) to a few keys measured on its
device (``--results DIR``: a Mac kit's ``results.csv`` + ``results.yaml``, as ``nas table import``
reads). The estimate's order and placement stay the roofline's: the fit rescales its milliseconds
to the device's, and the leave-one-out error says how well that holds on keys not measured.
"""

from __future__ import annotations

import hashlib
import math
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas import outputs
from nas.cost.table import (
    FIXED_PARTS,
    KEY_COLUMNS,
    WHOLE_MODEL_OPS,
    CostTable,
    is_sidecar,
    sidecar_path,
    table_columns,
    table_outputs,
    validate_rows,
)
from nas.errors import NasError, NasWarning
from nas.ops import OpKey
from nas.profile.timing import LONG_CALL_MS
from nas.space import SearchSpace
from nas.space.yaml_io import read_yaml_mapping

FORMS = ("scale", "regime", "op")  # simplest first
# Above this mean leave-one-out error the adapted table is written with a warning: its keys do not agree on a
# correction (the tiny table adapted on this project's VM, 1 thread, with one other job running: 11%; with the
# CPU taken by other jobs: 490%).
DISAGREE = 0.25
# The first architecture ``--models`` draws: far from ``nas table check``'s default seed 0 (which draws 0, 1, ...),
# so a check after an adapt judges the table on architectures the adapt did not time.
MODELS_SEED = 1_000_000


@dataclass
class Fit:
    """A correction of a table's latencies: ``form`` and its factor per class, with its leave-one-out error."""

    form: str
    factors: dict[str, float]
    loo_error: float  # mean |predicted - measured| / measured over the measured keys, each left out of its fit
    loo_max: float
    loo_predicted: list[float] = field(default_factory=list)  # each measured key's prediction, left out
    candidates: dict[str, float | None] = field(default_factory=dict)  # every form's leave-one-out error
    keys: list[dict[str, Any]] = field(default_factory=list)  # the measured keys: parent, measured, left-out ms

    def factor(self, op: str, parent_ms: float) -> float:
        return self.factors[classify(self.form, op, parent_ms)]


def classify(form: str, op: str, parent_ms: float) -> str:
    """The class a row falls in under ``form``: all, its size regime, or its op."""
    if form == "scale":
        return "all"
    if form == "regime":
        return "long" if parent_ms >= LONG_CALL_MS else "short"
    return op


def fit_correction(
    parent_ms: Sequence[float], measured_ms: Sequence[float], ops: Sequence[str], table_classes=None
) -> Fit:
    """The simplest correction of ``parent_ms`` towards ``measured_ms`` that pays on held-out keys.

    Each form fits one factor per class, the geometric mean of measured/parent over the class's keys.
    A form is tried only if every class it needs (``table_classes``: form -> the classes the table's rows
    fall in; default: those of the measured keys) has at least two measured keys, so each key can be
    left out and still be predicted (so it has fewer factors than keys), and only if the table's rows fall
    in two classes at least (else it is the single scale). A richer form replaces
    the single scale only if its mean leave-one-out error is lower."""
    parent, measured = np.asarray(parent_ms, float), np.asarray(measured_ms, float)
    if len(parent) < 2:
        raise NasError(f"adapting needs at least 2 measured keys, got {len(parent)}")
    log_ratio = np.log(measured / parent)
    results: dict[str, tuple[dict[str, float], np.ndarray] | None] = {}
    for form in FORMS:
        labels = np.array([classify(form, op, p) for op, p in zip(ops, parent)])
        needed = set(labels) if table_classes is None else set(table_classes[form])
        counts = {c: int((labels == c).sum()) for c in needed}
        if form != "scale" and (len(needed) < 2 or min(counts.values()) < 2):  # one class is the scale
            results[form] = None
            continue
        factors = {str(c): float(np.exp(log_ratio[labels == c].mean())) for c in sorted(needed)}
        predicted = np.empty(len(parent))
        for i in range(len(parent)):
            others = (labels == labels[i]) & (np.arange(len(parent)) != i)
            predicted[i] = parent[i] * np.exp(log_ratio[others].mean())
        results[form] = (factors, predicted)
    errors = {
        form: None if found is None else float(np.mean(np.abs(found[1] - measured) / measured))
        for form, found in results.items()
    }
    best = "scale"
    for form in FORMS[1:]:
        if errors[form] is not None and errors[form] < errors[best] - 1e-9:  # not by rounding
            best = form
    factors, predicted = results[best]
    error = np.abs(predicted - measured) / measured
    return Fit(best, factors, float(error.mean()), float(error.max()), predicted.tolist(), errors)


@dataclass
class ModelFit:
    """One factor for a UNet pass's rows, from whole architectures timed end to end, and whether it paid."""

    factor: float  # what the rows were multiplied by: the fitted factor if ``applied``, else 1
    fitted: float  # the geometric mean of measured / predicted over the models
    applied: bool
    loo_error: float  # mean |predicted x factor without the model - measured| / measured
    rows_error: float  # the same with the rows alone (no factor)


def fit_models(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> ModelFit:
    """The factor that brings the rows' predictions of whole models to their measurements, if it pays.

    Each model is predicted with the factor fitted on the others (leave one out); the factor is
    applied only if that beats the rows' own predictions, so a factor that fits noise is not kept."""
    predicted, measured = np.asarray(predicted_ms, float), np.asarray(measured_ms, float)
    if len(predicted) < 2:
        raise NasError(f"--models needs at least 2 whole architectures (one is held out), got {len(predicted)}")
    log_ratio = np.log(measured / predicted)
    left_out = np.array([np.exp(np.delete(log_ratio, i).mean()) for i in range(len(predicted))])
    loo_error = float(np.mean(np.abs(predicted * left_out - measured) / measured))
    rows_error = float(np.mean(np.abs(predicted - measured) / measured))
    fitted = float(np.exp(log_ratio.mean()))
    applied = loo_error < rows_error
    return ModelFit(fitted if applied else 1.0, fitted, applied, loo_error, rows_error)


def choose_keys(table: CostTable, samples: int) -> list[OpKey]:
    """``samples`` measured (ok) keys of ``table``, covering its op types and sizes.

    The whole-model rows come first (a UNet pass is most of a generation), then one key of each op
    type in turn, each type's keys taken from the middle of its latencies outwards (the median, the
    largest, the smallest, then the middle of the widest gap): every op type and both ends of its
    range are in before any type gets a fourth key."""
    ok = table.rows[table.rows["status"] == "ok"]
    if samples > len(ok):
        raise NasError(
            f"{table.path}: --samples {samples}, but the table has only {len(ok)} measured (ok) rows to compare with"
        )
    if samples < 2:
        raise NasError(f"--samples must be at least 2 (a fit needs a key to hold out), got {samples}")
    groups = []
    for op in sorted(set(ok["op"]), key=lambda o: (o not in WHOLE_MODEL_OPS, list(ok["op"]).index(o))):
        rows = ok[ok["op"] == op].sort_values("latency_p50_ms")
        keys = [OpKey(*(r[c] for c in KEY_COLUMNS)) for r in rows.to_dict("records")]
        groups.append([keys[i] for i in _spread_order(len(keys))])
    chosen: list[OpKey] = []
    while len(chosen) < samples:
        for group in groups:
            if group and len(chosen) < samples:
                chosen.append(group.pop(0))
    return chosen


def _spread_order(n: int) -> list[int]:
    """Indices 0..n-1 (sorted by size) in the order that covers the range first: median, ends, then gaps."""
    order = list(dict.fromkeys([n // 2, n - 1, 0]))[:n]
    while len(order) < n:
        taken = sorted(order)
        gaps = [(b - a, a, b) for a, b in zip(taken, taken[1:]) if b - a > 1]
        _, a, b = max(gaps)
        order.append((a + b) // 2)
    return order


def adapt_table(
    table: str | Path,
    out: str | Path | None = None,
    samples: int | None = None,
    *,
    models: int = 0,
    models_seed: int | None = None,
    results: str | Path | None = None,
    space: str | Path | None = None,
    warmup: int = 3,
    repeats: int = 50,
    budget_s: float = 10.0,
    time_limit_s: float = 30.0,
    memory_limit_mb: float | None = None,
    command: str = "",
    progress: bool = True,
) -> tuple[CostTable, Fit]:
    """Adapt the table at ``table`` to this machine (measure ``samples`` of its keys) or, with ``results``
    (a Mac kit folder with results.csv and results.yaml), to the device those were measured on; write
    it to ``out`` (default ``runs/tables/<name>_adapted.csv``) with its sidecar; return it and the fit.

    With ``models``, also time that many random whole architectures (``space.sample(models_seed)``, ...;
    default :data:`MODELS_SEED`)
    and scale the UNet-pass rows by :func:`fit_models` if that pays on held-out models.

    Measuring here keeps the measured keys in ``<out>.measured.csv`` (+ sidecar), a table of its own:
    a killed adapt resumes with the same command (the whole models, a minute or so, are timed again)."""
    if models == 1 or models < 0:
        raise NasError(f"--models must be 0 or at least 2 (one is held out), got {models}")
    table = Path(table)
    out = Path(out) if out is not None else Path("runs/tables") / f"{table.stem}_adapted.csv"
    parent = CostTable.load(table)
    if results is None:
        measured_path = out.with_name(f"{out.stem}.measured.csv")
        claims = [
            *table_outputs(out),
            outputs.Derived(
                measured_path, "the adapt's measurements", outputs.ours_if(sidecar_path(measured_path), is_sidecar)
            ),
            *table_outputs(measured_path),
        ]
        space_path = space_of_table(parent, space)
        outputs.claim(claims, [table, sidecar_path(table), space_path], named=[out])
        measured, where = _measure_here(
            parent,
            space_path,
            measured_path,
            samples,
            warmup=warmup,
            repeats=repeats,
            budget_s=budget_s,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            progress=progress,
        )
    else:
        if samples is not None or models:
            raise NasError(
                "--samples and --models go with measuring here; with --results the keys are those the results hold"
            )
        results = Path(results)
        claims = table_outputs(out)
        inputs = [table, sidecar_path(table), *outputs.files_of(results)]
        outputs.claim(claims, inputs, named=[out])
        measured, where = _read_results(parent, results), str(results)
    adapted, fit = _adapt(parent, measured)
    adapted.meta = _sidecar(parent, measured.meta, fit, where, command)
    if models:
        seed = MODELS_SEED if models_seed is None else models_seed
        adapted = _fit_whole_models(adapted, space_path, models, seed, warmup, repeats, progress)
    adapted.save(out)
    if fit.loo_error > DISAGREE:
        warnings.warn(
            f"{out}: the measured keys disagree with one correction by {fit.loo_error:.0%} on average (leave one "
            "out): the machine was busy while measuring, or the table's parts moved unlike each other here; "
            "re-run on a quiet machine, with more --samples, or profile this machine",
            NasWarning,
            stacklevel=2,
        )
    return adapted, fit


def adapt_report(table: CostTable, fit: Fit, parent: str | Path) -> str:
    """What ``nas table adapt`` prints: the new table, the fit with every key's left-out prediction, the models."""
    factors = ", ".join(f"{name} x{value:.3f}" for name, value in fit.factors.items())
    tried = ", ".join(f"{form} {error:.1%}" for form, error in fit.candidates.items() if error is not None)
    lines = [
        f"wrote {table.path} ({len(table.rows)} rows, {table.meta['provenance']}, parent {parent})",
        f"fit: {fit.form} ({factors}) from {len(fit.keys)} measured keys; leave-one-out error {fit.loo_error:.1%} "
        f"mean, {fit.loo_max:.1%} largest (tried: {tried})",
    ]
    lines += [
        f"  {key['key']}: table {key['parent_ms']:,.3f} ms, measured {key['measured_ms']:,.3f} ms, "
        f"predicted left out {key['left_out_ms']:,.3f} ms"
        for key in fit.keys
    ]
    models = table.meta["adapt"].get("models")
    if models:
        verdict = "applied to the UNet-pass rows" if models["applied"] else "not applied: the rows alone do as well"
        lines.append(
            f"whole models: {len(models['architectures'])} timed here, measured/predicted x{models['fitted']:.3f} "
            f"({verdict}); leave-one-out error {models['loo_error']:.1%} with it, {models['rows_error']:.1%} without"
        )
    return "\n".join(lines)


def _measure_here(
    parent: CostTable, space_path: Path, measured_path: Path, samples: int | None, **options
) -> tuple[CostTable, str]:
    """The chosen keys of ``parent`` measured on this machine, in its probe scale, into ``measured_path``."""
    from nas.profile.runner import profile

    meta = parent.meta
    if meta.get("provenance") not in ("measured",) or meta.get("backend") != "torch":
        raise NasError(
            f"{parent.path}: a table {meta.get('provenance')} for {meta.get('device')} ({meta.get('backend')}) is "
            "adapted to measurements of that device: pass them with --results DIR (a kit's results.csv and "
            "results.yaml); measuring its keys here would time this machine, not that device"
        )
    if samples is None:
        raise NasError("--samples K: how many keys of the table to measure here")
    keys = choose_keys(parent, samples)
    memory_limit_mb = options.pop("memory_limit_mb")
    scale = {"probe_ms": meta["probe_ms"]} if meta.get("probe_ms") else {}
    measured = profile(
        space_path,
        "torch",
        measured_path,
        keys=keys,
        memory_limit_mb=memory_limit_mb,
        command=f"(measured by nas table adapt of {parent.path})",
        device=meta.get("torch_device", "cpu"),
        precision=meta["precision"],
        **scale,
        **options,
    )
    if measured.meta.get("probe_ms") != meta.get("probe_ms"):
        raise NasError(
            f"{measured_path}: measured in the probe scale {measured.meta.get('probe_ms')}, the table's is "
            f"{meta.get('probe_ms')} (measurements for another table?); remove it or choose another -o"
        )
    wanted = set(keys)
    rows = measured.rows[[OpKey(*(r[c] for c in KEY_COLUMNS)) in wanted for r in measured.rows.to_dict("records")]]
    return CostTable(rows.reset_index(drop=True), measured.meta, measured.path), str(measured_path)


def _fit_whole_models(
    adapted: CostTable, space_path: Path, models: int, seed: int, warmup: int, repeats: int, progress: bool
) -> CostTable:
    """``adapted`` with its UNet-pass rows scaled by :func:`fit_models` of ``models`` whole architectures
    timed here (the text encoder's and decoder's rows are parts of their own, measured as wholes)."""
    from nas.profile.check import time_architectures

    space = SearchSpace.load(space_path)
    timed, _, _ = time_architectures(space, adapted, models, seed, warmup, repeats, progress, desc="models")
    if len(timed) < 2:
        raise NasError(f"{space_path}: fewer than 2 of its drawn architectures can run per the adapted table")
    fit = fit_models([r["predicted_ms"] for r in timed], [r["measured_ms"] for r in timed])
    rows = adapted.rows.copy()
    unet = (rows["status"] == "ok") & ~rows["op"].isin(FIXED_PARTS)
    rows.loc[unet, ["latency_p50_ms", "latency_p90_ms"]] = (
        rows.loc[unet, ["latency_p50_ms", "latency_p90_ms"]] * fit.factor
    )
    meta = dict(adapted.meta)
    meta["adapt"] = {
        **meta["adapt"],
        "models": {
            "seed": seed,
            "factor": _round(fit.factor, 4),
            "fitted": _round(fit.fitted, 4),
            "applied": fit.applied,
            "loo_error": _round(fit.loo_error, 4),
            "rows_error": _round(fit.rows_error, 4),
            "architectures": [
                {
                    "arch_id": r["arch_id"],
                    "predicted_ms": _round(r["predicted_ms"]),
                    "measured_ms": _round(r["measured_ms"]),
                }
                for r in timed
            ],
            "note": (
                "whole architectures (space.sample(seed), seed + 1, ...) timed end to end here; predicted_ms: by the "
                "rows fitted on the keys. If the factor fitted on all but one model predicts each held-out model "
                "better (loo_error) than the rows alone (rows_error), every UNet-pass row (not the text encoder's "
                "or decoder's) is multiplied by it"
            ),
        },
    }
    return CostTable(rows, meta, None)


def _read_results(parent: CostTable, folder: Path) -> CostTable:
    """The rows and sidecar of a kit's results (checked as ``nas table import`` checks them), for ``parent``."""
    from nas.profile.coreml_kit import EXPORT_INFO, RESULTS, RESULTS_INFO

    csv, info = folder / RESULTS, folder / RESULTS_INFO
    if not csv.is_file() or not info.is_file():
        raise NasError(
            f"{folder}: --results needs {RESULTS} and {RESULTS_INFO} (a timed kit, or figures written there)"
        )
    meta = read_yaml_mapping(info)
    kit = read_yaml_mapping(folder / EXPORT_INFO) if (folder / EXPORT_INFO).is_file() else {}
    space = meta.get("space", kit.get("space"))
    if space is not None and parent.meta.get("space") is not None and space != parent.meta["space"]:
        raise NasError(f"{csv}: results of space {space}, but {parent.path} is a table of space {parent.meta['space']}")
    for field_name in ("backend", "precision"):
        if meta.get(field_name) != parent.meta.get(field_name):
            raise NasError(
                f"{info}: {field_name} {meta.get(field_name)!r}, but {parent.path} has {parent.meta.get(field_name)!r}"
            )
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    rows = validate_rows(table_columns(frame, csv), csv)
    known = set(parent.lookup())
    for record in rows.to_dict("records"):
        key = OpKey(*(record[c] for c in KEY_COLUMNS))
        if key not in known:
            raise NasError(f"{csv}: {key.row_text()} is not a key of {parent.path} (results of another space?)")
    return CostTable(rows, meta, csv)


def _adapt(parent: CostTable, measured: CostTable) -> tuple[CostTable, Fit]:
    """``parent`` with every ok row rescaled by the fit and the measured keys replaced by their measurements."""
    rows = parent.rows.copy()
    index = {key: i for i, key in enumerate(OpKey(*(r[c] for c in KEY_COLUMNS)) for r in rows.to_dict("records"))}
    pairs = []
    for record in measured.rows.to_dict("records"):
        i = index[OpKey(*(record[c] for c in KEY_COLUMNS))]
        if record["status"] == "ok" and rows.at[i, "status"] == "ok":
            pairs.append((i, rows.at[i, "latency_p50_ms"], record["latency_p50_ms"], rows.at[i, "op"]))
    if len(pairs) < 2:
        raise NasError(
            f"{measured.path}: {len(pairs)} key(s) measured ok that the table has ok too; adapting needs at least 2"
        )
    ok = rows["status"] == "ok"
    classes = {
        form: {classify(form, op, p) for op, p in zip(rows["op"][ok], rows["latency_p50_ms"][ok])} for form in FORMS
    }
    fit = fit_correction([p[1] for p in pairs], [p[2] for p in pairs], [p[3] for p in pairs], classes)
    fit.keys = [
        {
            "key": OpKey(*(rows.loc[i, c] for c in KEY_COLUMNS)).text(),
            "parent_ms": _round(p),
            "measured_ms": _round(m),
            "left_out_ms": _round(left),
        }
        for (i, p, m, _), left in zip(pairs, fit.loo_predicted)
    ]
    for i in rows.index[ok]:
        factor = fit.factor(rows.at[i, "op"], rows.at[i, "latency_p50_ms"])
        rows.loc[i, ["latency_p50_ms", "latency_p90_ms"]] = rows.loc[i, ["latency_p50_ms", "latency_p90_ms"]] * factor
    for record in measured.rows.to_dict("records"):  # a measurement is better than any fit
        i = index[OpKey(*(record[c] for c in KEY_COLUMNS))]
        for column, value in record.items():
            if column not in KEY_COLUMNS and not (column == "placement" and not value):
                rows.at[i, column] = value
    return CostTable(rows, {}, None), fit


def _sidecar(parent: CostTable, source: dict[str, Any], fit: Fit, where: str, command: str) -> dict[str, Any]:
    """The parent's sidecar, with where and when the new rows were measured, its parent and the fit."""
    meta = {k: v for k, v in parent.meta.items() if k not in ("rows", "earlier_commands")}  # the parent says those
    for key in ("device", "os", "compute_units", "torch_device", "date", "machine", "note", "memory_limit_mb"):
        if key in source:
            meta[key] = source[key]
    meta["tools"] = {**parent.meta.get("tools", {}), **source.get("tools", {})}
    meta["date"] = str(source.get("date", date.today().isoformat()))
    meta["provenance"] = "measured" if parent.meta["provenance"] == "measured" else "adapted"
    meta["command"] = command
    meta["parent"] = {
        "table": str(parent.path),
        "sha256": hashlib.sha256(Path(parent.path).read_bytes()).hexdigest(),
        "provenance": parent.meta["provenance"],
        "device": parent.meta.get("device"),
        "date": str(parent.meta.get("date")),
        **({"machine": parent.meta["machine"]} if "machine" in parent.meta else {}),
    }
    meta["adapt"] = {
        "measured": where,
        "form": fit.form,
        "factors": {k: _round(v, 4) for k, v in fit.factors.items()},
        "loo_error": _round(fit.loo_error, 4),
        "loo_max": _round(fit.loo_max, 4),
        "candidates": {k: None if v is None else _round(v, 4) for k, v in fit.candidates.items()},
        "keys": fit.keys,
        "note": (
            "rows: the parent's x the factor of their class (scale: all; regime: short < 1 s <= long; op: per op "
            "type); the measured keys: their measurements. loo_error: mean |predicted - measured| / measured of "
            "each measured key, predicted by the fit without it"
        ),
    }
    return meta


def _round(value: float, digits: int = 3) -> float:
    return float(round(value, digits)) if math.isfinite(value) else value


def space_of_table(parent: CostTable, given: str | Path | None) -> Path:
    """The space of the table: ``given``, else the YAML of the table's own command, else
    ``search_spaces/<name>.yaml`` here; it must be the space the sidecar names."""
    name = parent.meta.get("space")
    if given is not None:
        candidates = [Path(given)]
    else:
        tokens = shlex.split(str(parent.meta.get("command", "")))
        candidates = [Path(t) for t in tokens if t.endswith((".yaml", ".yml"))]
        candidates.append(Path("search_spaces") / f"{name}.yaml")
    for path in candidates:
        if not path.is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NasWarning)
            loaded = SearchSpace.load(path)
        if name is None or loaded.name == name:
            return path
        if given is not None:
            raise NasError(f"{path}: space {loaded.name}, but {parent.path} is a table of space {name}")
    raise NasError(f"{parent.path}: cannot find its space {name!r}; name it with --space SPACE.yaml")
