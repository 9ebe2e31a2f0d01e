"""``nas proxy check``: how well each quality proxy ranks architectures like real training does.

The reference is, by default, the :class:`~nas.quality.ground_truth.GroundTruth` of a tiny world
(``nas world make``): temporal layers trained ``reference_train_steps`` steps (default 10x the longest
proxy run) twice, with two other seeds and data orders, scored on held-out clips no proxy sees, by
held-out denoising loss and by motion metrics of few-step samples (direction accuracy is the main
one). The two seeds' Kendall tau per metric is that metric's *ceiling*: no proxy is recommended on
a metric whose ceiling is below ``CEILING``. ``reference="replay"`` is
the old check, kept as what it is: the ``distill`` proxy itself trained 5x longer with the same
seed, clips and batch order -- it only says that one learning curve keeps its order.

Architectures: the extremes (all ``none``; every op at every slot; the heaviest choice at every
slot), the space's named architectures, then random samples up to ``samples``. For every proxy
and each reference metric: Kendall tau and Spearman rho (scipy.stats) with a paired bootstrap
interval, and the proxy's cost relative to the reference's (wall seconds per architecture on
the machine that ran the check). ``distill`` is scored at several step counts from one run
(its learning curve), and ``combo`` is a ridge regression on the ranks of the cheap proxies,
judged by leave-one-architecture-out prediction (it never sees the architecture it scores).
Scores are cached per architecture in ``cache`` so that a rerun only pays for what is new.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nas import outputs
from nas.data.world import World
from nas.errors import NasError
from nas.metrics import bootstrap_interval, kendall_tau, spearman_rho
from nas.model.size import size_arrays
from nas.options import renamed_keys, renamed_kwargs
from nas.quality.proxies import check_options, get_proxy
from nas.space import Architecture, SearchSpace

PROXIES = ("params", "flops", "gradnorm", "synflow", "naswot", "tsens", "distill")
CHEAP = ("params", "flops", "gradnorm", "synflow", "naswot", "tsens")  # the combination's inputs
# reference metric -> (ground-truth column, +1 when higher is better); "motion" is the main motion metric
METRICS = {
    "denoise": ("denoise_loss", -1),
    "motion": ("direction_accuracy", 1),
    "positions": ("positions_direction_accuracy", 1),
}
GOAL_COST, GOAL_TAU = 0.1, 0.6
CEILING = 0.6  # no proxy is recommended on a metric whose two ground-truth seeds agree less (Kendall tau)
REFERENCE_SEEDS = (7919, 31337)  # offsets of the ground truth's seeds from the check's seed
GROUND_TRUTH_OPTIONS = (
    "lr",
    "batch",
    "eval_timesteps",
    "sampling_steps",
    "samples_per_caption",
    "guidance",
    "whole_model",
)


def check_architectures(space: SearchSpace, samples: int, seed: int = 0) -> list[tuple[str, Architecture]]:
    """(label, architecture): the extremes and named ones first, then random samples, no repeats."""
    candidates: list[tuple[str, Architecture]] = []

    def every_slot(label: str, pick) -> None:
        choices = tuple((slot.name, pick(slot)) for slot in space.slots)
        if all(c is not None for _, c in choices):
            candidates.append((label, Architecture(space.name, choices)))

    every_slot("all none", lambda slot: next((c for c in slot.choices if c.is_none), None))
    ops = sorted({c.op for slot in space.slots for c in slot.choices if not c.is_none})
    for op in ops:
        every_slot(f"all {op}", lambda slot, op=op: next((c for c in slot.choices if c.op == op), None))
    sizes = dict(zip(space.slot_names, size_arrays(space, "params")))
    every_slot("heaviest", lambda slot: slot.choices[int(np.argmax(sizes[slot.name]))])
    for name in space.architectures:
        candidates.append((name, space.architecture(name)))
    index = 0
    while len({a.id for _, a in candidates}) < samples and index < 100 * samples:
        candidates.append((f"sample {seed + index}", space.sample(seed + index)))
        index += 1
    seen, out = set(), []
    for label, architecture in candidates:
        if architecture.id not in seen:
            seen.add(architecture.id)
            out.append((label, architecture))
    return out[:samples]


class _Curve:
    """Records a training proxy's reported scores and when they came (distill at several step counts)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.points: dict[int, tuple[float, float]] = {}

    def report(self, value: float, step: int) -> None:
        self.points[step] = (value, time.perf_counter() - self.start)


@renamed_kwargs(proxy_steps="train_steps", reference_steps="reference_train_steps")
def proxy_check(
    space: SearchSpace | None = None,
    world: str | Path | World | None = None,
    proxies: tuple[str, ...] = PROXIES,
    samples: int = 14,
    seed: int = 0,
    train_steps: tuple[int, ...] = (5, 10, 20),
    reference: str = "ground-truth",
    reference_train_steps: int | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    reference_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``samples`` architectures by every proxy and by the reference; returns the report.

    ``train_steps``: the distill proxy's optimizer step counts (points of one learning curve);
    ``reference_train_steps``: the reference's (default 10x the longest; replay: 5x).

    ``options`` maps a proxy name to its options (as ``--proxy-option``); with a world, the data
    options default to the world's search pool and backbone (``data``, ``spatial_weights``).
    ``reference_options`` go to :class:`~nas.quality.ground_truth.GroundTruth` (lr, batch,
    eval_timesteps, sampling_steps, samples_per_caption, guidance, whole_model).
    """
    from tqdm import tqdm

    if reference not in ("ground-truth", "replay"):
        raise NasError(f"--reference must be ground-truth or replay, got {reference!r}")
    if isinstance(world, (str, Path)):
        world = World(world)
    if world is None and reference == "ground-truth":
        raise NasError("nas proxy check: the ground truth needs a world (--world DIR, made by `nas world make`)")
    space = space or world.space()
    if world is not None and space.name != world.space().name:
        raise NasError(f"{space.source}: the world {world.folder} is of space {world.space().name!r}")
    if samples < 4:
        raise NasError(f"nas proxy check: --samples must be at least 4, got {samples}")
    train_steps = tuple(sorted(set(int(s) for s in train_steps)))
    if not train_steps or train_steps[0] < 1:
        raise NasError("nas proxy check: --train-steps must be positive")
    longest = train_steps[-1]
    reference_train_steps = reference_train_steps or (10 if reference == "ground-truth" else 5) * longest
    options = {name: dict(options.get(name, {})) if options else {} for name in proxies}
    world_data = {"data": str(world.latents), "spatial_weights": str(world.backbone)} if world else {}
    built = {}
    for name in proxies:
        try:
            cls = get_proxy(name)
        except KeyError as exc:
            raise NasError(f"--proxy: {exc.args[0]}") from None
        opts = {**{k: v for k, v in world_data.items() if _takes(cls, k)}, **options[name]}
        if name == "distill":
            opts.update(train_steps=longest, report_every=_gcd(train_steps), clips=opts.get("clips", 16))
        check_options(cls, opts)
        built[name] = cls(space, seed=seed, **opts)
    if reference == "ground-truth":
        from nas.quality.ground_truth import GroundTruth

        reference_options = renamed_keys(
            reference_options or {}, {"sample_steps": "sampling_steps"}, "--reference-option"
        )
        unknown = sorted(set(reference_options) - set(GROUND_TRUTH_OPTIONS))
        if unknown:
            raise NasError(f"--reference-option {unknown[0]}: the ground truth takes {', '.join(GROUND_TRUTH_OPTIONS)}")
        truths = [
            GroundTruth(world, space, train_steps=reference_train_steps, seed=seed + offset, **reference_options)
            for offset in REFERENCE_SEEDS
        ]
    else:
        distill_opts = {
            k: v for k, v in options.get("distill", {}).items() if k in ("data", "clips", "lr", "spatial_weights")
        }
        distill_opts = {**world_data, "clips": 16, **distill_opts}
        truths = [
            get_proxy("distill")(
                space, seed=seed, train_steps=reference_train_steps, report_every=reference_train_steps, **distill_opts
            )
        ]
    config = {  # the cache's key; spelled as before the train_steps names, so that existing caches stay valid
        "space": space.name,
        "world": str(world.folder) if world else None,
        "seed": seed,
        "steps": train_steps,
        "reference": reference,
        "reference_steps": reference_train_steps,
        "options": options,
    }
    if reference_options:
        config["reference_options"] = reference_options
    store = _Cache(cache, config)
    architectures = check_architectures(space, samples, seed)
    rows, provenance = [], {"distill": None, "reference": None}
    for label, architecture in tqdm(architectures, desc="proxy check", unit="arch", disable=not progress):
        row: dict[str, Any] = {"arch_id": architecture.id, "label": label, "architecture": architecture.describe()}
        for name, proxy in built.items():
            scores = store.get(f"{name}/{architecture.id}", lambda: _score(name, proxy, architecture, train_steps))  # noqa: B023 (called at once)
            provenance["distill"] = _longer(provenance["distill"], scores.pop("provenance", None))
            row.update(scores)
        for index, truth in enumerate(truths):
            prefix = "ref_" if index == 0 else f"ref{index + 1}_"  # ref_: the first seed, ref2_: the second
            key = "reference" if index == 0 else f"reference{index + 1}"
            scores = store.get(f"{key}/{architecture.id}", lambda: _reference(truth, architecture))  # noqa: B023 (called at once)
            if index == 0:
                provenance["reference"] = _longer(provenance["reference"], _current_names(scores.pop("provenance")))
            scores.pop("provenance", None)
            row.update(
                {
                    (prefix + k[4:] if k.startswith("ref_") else k if index == 0 else f"{key}_s"): v
                    for k, v in scores.items()
                }
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    report = {
        "space": space.name,
        "world": str(world.folder) if world else None,
        "seed": seed,
        "reference": {
            "kind": reference,
            "train_steps": reference_train_steps,
            "metrics": list(METRICS) if reference == "ground-truth" else ["denoise"],
            "seeds": [seed + o for o in REFERENCE_SEEDS] if reference == "ground-truth" else [seed],
            "provenance": provenance["reference"],
        },
        "proxy_provenance": provenance["distill"],
        "train_steps": list(train_steps),
        "architectures": json.loads(frame.to_json(orient="records")),
    }
    report["independence_problems"] = independence_problems(report)
    report["ceilings"] = ceilings(frame, report["reference"]["metrics"])
    report["results"] = _results(frame, report["reference"]["metrics"], seed)
    report["recommended_by_metric"] = {
        m: _recommended(report["results"], m, report["ceilings"].get(m)) for m in report["reference"]["metrics"]
    }
    report["recommended"] = report["recommended_by_metric"]["denoise"]
    report["validated"] = _validated(report["results"], report["ceilings"])
    return report


def _takes(cls, key: str) -> bool:
    import inspect

    return key in inspect.signature(cls.__init__).parameters


def _gcd(values) -> int:
    import math

    out = 0
    for v in values:
        out = math.gcd(out, v)
    return out


def _current_names(provenance: dict | None) -> dict | None:
    """A provenance with its keys as named now (a cached ground truth of an older nas says ``steps``)."""
    return {("train_steps" if k == "steps" else k): v for k, v in provenance.items()} if provenance else provenance


def _longer(kept: dict | None, new: dict | None) -> dict | None:
    """The provenance of the run that trained most (a run without temporal layers draws no batch)."""
    if new is None or (kept is not None and len(kept["order"]) >= len(new["order"])):
        return kept
    return new


def _score(name: str, proxy, architecture: Architecture, train_steps: tuple[int, ...]) -> dict[str, Any]:
    if name == "distill":
        curve = _Curve()
        proxy.score(architecture, curve)
        return {
            **{f"distill@{s}": curve.points[s][0] for s in train_steps},
            **{f"distill@{s}_s": curve.points[s][1] for s in train_steps},
            "provenance": proxy.provenance,
        }
    start = time.perf_counter()
    value = proxy.score(architecture)
    return {name: float(value), f"{name}_s": time.perf_counter() - start}


def _reference(truth, architecture: Architecture) -> dict[str, float]:
    start = time.perf_counter()
    if hasattr(truth, "denoise_loss"):
        result = truth.score(architecture)
        return {
            **{f"ref_{k}": v for k, v in result.items() if k not in ("train_s", "seconds")},
            "reference_s": time.perf_counter() - start,
            "provenance": truth.provenance,
        }
    value = truth.score(architecture)
    return {"ref_denoise_loss": -value, "reference_s": time.perf_counter() - start, "provenance": truth.provenance}


def independence_problems(report: dict[str, Any]) -> list[str]:
    """Why the reference is not independent of the distill proxy (empty when it is)."""
    proxy, ref = report.get("proxy_provenance"), report["reference"]["provenance"]
    if proxy is None:
        return []
    problems = []
    if proxy["seed"] == ref["seed"]:
        problems.append(f"same seed {ref['seed']}")
    common = min(len(proxy["order"]), len(ref["order"]))
    if common and proxy["order"][:common] == ref["order"][:common]:
        problems.append(f"same data order (the first {common} batches are the proxy's)")
    seen = set(proxy["eval_clips"]) | set(proxy["train_clips"])
    shared = sorted(seen & set(ref["eval_clips"]))
    if shared:
        problems.append(f"{len(shared)} reference evaluation clip(s) seen by the proxy, e.g. {shared[0]}")
    return problems


def _combo_loo(frame: pd.DataFrame, target: np.ndarray, inputs: list[str], ridge: float = 1.0) -> np.ndarray:
    """Leave-one-out predictions of a ridge regression from the inputs' ranks to the target."""
    x = np.column_stack([stats.rankdata(frame[c]) for c in inputs])
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)
    out = np.empty(len(x))
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        a, b = x[keep], target[keep]
        a_mean, b_mean = a.mean(0), b.mean()
        w = np.linalg.solve((a - a_mean).T @ (a - a_mean) + ridge * np.eye(a.shape[1]), (a - a_mean).T @ (b - b_mean))
        out[i] = (x[i] - a_mean) @ w + b_mean
    return out


def truth_of(frame: pd.DataFrame, metric: str, prefix: str = "ref_") -> np.ndarray:
    """A reference metric's values, signed so that higher is better (as proxies score)."""
    column, sign = METRICS[metric]
    return sign * frame[prefix + column].to_numpy(dtype=float)


def ceilings(frame: pd.DataFrame, metrics: list[str]) -> dict[str, float | None]:
    """Kendall tau between the two ground-truth seeds per metric: how well the reference agrees with
    itself, so the best tau any proxy can be expected to reach (None with one seed)."""
    if not any(c.startswith("ref2_") for c in frame.columns):
        return {m: None for m in metrics}
    return {m: _round(kendall_tau(truth_of(frame, m), truth_of(frame, m, "ref2_"))) for m in metrics}


def _results(frame: pd.DataFrame, metrics: list[str], seed: int) -> list[dict[str, Any]]:
    columns = [
        c for c in frame.columns if c[:-2] in frame.columns and c.endswith("_s") and not c.startswith("reference")
    ]
    names = [c[:-2] for c in columns]
    reference_cost = float(frame["reference_s"].mean())
    results = []
    ceiling = ceilings(frame, metrics)
    for metric in metrics:
        truth = truth_of(frame, metric)
        scored = {name: (frame[name].to_numpy(dtype=float), float(frame[f"{name}_s"].mean())) for name in names}
        inputs = [c for c in CHEAP if c in frame.columns and frame[c].nunique() > 1]
        if len(inputs) >= 2:
            scored["combo"] = (
                _combo_loo(frame, stats.rankdata(truth), inputs),
                float(sum(frame[f"{c}_s"].mean() for c in inputs)),
            )
        for name, (values, cost) in scored.items():
            tau, rho = kendall_tau(values, truth), spearman_rho(values, truth)
            results.append(
                {
                    "proxy": name,
                    "metric": metric,
                    "kendall_tau": _round(tau),
                    "spearman_rho": _round(rho),
                    "tau_ci90": [_round(v) for v in bootstrap_interval(values, truth, kendall_tau, seed)],
                    "rho_ci90": [_round(v) for v in bootstrap_interval(values, truth, spearman_rho, seed)],
                    "ceiling": ceiling[metric],
                    "seconds_per_arch": round(cost, 3),
                    "relative_cost": round(cost / reference_cost, 4),
                }
            )
    return results


def _round(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 3)


def _recommended(results: list[dict[str, Any]], metric: str, ceiling: float | None) -> dict[str, Any] | None:
    """The proxy with the highest tau on ``metric`` among those at <= 1/10 of the reference's cost;
    None where the reference's two seeds agree less than ``CEILING`` (nothing can be validated there)."""
    if ceiling is not None and ceiling < CEILING:
        return None
    cheap = [
        r for r in results if r["metric"] == metric and r["relative_cost"] <= GOAL_COST and r["kendall_tau"] is not None
    ]
    if not cheap:
        return None
    best = max(cheap, key=lambda r: r["kendall_tau"])
    return {**best, "meets_goal": best["kendall_tau"] >= GOAL_TAU}


def refusals(report: dict[str, Any]) -> list[str]:
    """One line per metric on which no proxy is recommended because the ground truth disagrees with itself."""
    return [
        f"no proxy is recommended on {m}: the ground truth's two seeds agree at tau {c} < {CEILING}"
        for m, c in report.get("ceilings", {}).items()
        if c is not None and c < CEILING
    ]


def _validated(results: list[dict[str, Any]], ceiling: dict[str, float | None]) -> str | None:
    """The cheap proxy (<= 1/10 of the reference's cost) with tau >= GOAL_TAU on held-out denoising
    and on the main motion metric, both with a ceiling of at least CEILING; the best sum of taus wins."""
    if any(ceiling.get(m) is None or ceiling[m] < CEILING for m in ("denoise", "motion")):
        return None
    taus: dict[str, dict[str, float]] = {}
    for r in results:
        if r["metric"] in ("denoise", "motion") and r["relative_cost"] <= GOAL_COST and r["kendall_tau"] is not None:
            taus.setdefault(r["proxy"], {})[r["metric"]] = r["kendall_tau"]
    good = {p: t for p, t in taus.items() if len(t) == 2 and min(t.values()) >= GOAL_TAU}
    return max(good, key=lambda p: sum(good[p].values())) if good else None


class _Cache:
    """JSON files of scores per (check configuration, proxy, architecture); None disables it."""

    def __init__(self, folder: str | Path | None, config: dict[str, Any]):
        key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.folder = Path(folder) / key if folder is not None else None

    def get(self, name: str, compute) -> dict[str, float]:
        if self.folder is None:
            return compute()
        path = self.folder / f"{name}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass  # a run killed while writing: score again
        value = compute()
        outputs.write_text(path, json.dumps(value))
        return value


OUTPUTS = {
    "json": "check.json",
    "architectures": "architectures.csv",
    "results": "results.csv",
    "scatter": "scatter.png",
}
is_check = outputs.json_keys("space", "reference", "results")


def check_outputs(out: str | Path) -> list[outputs.Derived]:
    """The files a check writes in ``out``: check.json (nas's by its keys) and the others, nas's where it is."""
    out = Path(out)
    report = out / OUTPUTS["json"]
    return [
        outputs.Derived(report, "the check's report", is_check),
        *(
            outputs.Derived(out / name, f"the check's {name}", outputs.ours_if(report, is_check))
            for name in list(OUTPUTS.values())[1:]
        ),
    ]


def write_outputs(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """check.json, architectures.csv, results.csv and scatter.png in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in OUTPUTS.items()}
    outputs.write_text(paths["json"], json.dumps(report, indent=1))
    frame = pd.DataFrame(report["architectures"])
    frame.to_csv(paths["architectures"], index=False)
    results = pd.DataFrame(report["results"])
    results.to_csv(paths["results"], index=False)
    names = [n for n in dict.fromkeys(results["proxy"]) if n in frame.columns]
    metrics = report["reference"]["metrics"]
    figure, axes = plt.subplots(len(metrics), len(names), figsize=(2.6 * len(names), 2.6 * len(metrics)), squeeze=False)
    for i, metric in enumerate(metrics):
        for j, name in enumerate(names):
            ax = axes[i][j]
            ax.scatter(frame[name], frame[f"ref_{METRICS[metric][0]}"], s=12)
            row = results[(results["proxy"] == name) & (results["metric"] == metric)].iloc[0]
            ax.set_title(f"{name}: tau {row['kendall_tau']} (ceiling {row['ceiling']})", fontsize=8)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel(f"reference {METRICS[metric][0]}", fontsize=7)
    figure.tight_layout()
    figure.savefig(paths["scatter"], dpi=90)
    plt.close(figure)
    return paths


# ------------------------------------------------------- `nas proxy check` as one call
def route_options(
    proxies: tuple[str, ...], given: dict[str, Any], train_steps: tuple[int, ...]
) -> tuple[dict[str, dict[str, Any]], tuple[int, ...]]:
    """Options given once (KEY -> value, as ``--proxy-option``) sent to every checked proxy that takes KEY.

    One option line serves several proxies (``data=`` feeds gradnorm and distill alike), so a key
    no checked proxy takes is an error rather than silently unused. ``train_steps`` is the distill
    proxy's learning-curve points; a ``train_steps`` option (old name ``steps``) replaces them with
    that one count (the reference's length follows unless ``reference_train_steps`` says otherwise). Each
    proxy's options are then checked and coerced by :func:`~nas.quality.proxies.check_options`, as
    the search does.
    Returns the per-proxy options and the step counts.
    """
    classes = {}
    for name in proxies:
        try:
            classes[name] = get_proxy(name)
        except KeyError as exc:
            raise NasError(f"--proxy: {exc.args[0]}") from None
    given = renamed_keys(given, {"steps": "train_steps"}, "--proxy-option")
    if "train_steps" in given:
        value = given.pop("train_steps")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NasError(f"--proxy-option train_steps={value}: expected a positive whole number")
        train_steps = (value,)
    options: dict[str, dict[str, Any]] = {name: {} for name in proxies}
    for key, value in given.items():
        takers = [name for name in proxies if _takes(classes[name], key)]
        if not takers:
            raise NasError(f"--proxy-option {key}: none of the checked proxies ({', '.join(proxies)}) takes it")
        for name in takers:
            options[name][key] = value
    return {name: check_options(classes[name], values) for name, values in options.items()}, train_steps


@renamed_kwargs(steps="train_steps", reference_steps="reference_train_steps")
def check_proxies(
    out: str | Path,
    space: str | Path | None = None,
    world: str | Path | None = None,
    proxies: tuple[str, ...] | None = None,
    samples: int = 14,
    seed: int = 0,
    train_steps: str | tuple[int, ...] = (5, 10, 20),
    reference: str = "ground-truth",
    reference_train_steps: int | None = None,
    proxy_options: dict[str, Any] | None = None,
    reference_options: dict[str, Any] | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """:func:`proxy_check` from command-line-shaped inputs, its outputs written to ``out``.

    ``train_steps`` may be text (``"5,10,20"``); ``proxy_options`` are routed by :func:`route_options`;
    ``cache`` defaults to ``WORLD/check-cache`` and ``"none"`` turns it off. Returns the report and
    the paths :func:`write_outputs` wrote.
    """
    proxies = tuple(proxies or PROXIES)
    if isinstance(train_steps, str):
        try:
            train_steps = tuple(int(s) for s in train_steps.split(","))
        except ValueError:
            raise NasError(f"--train-steps {train_steps}: expected comma-separated step counts, e.g. 5,10,20") from None
    options, train_steps = route_options(proxies, proxy_options or {}, tuple(train_steps))
    world = Path(world) if world else None
    cache = None if str(cache) == "none" else cache or (world / "check-cache" if world else None)
    outputs.claim(
        [*check_outputs(out), *([outputs.Derived(Path(cache), "the score cache", outputs.is_folder)] if cache else [])],
        [space, *(sorted(world.iterdir()) if world and world.is_dir() else [])],
    )
    report = proxy_check(
        SearchSpace.load(space) if space else None,
        world,
        proxies,
        samples,
        seed,
        train_steps,
        reference,
        reference_train_steps,
        options,
        cache,
        progress=progress,
        reference_options=reference_options,
    )
    return report, write_outputs(report, out)
