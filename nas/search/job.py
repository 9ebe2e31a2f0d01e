"""``search()``: the whole search job behind ``nas search``, from paths to written results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.errors import NasError
from nas.options import renamed_kwargs
from nas.quality.proxies import check_options, get_proxy
from nas.search.curves import make_pruner
from nas.search.exhaustive import exhaustive_front
from nas.search.picks import make_picks, write_picks
from nas.search.results import pareto_set, trials_frame, write_results
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
    out = Path(out)
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
    summary["pareto"] = len(front)
    summary["feasible_front"] = bool(len(front) and front["feasible"].all())
    summary["picks"] = make_picks(front, space, space_path, out) if summary["feasible_front"] else []
    write_results(out, space, front, trials_table, summary)
    write_picks(out, summary["picks"])
    return summary


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
    head = (
        f"{summary['space']} on {summary['table']} ({summary['provenance']}), proxy {summary['proxy']}, "
        f"sampler {summary['sampler']}, budgets {limits} per generation of {budgets['passes']} UNet passes"
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
