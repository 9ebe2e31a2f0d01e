"""Search: exact exhaustive front, NSGA-II outputs, budgets, resume, kill -9, workers, bad input."""

import multiprocessing
import os
import signal
import sys
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlalchemy.exc
import yaml

from nas.cost.cost_model import CostModel
from nas.errors import NasError
from nas.model import VideoUNet
from nas.quality.proxies import QualityProxy, get_proxy, register_proxy
from nas.search import search
from nas.search.storage import open_storage
from nas.space import SearchSpace
from tests.command_process import NasProcess
from tests.conftest import ROOT, TINY, copy_table


@pytest.fixture(scope="module")
def table_path(tiny_estimate, tmp_path_factory):
    return copy_table(tiny_estimate, tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def small_space(tmp_path_factory):
    data = yaml.safe_load(TINY.read_text())
    data["slots"] = data["slots"][:4]
    data.pop("architectures")
    path = tmp_path_factory.mktemp("space") / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def brute_force_front(space, cost, proxy, latency_budget, memory_budget):
    points = []
    for arch in space.enumerate():
        p = cost.predict(arch, passes=4)
        if p.latency_ms <= latency_budget and p.peak_memory_mb <= memory_budget:
            points.append((arch.id, p.latency_ms, p.peak_memory_mb, proxy.score(arch)))
    front = set()
    for a in points:
        dominated = any(b[1] <= a[1] and b[2] <= a[2] and b[3] >= a[3] and b[1:] != a[1:] for b in points)
        if not dominated:
            front.add(a[0])
    return front


def test_exhaustive_front_is_exact(small_space, table_path, tmp_path):
    space = SearchSpace.load(small_space)
    from nas.cost.table import CostTable

    cost = CostModel(space, CostTable.load(table_path))
    lat = np.median([cost.predict(a, passes=4).latency_ms for a in space.enumerate()])
    summary = search(
        small_space, table_path, tmp_path, latency_budget=lat, sampler="exhaustive", proxy="params", progress=False
    )
    front = pd.read_csv(tmp_path / "pareto.csv")
    expected = brute_force_front(space, cost, get_proxy("params")(space), lat, float("inf"))
    assert set(front["arch_id"]) == expected
    assert summary["architectures"] == space.num_architectures == 625
    assert front["feasible"].all() and (front["latency_ms"] <= lat).all()


def test_nsga2_search_writes_every_output(cli, table_path, tmp_path):
    code, out, err = cli(
        "search",
        TINY,
        "--table",
        table_path,
        "--trials",
        "40",
        "--out",
        tmp_path,
        "--passes",
        "4",
        "--latency-budget",
        "1000000",
    )
    assert code == 0, err
    for name in ("pareto.csv", "trials.csv", "pareto.png", "pareto.html", "summary.json"):
        assert (tmp_path / name).is_file(), name
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    assert list(pareto.columns[:5]) == ["arch_id", "latency_ms", "peak_memory_mb", "quality", "feasible"]
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 40
    first = pareto["arch_id"].iloc[0]
    code, out, err = cli(
        "build", TINY, "--arch", tmp_path / "architectures" / f"{first}.yaml", "--device", "meta", "--json"
    )
    assert code == 0, err


def test_budgets_no_architecture_meets(cli, table_path, tmp_path):
    code, out, err = cli(
        "search", TINY, "--table", table_path, "--trials", "15", "--out", tmp_path, "--memory-budget", "0.001"
    )
    last = err.strip().splitlines()[-1]  # above it: the progress bar
    assert code == 2 and last.startswith("nas: error: ") and "no architecture meets the budgets" in last
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    assert len(pareto) and not pareto["feasible"].any()


def test_same_command_resumes_to_the_total(table_path, tmp_path):
    search(TINY, table_path, tmp_path, trials=12, progress=False, latency_budget=1e9)
    first = pd.read_csv(tmp_path / "trials.csv")
    search(TINY, table_path, tmp_path, trials=20, progress=False, latency_budget=1e9)
    after = pd.read_csv(tmp_path / "trials.csv")
    assert len(after) == 20 and after["trial"].is_unique
    pd.testing.assert_frame_equal(after.iloc[:12].reset_index(drop=True), first)


def completed(storage_url: str) -> list:

    storage = open_storage(storage_url)
    name = optuna.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_kill_9_then_rerun_completes_without_loss(cli, table_path, tmp_path):
    TRIALS = 120  # killed after >= 10: enough left that the kill lands mid-run (a trial takes ~0.1 s), few to re-run
    out = tmp_path / "run"
    args = [
        "search",
        TINY,
        "--table",
        table_path,
        "--trials",
        TRIALS,
        "--out",
        out,
        "--latency-budget",
        "1e9",
        "--json",
    ]
    process = NasProcess(args, cwd=ROOT, new_session=True)  # `python -m nas ARGS`, forked warm
    url = f"sqlite:///{out.resolve() / 'study.db'}"
    deadline = time.time() + 180
    while time.time() < deadline:
        time.sleep(0.1)
        if (out / "study.db").exists():
            try:
                if len(completed(url)) >= 10:
                    break
            except (IndexError, KeyError, ValueError, NasError, optuna.exceptions.StorageInternalError):
                pass  # polling a study the search is still creating: try again; the assertions below are strict
    process.killpg(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    before = {t.number: t.values for t in completed(url)}
    assert 10 <= len(before) < TRIALS
    code, _, err = cli(*args)  # the same command re-run (in-process: the kill is what needs a process)
    assert code == 0, err
    after = completed(url)
    assert len(after) == TRIALS
    assert len({t.number for t in after}) == TRIALS
    assert all(t.values == before[t.number] for t in after if t.number in before)


def test_two_workers_share_a_journal_study(table_path, tmp_path):
    url = f"journal:{tmp_path / 'study.log'}"
    search(TINY, table_path, tmp_path, trials=30, workers=2, storage=url, progress=False, latency_budget=1e9)
    trials = completed(url)
    assert len(trials) == 30
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 30


def test_gradnorm_ranks_architectures(tiny_space):
    proxy = get_proxy("gradnorm")(tiny_space)
    none = tiny_space.architecture("reference").__class__(
        "tiny", tuple((s, tiny_space.slot(s).choices[0]) for s in tiny_space.slot_names)
    )
    assert proxy.score(none) == 0.0
    scores = {proxy.score(tiny_space.sample(seed)) for seed in range(3)}
    assert len(scores) == 3 and all(s > 0 for s in scores)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proxy", "vibes"], "unknown proxy 'vibes'"),
        (["--sampler", "annealing"], "--sampler must be one of"),
        (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open"),
        (["--workers", "2", "--storage", "memory"], "needs a shared --storage"),
    ],
)
def test_bad_search_input(cli, table_path, tmp_path, args, message):
    code, _, err = cli("search", TINY, "--table", table_path, "--trials", "5", "--out", tmp_path, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_table_that_does_not_cover_the_space(cli, table_path, tmp_path):
    frame = pd.read_csv(table_path, keep_default_na=False)
    frame = frame[frame["op"] != "conv3d"]
    frame.to_csv(tmp_path / "thin.csv", index=False)
    meta = yaml.safe_load(table_path.with_suffix(".yaml").read_text())
    meta["rows"] = len(frame)
    (tmp_path / "thin.yaml").write_text(yaml.safe_dump(meta))
    code, _, err = cli("search", TINY, "--table", tmp_path / "thin.csv", "--trials", "5", "--out", tmp_path / "o")
    assert code == 2 and "no conv3d rows" in err


@pytest.mark.skipif(
    not os.environ.get("NAS_TEST_POSTGRES"),
    reason="NAS_TEST_POSTGRES is unset: .ci/run starts a PostgreSQL server on loopback and sets it",
)
def test_two_workers_share_a_postgresql_study(table_path, tmp_path):
    url = os.environ["NAS_TEST_POSTGRES"]
    study = f"ci-{os.getpid()}-{time.time_ns()}"
    search(
        TINY, table_path, tmp_path, trials=24, workers=2, storage=url, study=study, progress=False, latency_budget=1e9
    )

    done = optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,)
    )
    assert len(done) == 24 and len({t.number for t in done}) == 24


def test_distill_proxy_learns_and_reports_its_curve(tiny_space, table_path, tmp_path):
    proxy = get_proxy("distill")(tiny_space, train_steps=6, report_every=3, clips=4)
    arch = tiny_space.architecture("reference")
    assert proxy.score(arch) > proxy._held_out(VideoUNet.from_space(tiny_space, arch, freeze_spatial=True))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    summary = search(
        TINY,
        table_path,
        tmp_path,
        trials=6,
        proxy="distill",
        progress=False,
        latency_budget=1e9,
        storage=url,
        study="d",
        pruner="halving",
        proxy_options={"train_steps": 2, "report_every": 1, "clips": 4},
    )
    curves = optuna.load_study(study_name="d:curves", storage=url).get_trials()
    assert summary["pareto"] >= 1 and summary["pruner"] == "halving"
    assert len(curves) == 6 and all(sorted(t.intermediate_values) in ([1], [1, 2]) for t in curves)


@register_proxy
class SteppedProxy(QualityProxy):
    """A training proxy stand-in: its curve is the architecture's temporal params at every step."""

    name = "stepped-test"
    reports = True

    def __init__(self, space, seed=0, steps=3):
        super().__init__(space, seed)
        self.params, self.steps = get_proxy("params")(space), steps

    def score(self, architecture, curve=None):
        value = self.params.score(architecture)
        for step in range(1, self.steps + 1):
            if curve is not None:
                curve.report(value, step)
        return value


@pytest.mark.parametrize("pruner, pruned", [("median", True), ("hyperband", True), ("none", False)])
def test_pruner_stops_weak_proxy_runs(table_path, tmp_path, pruner, pruned):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    search(
        TINY,
        table_path,
        tmp_path,
        trials=24,
        proxy="stepped-test",
        progress=False,
        latency_budget=1e9,
        storage=url,
        study="s",
        pruner=pruner,
        sampler="random",
    )
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    curves = optuna.load_study(study_name="s:curves", storage=url).get_trials()
    states = {t.state for t in trials}
    assert (optuna.trial.TrialState.PRUNED in states) == pruned
    assert sorted(t.state for t in curves) == sorted(t.state for t in trials if t.user_attrs.get("feasible"))
    listed = pd.read_csv(tmp_path / "trials.csv")
    assert len(listed) == 24 and (listed["state"] == "pruned").sum() == sum(t.state.name == "PRUNED" for t in trials)
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    assert set(pareto["arch_id"]) <= set(listed.loc[listed["state"] == "complete", "arch_id"])
    for t in curves:  # a pruned run was weak and headed for a dominated point: someone as cheap did better
        if t.state == optuna.trial.TrialState.PRUNED:
            step = max(t.intermediate_values)
            assert any(
                o.number != t.number
                and o.intermediate_values.get(step, -np.inf) >= t.intermediate_values[step]
                and o.user_attrs["latency_ms"] <= t.user_attrs["latency_ms"]
                and o.user_attrs["peak_memory_mb"] <= t.user_attrs["peak_memory_mb"]
                for o in curves
            )
            if pruner == "median":
                earlier = [d.value for d in curves if d.state.name == "COMPLETE" and d.number < t.number]
                assert t.intermediate_values[step] < np.median(earlier)


def test_a_weak_run_is_pruned_only_when_a_cheaper_one_did_better():
    from nas.search.curves import Curves

    curves = Curves(optuna.storages.InMemoryStorage(), "u", "median")
    for number in range(5):
        with curves.start(number, latency_ms=100.0, peak_memory_mb=100.0) as curve:
            curve.report(1.0, 1)
            curve.finish(1.0)
    with curves.start(5, latency_ms=50.0, peak_memory_mb=100.0) as cheap:
        cheap.report(0.1, 1)  # below the median, but nothing as fast did better: it may be Pareto-optimal
        cheap.finish(0.1)
    with pytest.raises(optuna.TrialPruned), curves.start(6, latency_ms=150.0, peak_memory_mb=100.0) as slow:
        slow.report(0.1, 1)
    assert [t.state.name for t in curves.study.get_trials()][-2:] == ["COMPLETE", "PRUNED"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proxy-option", "stepz=4"], "--proxy-option stepz: the distill proxy takes train_steps, lr, clips"),
        (["--proxy-option", "steps"], "--proxy-option steps: expected KEY=VALUE"),
        (["--proxy-option", "train_steps=0"], "steps and report_every must be >= 1"),
        (["--proxy-option", "data=/nonexistent"], "/nonexistent: no manifest.json"),
        (["--pruner", "patience"], "--pruner must be one of median, halving, hyperband, none"),
    ],
)
def test_bad_proxy_options(cli, table_path, tmp_path, args, message):
    code, _, err = cli(
        "search", TINY, "--table", table_path, "--trials", "2", "--out", tmp_path, "--proxy", "distill", *args
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_search_own_device_example_runs_end_to_end(tiny_space, tmp_path, monkeypatch, capsys):
    """The example profiles in a child worker, which re-imports the script: it must run as written.

    It runs here as ``python examples/search_own_device.py`` runs it (runpy, as ``__main__`` with its
    path), so the worker imports it again as multiprocessing's ``__mp_main__``, from a warm forkserver.
    Its table is found as a resumed run finds it, with all but two keys measured (rows of the shipped CPU
    table, in their probe scale): the worker starts and measures two keys, not all 17 at 10 repeats each.
    """
    import runpy

    from nas.cost.plan import table_plan
    from nas.cost.table import COLUMNS, sidecar_path
    from nas.profile.torch_profiler import TorchProfiler
    from nas.space.yaml_io import read_yaml_mapping, write_yaml

    out = tmp_path / "example"
    out.mkdir()
    shipped = ROOT / "latency_tables" / "cpu_tiny.csv"
    rows = pd.read_csv(shipped, keep_default_na=False)[COLUMNS].iloc[:-2]
    rows.to_csv(out / "my_device.csv", index=False)
    probe_ms = read_yaml_mapping(sidecar_path(shipped))["probe_ms"]
    meta = {**TorchProfiler(tiny_space, probe_ms=probe_ms).metadata(), "space": "tiny", "rows": len(rows)}
    del meta["device"]  # its thread count is the worker's to say (a resumed run checks the fields present)
    write_yaml(sidecar_path(out / "my_device.csv"), meta)
    script = "examples/search_own_device.py"
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [script, "--out", str(out), "--trials", "12"])
    runpy.run_path(script, run_name="__main__")
    assert "Pareto architectures under" in capsys.readouterr().out and (out / "model" / "config.json").is_file()
    table = pd.read_csv(out / "my_device.csv")
    assert table["op"].ne("op").all()  # one header: the worker did not re-run it
    assert len(table) == len(table_plan(tiny_space)) and (table["status"] == "ok").all()  # the two measured


@pytest.mark.parametrize(
    "lost",
    [
        lambda: sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE")),
        lambda: sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists")),
        lambda: sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("database is locked")),
    ],
    ids=["duplicate-version", "table-exists", "locked"],
)
def test_storage_open_retries_a_lost_schema_race(tmp_path, monkeypatch, lost):
    """Two processes opening a fresh SQLite study race to create its schema; the loser retries."""
    from nas.search import storage as storage_module

    calls = []

    class Racing(optuna.storages.RDBStorage):
        def __init__(self, url, **kwargs):
            calls.append(url)
            if len(calls) == 1:
                raise lost()
            super().__init__(url, **kwargs)

    monkeypatch.setattr(storage_module.optuna.storages, "RDBStorage", Racing)
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)
    opened = storage_module.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and optuna.get_all_study_names(opened) == []


def test_storage_open_does_not_retry_other_errors(tmp_path):
    (tmp_path / "study.db").write_text("not a database")
    with pytest.raises(NasError, match="study.db: cannot open .*not a database"):
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")


def _open_at_once(url, barrier, failures):
    barrier.wait()
    try:
        open_storage(url)
    except NasError as exc:
        failures.put(str(exc))


def test_a_new_sqlite_study_logs_ahead_and_an_existing_file_keeps_its_mode(tmp_path):
    """A new study database is in WAL mode, synced at checkpoints (optuna commits ~30 times a trial: in the
    default rollback-journal mode that was most of a cheap search's time); an existing file is not switched."""
    storage = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old.db'}")  # made by optuna alone: rollback journal
    storage = open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, SQLite's default


def test_processes_opening_one_fresh_database_at_once_all_succeed(tmp_path):
    """The real race, not a stand-in: before the retry covered "table ... already exists", most rounds failed."""
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for round_ in range(2):
        barrier = context.Barrier(4)
        url = f"sqlite:///{tmp_path / f'study{round_}.db'}"
        processes = [context.Process(target=_open_at_once, args=(url, barrier, failures)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert all(process.exitcode == 0 for process in processes)
    assert failures.empty(), failures.get()
