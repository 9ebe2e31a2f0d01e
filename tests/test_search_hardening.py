"""Search hardening: resume only the same search, unsupported architectures as a status, the
infeasible fallback, the screen's ties and repeats, one proxy run per architecture, optuna internals."""

import math
import shutil
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from nas.cost.cost_model import CostModel
from nas.cost.roofline import CHIPS, estimate_table
from nas.cost.table import CostTable
from nas.errors import NasError, NasWarning
from nas.quality.proxies import get_proxy
from nas.search import screening, search
from nas.search.resume import setup_record
from nas.search.screening import TableScreen
from nas.search.study import Budgets, SearchSetup
from nas.space import SearchSpace
from tests.conftest import TINY, copy_table


@pytest.fixture(scope="module")
def table_path(tiny_estimate, tmp_path_factory):
    return copy_table(tiny_estimate, tmp_path_factory.mktemp("hardening"))


def test_resume_refuses_another_setup_and_resumes_the_same(table_path, tmp_path):
    table = tmp_path / "table.csv"  # a copy: the test rewrites its contents under the same name
    shutil.copy(table_path, table), shutil.copy(table_path.with_suffix(".yaml"), table.with_suffix(".yaml"))
    out = tmp_path / "run"
    search(TINY, table, out, trials=4, progress=False, latency_budget=1e9)
    for change, message in [
        ({"proxy": "flops"}, "proxy params -> flops"),
        ({"latency_budget": 500.0}, "latency_budget_ms 1e+09 -> 500"),
        ({"memory_budget": 100.0}, "memory_budget_mb 512 -> 100"),
        ({"passes": 8}, "passes 4 -> 8"),
        ({"seed": 3}, "seed 0 -> 3"),
    ]:
        with pytest.raises(NasError, match="was run with another setup") as error:
            search(TINY, table, out, trials=6, progress=False, **{"latency_budget": 1e9, **change})
        assert message in str(error.value) and "use another --out (or --study NAME)" in str(error.value)
    edited = CostTable.load(table)
    edited.rows.loc[edited.rows["op"] == "conv1d", "latency_p50_ms"] *= 2
    edited.rows.loc[edited.rows["op"] == "conv1d", "latency_p90_ms"] *= 2
    edited.save(table)
    with pytest.raises(NasError, match=r"another setup \(table contents\)"):
        search(TINY, table, out, trials=6, progress=False, latency_budget=1e9)
    assert len(pd.read_csv(out / "trials.csv")) == 4  # nothing was appended by the refused runs
    shutil.copy(table_path, table)  # the same contents again (the sidecar's date never counts)
    summary = search(TINY, table, out, trials=6, progress=False, latency_budget=1e9, sampler="random", screen=8)
    assert summary["trials"] == 6  # the sampler and screen may change: they do not change what a trial means


def test_setup_record_covers_proxy_options_and_space_contents(table_path, tmp_path):
    space = tmp_path / "space.yaml"
    shutil.copy(TINY, space)
    setup = SearchSetup(str(space), str(table_path), Budgets(), "distill", "nsga2", None, "s", 0, {"train_steps": 2})
    record = setup_record(setup)
    setup.proxy_options = {"train_steps": 3}
    assert setup_record(setup)["proxy_options"] != record["proxy_options"]
    space.write_text(TINY.read_text() + "\n# a comment changes nothing\n")
    setup.proxy_options = {"train_steps": 2}
    assert setup_record(setup) == record
    data = yaml.safe_load(TINY.read_text())
    data["video"]["frames"] = 8
    space.write_text(yaml.safe_dump(data))
    assert setup_record(setup)["space"] != record["space"]


@pytest.fixture(scope="module")
def unsupported_table(tiny_space, table_path, tmp_path_factory):
    """The tiny table with attn3d at down0's (and up0's) shape marked unsupported, as a device would."""
    table = CostTable.load(table_path)
    rows = table.rows
    down0 = tiny_space.slot("down0")
    at = (rows["op"] == "attn3d") & (rows["channels"] == down0.channels) & (rows["height"] == down0.height)
    assert at.sum() == 1
    rows.loc[at, ["latency_p50_ms", "latency_p90_ms", "working_set_mb"]] = np.nan
    rows.loc[at, ["status", "samples"]] = ["unsupported", 0]
    path = tmp_path_factory.mktemp("unsupported") / "table.csv"
    table.save(path)
    return path


def test_unsupported_architecture_is_a_status_and_the_fallback_is_least_violating(unsupported_table, tmp_path):
    summary = search(TINY, unsupported_table, tmp_path, trials=30, sampler="random", latency_budget=1.0, progress=False)
    assert not summary["feasible_front"]
    trials = pd.read_csv(tmp_path / "trials.csv")
    unsupported = trials[trials["status"] != "ok"]
    assert len(unsupported) and unsupported["status"].isin(["unsupported at down0", "unsupported at up0"]).all()
    for _, row in unsupported.iterrows():  # up0 runs at down0's shape: the same table row
        assert row[row["status"].split()[-1]].startswith("attn3d")
    assert unsupported[["latency_ms", "peak_memory_mb", "quality", "violation"]].isna().all().all()
    assert trials["latency_ms"].max() < 1e6 and trials["peak_memory_mb"].max() < 1e6  # no stand-in number
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    assert len(pareto) == 10 and not set(pareto["arch_id"]) & set(unsupported["arch_id"])
    ok = trials[(trials["status"] == "ok") & (trials["state"] == "complete")].drop_duplicates("arch_id")
    chosen = ok[ok["arch_id"].isin(pareto["arch_id"])]["violation"]
    assert chosen.max() <= ok[~ok["arch_id"].isin(pareto["arch_id"])]["violation"].min()
    assert chosen.min() > 0  # the violations are read from optuna 5's constraints, not 0 everywhere


def _trials(space: SearchSpace, rows: list[list[int]], values=(1.0, 1.0, 1.0)) -> list:
    distributions = {
        s.name: optuna.distributions.CategoricalDistribution([c.label for c in s.choices]) for s in space.slots
    }
    trials = [
        optuna.trial.create_trial(
            params={s.name: s.choices[i].label for s, i in zip(space.slots, row)},
            distributions=distributions,
            values=list(values),
            user_attrs={"feasible": True, "quality_evaluated": True},
        )
        for row in rows
    ]
    for number, trial in enumerate(trials):
        trial.number = number
    return trials


def test_screen_breaks_ties_at_random_and_never_reproposes_a_seen_child(tiny_space, table_path, monkeypatch):
    cost = CostModel(tiny_space, CostTable.load(table_path))
    width = len(tiny_space.slots)
    # late in a search no child adds hypervolume: every gain is 0
    monkeypatch.setattr(screening, "hypervolume_improvement", lambda front, candidates, ref: np.zeros(len(candidates)))
    done = _trials(tiny_space, [[0] * width])
    children = np.array([[i % 5, (i // 5) % 5] + [0] * (width - 2) for i in range(1, 25)])
    picks = set()
    for seed in range(8):
        screen = TableScreen(tiny_space, cost, 4, (math.inf, math.inf), seed)
        picks.add(tuple(screen.encode(screen.pick(done, children))))
    assert len(picks) > 1  # not always the lexicographically smallest child
    seen = _trials(tiny_space, children.tolist())
    screen = TableScreen(tiny_space, cost, 4, (math.inf, math.inf), 0)
    for _ in range(5):
        row = tuple(screen.encode(screen.pick(seen, children)))
        assert row not in {tuple(c) for c in children}


def test_an_architecture_proposed_twice_costs_one_proxy_run(table_path, tmp_path, monkeypatch):
    data = yaml.safe_load(TINY.read_text())
    data["slots"], data["architectures"] = data["slots"][:1], {}  # 5 architectures, 8 trials: repeats
    space = tmp_path / "one_slot.yaml"
    space.write_text(yaml.safe_dump(data))
    table = tmp_path / "table.csv"
    estimate_table(SearchSpace.load(space), CHIPS["a18-pro-ne"]).save(table)
    distill = get_proxy("distill")
    runs = []
    real = distill.score
    monkeypatch.setattr(
        distill, "score", lambda self, arch, curve=None: runs.append(arch.id) or real(self, arch, curve)
    )
    search(
        space,
        table,
        tmp_path / "run",
        trials=8,
        proxy="distill",
        sampler="random",
        pruner="none",
        latency_budget=1e9,
        progress=False,
        proxy_options={"train_steps": 1, "clips": 2, "report_every": 1},
    )
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert trials["arch_id"].duplicated().any()
    assert sorted(runs) == sorted(trials["arch_id"].unique())  # one proxy run per architecture
    for _, group in trials.groupby("arch_id"):
        assert group["quality"].nunique() == 1  # a repeat took the first run's score


def test_optuna_internals_still_do_what_nas_needs():
    """Fails loudly when an optuna release moves or changes the internals nas/search/optuna_internals.py wraps."""
    from nas.search.optuna_internals import breed_child, get_non_dominated_box_bounds, is_pareto_front

    loss = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]])
    assert is_pareto_front(loss).tolist() == [True, True, False, True]
    lower, upper = get_non_dominated_box_bounds(np.array([[0.5, 0.5]]), np.array([1.0, 1.0]))
    boxes = np.prod(upper - np.maximum(lower, 0.0), axis=1)  # within [0, 1]^2: what the front leaves undominated
    assert np.isclose(boxes.sum(), 1.0 - 0.25)
    sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=4)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_categorical("a", ["x", "y"]), 0.0)[1:] * 2, n_trials=4)
    space = {"a": optuna.distributions.CategoricalDistribution(["x", "y"])}
    child = breed_child(sampler, study, space, study.get_trials())
    assert set(child) <= {"a"} and child.get("a", "x") in ("x", "y")


def test_proxy_options_are_coerced_to_the_declared_types():
    from nas.quality.proxies import check_options

    distill = get_proxy("distill")
    assert check_options(distill, {"lr": "1e-3", "train_steps": "40", "clips": 4, "data": "d"}) == {
        "lr": 1e-3,
        "train_steps": 40,
        "clips": 4,
        "data": "d",
    }
    for bad in ({"lr": "fast"}, {"train_steps": 1.5}, {"train_steps": True}, {"clips": [2]}):
        with pytest.raises(NasError, match=f"--proxy-option {next(iter(bad))}="):
            check_options(distill, bad)


def test_search_takes_lr_written_as_1e_3(cli, table_path, tmp_path):
    """YAML reads 1e-3 as a string; the first distill trial used to crash on it."""
    code, _, err = cli(
        "search",
        TINY,
        "--table",
        table_path,
        "--trials",
        "1",
        "--out",
        tmp_path,
        "--proxy",
        "distill",
        "--proxy-option",
        "lr=1e-3",
        "--proxy-option",
        "train_steps=1",
        "--proxy-option",
        "clips=2",
        "--latency-budget",
        "1e9",
        "--json",
    )
    assert code == 0, err


def test_proxy_check_reference_follows_the_proxy_steps_and_options_are_typed(cli, monkeypatch, tmp_path):
    from nas.quality import proxy_check as check

    seen = {}

    def fake_check(
        space, world, proxies, samples, seed, train_steps, reference, reference_train_steps, options, cache, **kw
    ):
        seen.update(train_steps=train_steps, reference_train_steps=reference_train_steps, options=options)
        return {"fake": True}

    monkeypatch.setattr(check, "proxy_check", fake_check)
    monkeypatch.setattr(check, "write_outputs", lambda report, out: {})
    code, _, err = cli(
        "proxy",
        "check",
        TINY,
        "--proxy",
        "distill",
        "--reference",
        "replay",
        "--proxy-option",
        "train_steps=7",
        "--proxy-option",
        "lr=1e-3",
        "--json",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    # the proxy's one length, 7 steps; the reference's (None) is then 10x the longest proxy run
    assert seen["train_steps"] == (7,) and seen["reference_train_steps"] is None
    assert seen["options"]["distill"]["lr"] == 0.001 and isinstance(seen["options"]["distill"]["lr"], float)


def test_cost_of_an_architecture_that_cannot_run_has_no_number(cli, tiny_space, unsupported_table, tmp_path):
    import json

    arch = tmp_path / "arch.yaml"
    slots = {name: {"op": "none"} for name in tiny_space.slot_names}
    slots["down0"] = {"op": "attn3d", "count": 1, "heads": 4}
    arch.write_text(yaml.safe_dump({"space": "tiny", "slots": slots}))
    code, out, err = cli("cost", TINY, "--arch", arch, "--table", unsupported_table, "--json")
    report = json.loads(out)  # strict JSON: no Infinity
    assert code == 0 and report["runs"] is False and report["latency_ms"] is None and report["peak_memory_mb"] is None
    code, out, _ = cli("cost", TINY, "--arch", arch, "--table", unsupported_table)
    assert "cannot run on the device" in out and "inf" not in out


def test_a_study_stored_with_the_old_memory_mb_names_resumes(table_path, tmp_path):
    """A study an older nas wrote (budgets.memory_mb in the space, memory_mb as the table column and as metric,
    constraint and trial attribute names) resumes with the space under either spelling, and its trials keep
    their memory."""
    from nas.search.resume import SETUP_ATTR, VOLATILE_META, _digest

    old_space, url = tmp_path / "old.yaml", f"sqlite:///{tmp_path / 'study.db'}"
    old_space.write_text(TINY.read_text().replace("\n  peak_memory_mb: 512\n", "\n  memory_mb: 512\n"))
    assert "memory_mb: 512" in old_space.read_text() and "peak_memory_mb" not in old_space.read_text()
    with pytest.warns(NasWarning, match="budgets: memory_mb is deprecated; use peak_memory_mb"):
        space = SearchSpace.load(old_space)
    budgets = Budgets.for_space(space, latency_ms=1e9)
    record = setup_record(SearchSetup(str(TINY), str(table_path), budgets, "params", "nsga2", url, "s", 0, {}))
    record["space"] = _digest(yaml.safe_load(old_space.read_text()))  # an older nas digested the file as it was
    table = CostTable.load(table_path)  # ... and the table's rows under their old column name
    meta = {k: v for k, v in table.meta.items() if k not in VOLATILE_META}
    old_rows = table.rows.rename(columns={"working_set_mb": "memory_mb"})
    assert "memory_mb" in old_rows.columns
    record["table"] = _digest([old_rows.to_csv(index=False), meta])
    study = optuna.create_study(study_name="s", storage=url, directions=["minimize", "minimize", "maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["latency_ms", "memory_mb", "quality"])
    study.set_user_attr(SETUP_ATTR, record)
    cost = CostModel(space, CostTable.load(table_path))
    distributions = {
        s.name: optuna.distributions.CategoricalDistribution([c.label for c in s.choices]) for s in space.slots
    }
    memory = {}
    for seed, state in ((0, "COMPLETE"), (1, "PRUNED")):
        arch = space.sample(seed)
        latency, memory[arch.id] = (float(v[0]) for v in cost.price(cost.encode(arch)[None]))
        attrs = {"arch_id": arch.id, "status": "ok", "feasible": True, "latency_ms": latency}
        study.add_trial(
            optuna.trial.create_trial(
                state=getattr(optuna.trial.TrialState, state),
                params={name: choice.label for name, choice in arch.choices},
                distributions=distributions,
                values=[latency, memory[arch.id], 1.0] if state == "COMPLETE" else None,
                user_attrs={**attrs, "memory_mb": memory[arch.id], "quality_evaluated": state == "COMPLETE"},
                system_attrs={"constraints:latency_ms": -0.5, "constraints:memory_mb": -0.5},
            )
        )
    with pytest.warns(NasWarning, match="memory_mb is deprecated"):
        search(
            old_space, table_path, tmp_path / "a", storage=url, study="s", trials=4, latency_budget=1e9, progress=False
        )
    summary = search(
        TINY, table_path, tmp_path / "b", storage=url, study="s", trials=6, latency_budget=1e9, progress=False
    )
    trials = pd.read_csv(tmp_path / "b" / "trials.csv")
    assert summary["trials"] == 6 and trials["peak_memory_mb"].notna().all()
    for arch_id, mb in memory.items():  # the older trials' memory, read from their old attribute name
        assert trials.loc[trials["arch_id"] == arch_id, "peak_memory_mb"].iloc[0] == pytest.approx(mb)
    assert optuna.load_study(study_name="s", storage=url).metric_names == ["latency_ms", "peak_memory_mb", "quality"]
