"""``search()``: the whole search job behind ``nas search``, from paths to written results."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from nas import outputs
from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable, sidecar_path
from nas.errors import NasError, NasWarning
from nas.machine import warn_other_machine
from nas.options import renamed_kwargs
from nas.quality.proxies import check_options, get_proxy
from nas.search.curves import make_pruner
from nas.search.exhaustive import exhaustive_front
from nas.search.picks import make_picks, write_picks
from nas.search.results import pareto_set, run_outputs, trials_frame, write_results
from nas.search.study import SAMPLERS, SCREEN, Budgets, SearchSetup, run_study
from nas.space import SearchSpace


@renamed_kwargs(steps="passes")
def search(
    space_path: str | Path,
    table_path: str | Path,
    out: str | Path,
    *,
    latency_budget: float | None = None,
    memory_budget: float | None = None,
    passes: int | None = None,
    proxy: str = "params",
    sampler: str = "nsga2",
    trials: int = 200,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    seed: int = 0,
    screen: int | None = None,
    pruner: str = "median",
    progress: bool = True,
    proxy_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a search and write its results to ``out``; returns the summary.

    ``proxy_options`` go to the proxy's constructor (e.g. distill: steps, clips, data, lr);
    ``pruner`` judges the learning curves of proxies that report them (nas.search.curves).
    """
    space = SearchSpace.load(space_path)
    table = CostTable.load(table_path)
    out = Path(out)
    outputs.claim(
        run_outputs(out, study_file=storage is None and sampler != "exhaustive"),
        [space_path, table_path, sidecar_path(table_path), _storage_file(storage)],
    )
    warn_other_machine(table.meta, table_path, unknown=False)
    screen = SCREEN if screen is None else screen
    cost = CostModel(space, table)
    budgets = Budgets.for_space(space, latency_budget, memory_budget, passes)
    if sampler not in SAMPLERS:
        raise NasError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    try:
        proxy_cls = get_proxy(proxy) if proxy != "none" else None
    except KeyError as exc:
        raise NasError(f"--proxy: {exc.args[0]}") from None
    proxy_options = proxy_options or {}
    quality = None
    if proxy_cls is not None:
        proxy_options = check_options(proxy_cls, proxy_options)
        quality = proxy_cls(space, seed=seed, **proxy_options)  # bad options or data fail here, not in a worker
    make_pruner(pruner)
    cost.price(cost.encode(space.sample(0))[None])  # every choice of every slot must be priceable: fail now
    if cost.missing:
        warnings.warn(
            f"{table_path}: no row for this space's {' and '.join(cost.missing)}: the budgets are held against the "
            f"rest of the generation only (measure them: nas profile {space_path} ..., or nas table estimate)",
            NasWarning,
            stacklevel=2,
        )
    summary: dict[str, Any] = {
        "space": space.name,
        "table": str(table_path),
        "provenance": table.meta["provenance"],
        "proxy": proxy,
        "proxy_options": {k: str(v) for k, v in proxy_options.items()},
        "sampler": sampler,
        **({"screen": screen} if sampler == "nsga2" else {}),
        **({"pruner": pruner} if proxy_cls is not None and proxy_cls.reports and sampler != "exhaustive" else {}),
        "budgets": {
            "latency_ms": budgets.latency_ms,
            "peak_memory_mb": budgets.peak_memory_mb,
            "passes": budgets.passes,
        },
        "generation": generation_summary(cost),
    }
    if sampler == "exhaustive":
        front, counts = exhaustive_front(space, cost, budgets, quality)
        summary.update(counts)
        trials_table = None
    else:
        if proxy_cls is None:
            raise NasError("--proxy none works with --sampler exhaustive only; the samplers need a quality objective")
        if trials < 1 or workers < 1 or screen < 1:
            raise NasError(f"--trials, --workers and --screen must be at least 1, got {trials}, {workers} and {screen}")
        storage = storage if storage is not None else f"sqlite:///{(out / 'study.db').resolve()}"
        setup = SearchSetup(
            str(space_path),
            str(table_path),
            budgets,
            proxy,
            sampler,
            storage,
            study or f"{space.name}-{Path(table_path).stem}",
            seed,
            proxy_options,
            screen,
            pruner,
        )
        done = run_study(setup, trials, workers, progress)
        trials_table = trials_frame(done, space)
        front = pareto_set(trials_table, space.slot_names)
        summary.update(
            study=setup.study,
            storage=storage,
            trials=len(trials_table),
            feasible=int(trials_table["feasible"].sum()) if len(trials_table) else 0,
            pruned=int((trials_table["state"] == "pruned").sum()) if len(trials_table) else 0,
        )
    front = with_unet_ms(front, cost, budgets.passes)
    summary["pareto"] = len(front)
    summary["feasible_front"] = bool(len(front) and front["feasible"].all())
    summary["picks"] = make_picks(front, space, space_path, out) if summary["feasible_front"] else []
    write_results(out, space, front, trials_table, summary)
    write_picks(out, summary["picks"])
    return summary


def generation_summary(cost: CostModel) -> dict[str, Any]:
    """The fixed parts every architecture's latency and memory include (summary.json ``generation``)."""
    from nas.cost.report import no_infinity

    parts = {f.part: f for f in cost.fixed}
    return no_infinity(
        {
            **cost.space.generation.summary(),
            "complete": not cost.missing,
            "missing": cost.missing,
            "fixed_ms": cost.fixed_ms,
            **{f"{kind}_ms": part.total_ms for kind, part in parts.items()},
            "parts": [f.as_dict() for f in cost.fixed],
        }
    )


def with_unet_ms(front, cost: CostModel, passes: int):
    """``front`` with a ``unet_ms`` column (one UNet pass): its generation's latency less the fixed parts, over the
    passes."""
    return front.assign(unet_ms=(front["latency_ms"] - cost.fixed_ms) / passes)


def _storage_file(storage: str | None) -> Path | None:
    """The file of an SQLite or journal storage URL (an input the results must not land on), else None."""
    for scheme in ("sqlite:///", "journal:"):
        if storage and storage.startswith(scheme):
            return Path(storage[len(scheme) :])
    return None


def describe(summary: dict[str, Any]) -> str:
    budgets = summary["budgets"]
    limits = (
        ", ".join(
            f"{v:g} {u}"
            for v, u in ((budgets["latency_ms"], "ms"), (budgets["peak_memory_mb"], "MB"))
            if math.isfinite(v)
        )
        or "none"
    )
    generation = summary["generation"]
    whole = f"text encoder + {budgets['passes']} UNet passes + decoder ({generation['decode'].replace('_', ' ')})"
    if not generation["complete"]:
        whole += f"; {' and '.join(generation['missing'])} not in the table, not counted"
    head = (
        f"{summary['space']} on {summary['table']} ({summary['provenance']}), proxy {summary['proxy']}, "
        f"sampler {summary['sampler']}, budgets {limits} per whole generation ({whole})"
    )
    if summary["proxy"] != "none":
        head += f"\nquality proxy {summary['proxy']}: {get_proxy(summary['proxy']).validation}"
    if not summary["feasible_front"]:
        return (
            head
            + f"\nno architecture meets the budgets: wrote the {summary['pareto']} least-violating, marked infeasible"
        )
    seen = f"{summary.get('feasible', 0):,} feasible seen"
    seen += f", {summary['pruned']:,} proxy runs pruned" if summary.get("pruned") else ""
    return head + f"\n{summary['pareto']} Pareto-optimal architectures ({seen})"
