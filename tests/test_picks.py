"""After a search: the picks (best quality, knee, fastest) with their next commands, in the output and
summary.json; a re-run with nothing to do says so; the study carries its metric names for optuna-dashboard."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from nas.search.picks import pick_rows
from tests.conftest import ROOT, TINY

TABLE = ROOT / "latency_tables" / "cpu_tiny.csv"


def front(rows):
    return pd.DataFrame(rows, columns=["arch_id", "latency_ms", "peak_memory_mb", "quality", "feasible"])


def test_picks_are_the_best_the_knee_and_the_fastest():
    table = front(
        [
            ["fast", 10, 10, 0.1, True],
            ["knee", 12, 11, 0.9, True],
            ["best", 40, 40, 1.0, True],
            ["broken", 1, 1, 5.0, False],
        ]
    )
    picks = {role: table.loc[i, "arch_id"] for role, i in pick_rows(table).items()}
    assert picks == {"best_quality": "best", "knee": "knee", "fastest": "fast"}


def test_ties_and_degenerate_fronts():
    table = front([["a", 10, 10, 0.5, True], ["b", 10, 9, 0.7, True]])
    rows = pick_rows(table)
    assert table.loc[rows["fastest"], "arch_id"] == "b" and table.loc[rows["best_quality"], "arch_id"] == "b"
    assert pick_rows(front([["x", 1, 1, np.nan, True]])) == {"fastest": 0, "knee": 0}  # no quality: no best
    assert pick_rows(front([["x", 1, 1, 1.0, False]])) == {}


def test_search_ends_with_picks_and_next_commands_and_a_rerun_says_nothing_to_do(cli, tmp_path):
    out = tmp_path / "search"
    args = ["search", TINY, "--table", TABLE, "--trials", "12", "--out", out]
    code, stdout, _ = cli(*args)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    roles = [p["role"] for p in summary["picks"]]
    assert roles == ["best_quality", "knee", "fastest"]
    pareto = pd.read_csv(out / "pareto.csv")
    fastest = summary["picks"][2]
    assert fastest["latency_ms"] == pytest.approx(pareto["latency_ms"].min())
    assert summary["picks"][0]["quality"] == pytest.approx(pareto["quality"].max())
    for pick in summary["picks"]:
        arch = out / "architectures" / f"{pick['arch_id']}.yaml"
        assert pick["arch_id"] in stdout and f"nas build {TINY} --arch {arch}" in stdout
        assert any(line.startswith("nas train distill") and str(arch) in line for line in pick["next"])
        assert (out / "picks" / f"{pick['role']}.yaml").read_text() == arch.read_text()
    assert "wrote" in stdout and "pareto.csv" in stdout

    code, _, stderr = cli(*args)
    assert code == 0
    lines = [line for line in stderr.splitlines() if "nothing to run" in line]
    assert len(lines) == 1 and "12 trials are done" in lines[0]


def test_study_opens_with_optuna_and_names_its_metrics(cli, tmp_path):
    out = tmp_path / "search"
    assert cli("search", TINY, "--table", TABLE, "--trials", "3", "--out", out)[0] == 0
    storage = f"sqlite:///{out / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert study.metric_names == ["latency_ms", "peak_memory_mb", "quality"]
    assert {"values_latency_ms", "values_peak_memory_mb", "values_quality"} <= set(study.trials_dataframe().columns)
