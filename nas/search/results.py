"""What a search writes: pareto.csv, architectures/<id>.yaml, trials.csv and the Pareto plot."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from nas import outputs
from nas.search.optuna_internals import is_pareto_front
from nas.search.resume import stored_attr
from nas.space import Architecture, SearchSpace

COLUMNS = ["arch_id", "latency_ms", "peak_memory_mb", "quality", "feasible"]
LEAST_VIOLATING = 10


def trials_frame(study, space: SearchSpace) -> pd.DataFrame:
    """Every finished trial (complete or pruned): objectives, status, feasibility, violation, the choice at every slot.

    ``status`` is ``ok`` or why the device cannot run the architecture (``unsupported at down0``);
    such a trial has no latency, memory or quality (blank), is never feasible and has no violation.
    """
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = trial.user_attrs
        if "arch_id" not in attrs:
            continue  # pruned before it was priced
        complete = trial.state == TrialState.COMPLETE
        runs = attrs.get("status", "ok") == "ok"
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "status": attrs.get("status", "ok"),
                "arch_id": attrs["arch_id"],
                "latency_ms": trial.values[0] if complete else attrs.get("latency_ms", np.nan),
                "peak_memory_mb": trial.values[1] if complete else stored_attr(attrs, "peak_memory_mb", np.nan),
                "quality": trial.values[2] if complete and attrs.get("quality_evaluated") else np.nan,
                "feasible": bool(attrs.get("feasible")),
                "violation": float(sum(max(c, 0.0) for c in trial.constraints.values())) if runs else np.nan,
                **{slot.name: trial.params.get(slot.name) for slot in space.slots},
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "trial",
            "state",
            "status",
            "arch_id",
            "latency_ms",
            "peak_memory_mb",
            "quality",
            "feasible",
            "violation",
            *space.slot_names,
        ],
    )


def pareto_set(frame: pd.DataFrame, slots: list[str]) -> pd.DataFrame:
    """Non-dominated feasible architectures; if none is feasible, the least-violating ones that can run."""
    unique = frame[frame["state"] == "complete"].drop_duplicates("arch_id")  # a pruned run has no quality
    feasible = unique[unique["feasible"]]
    if feasible.empty:
        runnable = unique[unique["status"] == "ok"]
        return runnable.nsmallest(LEAST_VIOLATING, "violation")[COLUMNS + slots].reset_index(drop=True)
    quality = feasible["quality"].fillna(-np.inf).to_numpy()
    loss = np.column_stack([feasible["latency_ms"], feasible["peak_memory_mb"], -quality])
    front = feasible[is_pareto_front(loss)]
    return front.sort_values("latency_ms")[COLUMNS + slots].reset_index(drop=True)


SUMMARY = "summary.json"
STUDY_FILE = "study.db"  # the study's SQLite file, when --storage is not given
RUN_FILES = ("pareto.csv", "trials.csv", "pareto.png", "pareto.html", "architectures", "picks")
is_summary = outputs.json_keys("space", "sampler", "budgets")


def run_outputs(out: str | Path, study_file: bool = True) -> list[outputs.Derived]:
    """The paths a search writes in its folder ``out``: the summary (nas's by its keys), the study file (an
    optuna SQLite study; ``study_file``: --storage left to its default), and the results, which are nas's
    where the summary or the study is."""
    out = Path(out)
    run = outputs.any_of(outputs.ours_if(out / SUMMARY, is_summary), outputs.ours_if(out / STUDY_FILE, optuna_sqlite))
    return [
        outputs.Derived(out / SUMMARY, "the search's summary", is_summary),
        *([outputs.Derived(out / STUDY_FILE, "the search's study", optuna_sqlite)] if study_file else []),
        *(outputs.Derived(out / name, f"the search's {name}", run) for name in RUN_FILES),
    ]


def optuna_sqlite(path: Path) -> bool:
    """An SQLite file holding optuna's tables (a study nas search made), opened read-only."""
    if not outputs.sqlite_file(path):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)) as connection:
            return bool(connection.execute("select 1 from sqlite_master where name = 'studies'").fetchone())
    except sqlite3.Error:
        return False


def write_results(
    out: Path, space: SearchSpace, pareto: pd.DataFrame, trials: pd.DataFrame | None, summary: dict[str, Any]
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    pareto.to_csv(out / "pareto.csv", index=False)
    folder = out / "architectures"
    folder.mkdir(exist_ok=True)
    for row in pareto.to_dict("records"):
        Architecture.from_labels(space, row).save(folder / f"{row['arch_id']}.yaml")
    if trials is not None:
        trials.to_csv(out / "trials.csv", index=False)
    plot_front(out, pareto, trials, summary)
    outputs.write_text(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


def plot_front(out: Path, pareto: pd.DataFrame, trials: pd.DataFrame | None, summary: dict[str, Any]) -> None:
    """pareto.html (interactive, plotly) and pareto.png (matplotlib): latency vs memory, colour = quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    kind = "Pareto" if summary.get("feasible_front", True) else "least-violating (none meets the budgets)"
    title = (
        f"{summary['space']} on {Path(summary['table']).stem}: {len(pareto)} {kind} architectures "
        f"(budgets {summary['budgets']['latency_ms']:g} ms, {summary['budgets']['peak_memory_mb']:g} MB)"
    )
    shown = trials[trials["status"] == "ok"] if trials is not None else None  # what cannot run has no point
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if shown is not None and len(shown):
        ax.scatter(shown["latency_ms"], shown["peak_memory_mb"], s=8, c="#bbbbbb", label="trials")
    points = ax.scatter(
        pareto["latency_ms"],
        pareto["peak_memory_mb"],
        s=36,
        c=pareto["quality"].fillna(0),
        cmap="viridis",
        edgecolors="black",
        linewidths=0.5,
        label="Pareto set",
        zorder=3,
    )
    budgets = summary["budgets"]
    for budget, line in ((budgets["latency_ms"], ax.axvline), (budgets["peak_memory_mb"], ax.axhline)):
        if np.isfinite(budget):
            line(budget, color="red", linestyle="--", linewidth=1)
    bar = fig.colorbar(points, ax=ax, label=f"quality ({summary['proxy']}, higher is better)")
    if pareto["quality"].abs().max() >= 1e4:  # size proxies: 250M, not an offset label over the title
        bar.formatter = matplotlib.ticker.EngFormatter(sep="")
        bar.update_ticks()
    ax.set_xlabel(
        f"latency per generation (ms: text encoder + {summary['budgets']['passes']} UNet passes + decoder"
        + ("" if summary.get("generation", {}).get("complete", True) else ", fixed parts missing")
        + ")"
    )
    ax.set_ylabel("peak memory (MB)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pareto.png")
    plt.close(fig)

    figure = go.Figure()
    if shown is not None and len(shown):
        figure.add_trace(
            go.Scatter(
                x=shown["latency_ms"],
                y=shown["peak_memory_mb"],
                mode="markers",
                name="trials",
                marker={"color": "#bbbbbb", "size": 5},
                text=shown["arch_id"],
            )
        )
    figure.add_trace(
        go.Scatter(
            x=pareto["latency_ms"],
            y=pareto["peak_memory_mb"],
            mode="markers",
            name="Pareto set",
            marker={
                "color": pareto["quality"].fillna(0),
                "colorscale": "Viridis",
                "size": 10,
                "showscale": True,
                "colorbar": {"title": summary["proxy"]},
            },
            text=[f"{a} quality {q:.4g}" for a, q in zip(pareto["arch_id"], pareto["quality"])],
        )
    )
    figure.update_layout(title=title, xaxis_title="latency per generation (ms)", yaxis_title="peak memory (MB)")
    figure.write_html(out / "pareto.html", include_plotlyjs=True)
