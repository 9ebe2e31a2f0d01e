"""Profilers: a real torch-CPU profile, resume after a partial write or kill -9, time and memory
limits, the Core ML export/import path, and the end-to-end accuracy check."""

import json
import platform
import shutil
import signal
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from nas.cost.cost_model import CostModel
from nas.cost.plan import plan_frame, table_plan
from nas.cost.table import CostTable
from nas.profile.coreml_kit import time_packages
from nas.space import SearchSpace
from tests.command_process import NasProcess
from tests.conftest import ROOT, TINY, two_levels
from tests.coreml_stand_in import StandInCoreMLRuntime

FAST = ["--warmup", "1", "--repeats", "3", "--budget", "0.2"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The tiny space measured on this machine's CPU with a short protocol."""
    from nas.cli import main

    path = tmp_path_factory.mktemp("profile") / "tiny_cpu.csv"
    assert main(["profile", str(TINY), "-o", str(path), *FAST]) == 0
    return path


OPS = 3  # the plan's first temporal op (after the spatial UNet and the two fixed parts)


def small_plan(tiny_space, tmp_path, n=3):
    path = tmp_path / "plan.csv"
    plan_frame(table_plan(tiny_space)[OPS : OPS + n]).to_csv(path, index=False)
    return path


def test_profile_measures_every_planned_key(measured, tiny_space):
    table = CostTable.load(measured)
    assert len(table.rows) == len(table_plan(tiny_space))
    assert (table.rows["status"] == "ok").all()
    assert (table.rows["latency_p50_ms"] > 0).all() and (table.rows["working_set_mb"] > 0).all()
    assert table.meta["provenance"] == "measured" and table.meta["backend"] == "torch"
    assert table.meta["machine"]["cpu"] and table.meta["machine"]["threads"] >= 1  # measured where, with what
    assert table.meta["command"].startswith("nas profile ")
    # attention over all 1024 positions costs more than over 4 frames at the same shape
    rows = table.rows.set_index(["op", "channels", "height"])
    assert rows.loc[("attn3d", 32, 16), "latency_p50_ms"] > rows.loc[("conv1d", 32, 16), "latency_p50_ms"]


def test_profile_resumes_and_drops_a_half_written_row(cli, tiny_space, tmp_path):
    plan = small_plan(tiny_space, tmp_path)
    out = tmp_path / "t.csv"
    header = "op,channels,frames,height,width,heads,kernel,latency_p50_ms,latency_p90_ms,memory_mb,samples,status\n"
    first = table_plan(tiny_space)[OPS]
    done = (
        f"{first.op},{first.channels},{first.frames},{first.height},{first.width},{first.heads},{first.kernel},"
        "123.0,124.0,1.0,3,ok\n"
    )
    original = header + done + "conv3d,32,4,16"  # first table format, killed mid-line
    out.write_text(original)
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, *FAST)
    assert code == 0, err
    # the user's file is not rewritten in place: the original is kept next to the resumed table
    assert (tmp_path / "t.csv.orig").read_text() == original
    assert "the original is kept as t.csv.orig" in err
    table = CostTable.load(out)
    assert len(table.rows) == 3
    assert table.rows.iloc[0]["latency_p50_ms"] == 123.0  # kept, not re-measured


def test_profile_resumed_into_an_old_column_table_writes_one_format_and_keeps_the_original(cli, tiny_space, tmp_path):
    from nas.cost.table import COLUMNS
    from nas.profile.torch_profiler import TorchProfiler

    plan = small_plan(tiny_space, tmp_path, n=2)
    out = tmp_path / "t.csv"
    first = table_plan(tiny_space)[OPS]
    original = (
        "op,channels,frames,height,width,params,latency_p50_ms,latency_p90_ms,memory_mb,samples,status,message\n"
        f"{first.op},{first.channels},{first.frames},{first.height},{first.width},{first.params},"
        "123.456789012,124.5,1.23456789012,3,ok,\n"
    )
    out.write_text(original)
    meta = {**TorchProfiler(tiny_space, probe_ms=1.5).metadata(), "space": "tiny", "rows": 1}
    out.with_suffix(".yaml").write_text(yaml.safe_dump(meta))
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, *FAST)
    assert code == 0, err
    assert f"nas: warning: {out}: column memory_mb is deprecated; use working_set_mb" in err.splitlines()
    assert "rewritten to resume (it had the old column name memory_mb (now working_set_mb))" in err
    # never a file mixing both names: the resumed table is in today's format, the original kept as it was
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == COLUMNS and "memory_mb" not in out.read_text()
    assert (tmp_path / "t.csv.orig").read_text() == original
    table = CostTable.load(out)
    assert len(table.rows) == 2 and table.meta["probe_ms"] == 1.5
    kept = table.rows.iloc[0]
    assert (kept["latency_p50_ms"], kept["working_set_mb"]) == (123.456789012, 1.23456789012)  # every digit kept


def test_kill_9_loses_no_measured_row(cli, tiny_space, tmp_path):
    out = tmp_path / "t.csv"
    planned = 6  # killed after 2 rows: 4 keys (a few seconds) left to be cut in, and to resume
    plan = small_plan(tiny_space, tmp_path, n=planned)
    args = ["profile", TINY, "-o", out, "--plan", plan, "--warmup", "1", "--repeats", "3", "--budget", "0.3"]
    process = NasProcess(args, cwd=ROOT, new_session=True)  # `python -m nas ARGS`, forked warm
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.killpg(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    before = pd.read_csv(out)
    assert 2 <= len(before) < planned
    code, _, err = cli(*args)  # the same command re-run (in-process: the kill is what needs a process)
    assert code == 0, err
    after = CostTable.load(out).rows
    assert len(after) == planned
    pd.testing.assert_frame_equal(
        after.iloc[: len(before)].reset_index(drop=True)[before.columns[:7]],
        before[before.columns[:7]],
        check_dtype=False,
    )
    assert list(after["latency_p50_ms"][: len(before)]) == pytest.approx(list(before["latency_p50_ms"]))


def test_time_limit_records_timeouts_and_goes_on(cli, tiny_space, tmp_path):
    out = tmp_path / "t.csv"
    code, _, err = cli(
        "profile", TINY, "-o", out, "--plan", small_plan(tiny_space, tmp_path), "--time-limit", "0.000001", *FAST
    )
    assert code == 0, err
    assert set(CostTable.load(out).rows["status"]) == {"timeout"}


def test_memory_limit_records_oom_and_goes_on(cli, tiny_space, tmp_path):
    out = tmp_path / "t.csv"
    plan = tmp_path / "plan.csv"
    keys = [k for k in table_plan(tiny_space) if k.op in ("attn3d", "conv1d") and k.channels == 32]
    plan_frame(keys).to_csv(plan, index=False)
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, "--memory-limit", "1", *FAST)
    assert code == 0, err
    assert set(CostTable.load(out).rows["status"]) <= {"oom", "ok"}
    assert "oom" in set(CostTable.load(out).rows["status"])


def test_check_reports_prediction_accuracy(cli, measured):
    code, out, err = cli(
        "table",
        "check",
        TINY,
        "--table",
        measured,
        "--samples",
        "3",
        "--warmup",
        "1",
        "--repeats",
        "5",
        "--rounds",
        "2",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    for key in (
        "within_10pct",
        "mape",
        "kendall_tau",
        "mean_ratio",
        "memory_within_10pct",
        "memory_mape",
        "memory_kendall_tau",
        "memory_mean_ratio",
    ):
        assert key in report
    # Memory is deterministic: the model of weights + largest working set must hold.
    assert report["memory_within_10pct"] == 1.0
    assert report["samples"] == 3 and len(report["architectures"]) == 3
    # its own noise: each model's spread over the 2 rounds, and their median
    spreads = [a["spread"] for a in report["architectures"]]
    assert all(len(a["rounds_ms"]) == 2 for a in report["architectures"]) and all(s >= 0 for s in spreads)
    assert report["noise_median"] == pytest.approx(sorted(spreads)[1]) and report["noise_max"] == max(spreads)
    assert report["machine"]["threads"] >= 1


@pytest.mark.parametrize("flag", ["--rounds", "--repeats"])
def test_check_protocol_counts_below_one_are_one_line(cli, flag):
    code, _, err = cli("table", "check", TINY, "--table", ROOT / "latency_tables" / "cpu_tiny.csv", flag, "0")
    assert code == 2 and err.count("\n") == 1 and "--repeats and --rounds >= 1" in err, err


def test_check_times_as_many_architectures_as_asked_when_the_table_rules_some_out(measured, tiny_space, tmp_path):
    from nas.profile.check import check_table

    table = pd.read_csv(measured, dtype=str, keep_default_na=False)
    first = tiny_space.sample(0).choices[0][1]  # down0, at the tiny space's largest size
    ruled_out = (table["op"] == first.op) & (table["height"] == str(tiny_space.video.latent_height))
    assert ruled_out.sum() == 1
    table.loc[ruled_out, ["latency_p50_ms", "latency_p90_ms", "working_set_mb", "samples", "status"]] = [
        "",
        "",
        "",
        "0",
        "oom",
    ]
    path = tmp_path / "partly_oom.csv"
    table.to_csv(path, index=False)
    shutil.copy(measured.with_suffix(".yaml"), path.with_suffix(".yaml"))
    report = check_table(TINY, path, samples=3, warmup=0, repeats=1, progress=False, rounds=1)
    assert report["samples"] == 3 and report["skipped"] >= 1
    assert tiny_space.sample(0).id not in {a["arch_id"] for a in report["architectures"]}


def test_the_checks_noise_is_each_models_spread_over_the_rounds():
    from nas.profile.check import noise, spread

    assert spread([10.0, 11.0, 12.0]) == pytest.approx(2 / 11) and spread([10.0]) is None
    assert noise([0.1, 0.3, None, 0.2]) == {"noise_median": pytest.approx(0.2), "noise_max": 0.3}
    assert noise([None]) == {"noise_median": None, "noise_max": None}


def test_large_models_are_kept_together_as_far_as_half_the_free_memory_allows():
    from nas.profile.check import memory_groups

    assert memory_groups([3, 3, 3, 10, 1], free_mb=12) == [[0, 1], [2], [3], [4]]
    assert memory_groups([1, 1, 1], free_mb=100) == [[0, 1, 2]]


def test_coreml_timing_needs_macos_here(cli, tmp_path):
    if sys.platform == "darwin":
        pytest.skip("this checks the Linux message")
    code, _, err = cli("profile", TINY, "--backend", "coreml", "-o", tmp_path / "t.csv")
    assert code == 2 and "needs macOS" in err and "--export-only" in err


def test_coreml_export_folder_alone_is_enough_to_time_and_import(cli, tmp_path):
    pytest.importorskip("coremltools")
    # The tiny space narrowed to two levels and one temporal op (3 keys, not 17): each key is a Core ML
    # conversion (the backbone's the slowest), and the kit's layout, copy-alone, timing and import do not
    # depend on which ops it holds (test_coreml.py converts every op, test_export.py a whole model).
    data = two_levels(yaml.safe_load(TINY.read_text()))
    data["choices"] = [{"op": "none"}, {"op": "conv1d", "kernel": 3}]
    data["architectures"] = {"reference": {s["name"]: {"op": "conv1d", "count": 1, "kernel": 3} for s in data["slots"]}}
    space_path = tmp_path / "tiny.yaml"
    space_path.write_text(yaml.safe_dump(data, sort_keys=False))
    tiny_space = SearchSpace.load(space_path)
    made = tmp_path / "made"
    code, out, err = cli("profile", space_path, "--backend", "coreml", "--export-only", made)
    assert code == 0, err
    export = tmp_path / "elsewhere" / "export"
    shutil.copytree(made, export)  # copied alone: no checkout, no space path to follow
    shutil.rmtree(made)
    manifest = pd.read_csv(export / "manifest.csv", keep_default_na=False)
    assert len(manifest) == len(table_plan(tiny_space))
    # the fixed parts are exported like the UNet: the decoder on one latent frame, the text encoder on int32 ids
    fixed = manifest.set_index("op").loc[["text_encoder", "decoder"]]
    assert (fixed["status"] == "ok").all()
    ids = np.load(export / fixed.loc["text_encoder", "inputs"].split("=", 1)[1])
    assert ids.dtype == np.int32 and ids.shape == (1, tiny_space.text_tokens)
    assert (export / "space.yaml").is_file() and "/" not in yaml.safe_load((export / "export.yaml").read_text())[
        "space_path"
    ]
    assert str(tmp_path) not in (export / "manifest.csv").read_text() + (export / "export.yaml").read_text()
    for row in manifest.to_dict("records"):
        if row["status"] == "ok":
            assert (export / row["package"]).is_dir()
            for item in row["inputs"].split(";"):
                relative = item.split("=", 1)[1]
                assert not relative.startswith("/") and (export / relative).is_file()

    # On Linux `nas table time` checks its arguments, then stops at the macOS guard: one line, exit 2.
    code, _, err = cli("table", "time", export, "--compute-units", "NPU")
    assert code == 2 and "--compute-units must be one of" in err and err.count("\n") == 1
    if sys.platform != "darwin":
        code, _, err = cli("table", "time", export, "--compute-units", "CPU_AND_NE")
        assert code == 2 and "needs macOS" in err and err.count("\n") == 1

    # The timing logic, with a stand-in for the runtime: warm-up + repeats per package, p50/p90, memory.
    stand_in = StandInCoreMLRuntime(sleep_ms=3.0, growth_mb=12.0, placement="ne")
    results = time_packages(export, "CPU_AND_GPU", warmup=2, repeats=4, runtime=stand_in, progress=False)
    ok = int((manifest["status"] == "ok").sum())
    assert len(stand_in.loads) == ok and {units for _, units in stand_in.loads} == {"CPU_AND_GPU"}
    assert stand_in.calls == ok * (2 + 4)
    timed = pd.read_csv(results, keep_default_na=False)
    timed = timed[timed["status"] == "ok"]
    assert (timed["samples"] == 4).all() and (timed["latency_p50_ms"] >= 3.0).all()
    assert (timed["latency_p90_ms"] >= timed["latency_p50_ms"]).all()
    assert (timed["working_set_mb"] == 12.0).all() and (timed["placement"] == "ne").all()
    code, out, err = cli("table", "import", export, "-o", tmp_path / "mac.csv")
    assert code == 0, err
    table = CostTable.load(tmp_path / "mac.csv")
    assert len(table.rows) == len(manifest) and table.meta["space"] == "tiny"
    assert table.meta["compute_units"] == "CPU_AND_GPU" and "not on an iPhone" in table.meta["note"]

    # No footprint from the OS: memory is written as unmeasured (never the input bytes), and the cost
    # model prices it with the estimated working set and says so in the coverage.
    time_packages(
        export, "CPU_AND_NE", warmup=0, repeats=3, runtime=StandInCoreMLRuntime(growth_mb=None), progress=False
    )
    code, out, err = cli("table", "import", export, "-o", tmp_path / "mac2.csv")
    assert code == 0, err
    table = CostTable.load(tmp_path / "mac2.csv")
    assert table.rows.loc[table.rows["status"] == "ok", "working_set_mb"].isna().all()
    model = CostModel(tiny_space, table)
    prediction = model.predict(tiny_space.architecture("reference"))
    assert prediction.coverage["memory_estimated"] >= 1 and prediction.peak_memory_mb > prediction.weights_mb


def test_error_rows_are_shown_then_retried_and_a_complete_rerun_changes_nothing(cli, tiny_space, tmp_path):
    from nas.profile.torch_profiler import TorchProfiler

    keys = table_plan(tiny_space)[OPS : OPS + 2]
    plan = tmp_path / "plan.csv"
    plan_frame(keys).to_csv(plan, index=False)
    out = tmp_path / "t.csv"
    good, bad = keys
    out.write_text(
        "op,channels,frames,height,width,params,latency_p50_ms,latency_p90_ms,working_set_mb,samples,status,"
        "message\n"
        f"{good.op},{good.channels},{good.frames},{good.height},{good.width},{good.params},1,1,1,3,ok,\n"
        f"{bad.op},{bad.channels},{bad.frames},{bad.height},{bad.width},{bad.params},,,,0,error,"
        '"ValueError: bug, in my op"\n'
    )
    meta = {**TorchProfiler(tiny_space, probe_ms=1.234).metadata(), "space": "tiny", "rows": 2}
    out.with_suffix(".yaml").write_text(yaml.safe_dump(meta))
    code, stdout, err = cli("table", "validate", out)
    assert code == 0, err
    assert "error conv3d(channels=32, frames=4, 16x16, kernel=3): ValueError: bug, in my op" in stdout
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, *FAST)
    assert code == 0, err
    table = CostTable.load(out)
    assert list(table.rows["status"]) == ["ok", "ok"] and table.rows.loc[0, "latency_p50_ms"] == 1.0
    # measured in the scale of the rows already there
    assert table.meta["probe_ms"] == 1.234
    before = {p: p.read_bytes() for p in (out, out.with_suffix(".yaml"))}
    code, stdout, err = cli("profile", TINY, "-o", out, "--plan", plan, *FAST)
    assert code == 0, err
    assert {p: p.read_bytes() for p in before} == before  # measured nothing, changed nothing


def test_failures_are_classified_and_bugs_are_errors():
    import torch

    from nas.profile.runner import failure_row

    assert failure_row(MemoryError())["status"] == "oom"
    assert failure_row(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))["status"] == "oom"
    assert failure_row(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))["status"] == "oom"
    assert failure_row(NotImplementedError("aten::foo on mps"))["status"] == "unsupported"
    row = failure_row(RuntimeError("shape '[4, -1]' is invalid for input of size 7\nmore"))
    assert row["status"] == "error" and row["message"] == "RuntimeError: shape '[4, -1]' is invalid for input of size 7"
    assert failure_row(ValueError("alloc_size must be even"))["status"] == "error"


def test_cuda_memory_limit_uses_the_allocator_not_the_address_space(tiny_space, monkeypatch):
    import resource
    import types

    import torch

    from nas.profile.torch_profiler import TorchProfiler

    profiler = TorchProfiler(tiny_space, probe_ms=1.0)
    profiler.device = torch.device("cuda", 0)
    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 2**30)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: calls.append((f, d)))
    monkeypatch.setattr(resource, "setrlimit", lambda *a: pytest.fail("RLIMIT_AS would break CUDA initialisation"))
    profiler.limit_memory(7 * 1024)
    assert calls == [(pytest.approx(8 / 80), profiler.device)]


def test_probe_scale_is_a_median_over_probes_around_the_call():
    from nas.profile.timing import SpeedScale

    class Probe:
        times = iter([0.001] * 15 + [0.004] + [0.001] * 100)  # one probe run 4x slow, as on a loaded machine

        def run(self):
            return next(self.times)

    scale = SpeedScale(Probe(), reference_ms=1.0)
    factors = []
    for _ in range(5):
        scale.before()
        scale.after()
        factors.append(scale.factor())
    assert factors == [1.0] * 5  # a single probe run no longer sets a call's scale


def test_long_calls_are_reported_as_timed_and_short_ones_in_the_probe_scale(monkeypatch):
    from nas.profile import timing

    class SlowProbe:  # reads the machine as twice as slow as the reference: short calls are halved
        def run(self):
            return 0.002

    def measure():
        return timing.time_call(lambda: time.sleep(0.01), warmup=0, repeats=3, probe=SlowProbe(), probe_ms=1.0).p50_ms

    assert measure() == pytest.approx(5, rel=0.5)
    monkeypatch.setattr(timing, "LONG_CALL_MS", 5.0)  # a 10 ms call now counts as long
    assert measure() == pytest.approx(10, rel=0.5) and measure() >= 9.9


def test_the_budget_counts_the_probing_and_sweeping_around_each_call():
    """A 1 ms op is timed with ~40 ms of probe runs and cache sweep around it: the budget is the key's time."""
    from nas.profile.timing import time_call

    timing = time_call(lambda: None, warmup=0, repeats=1000, budget_s=0.2, evict=lambda: time.sleep(0.02))
    assert 3 <= timing.samples <= 12


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_cpu_measurements_take_no_page_faults_for_memory_freed_before():
    import resource

    import torch

    from nas.profile.timing import keep_freed_memory

    def faults() -> int:  # minor page faults of allocating 64 MB, which is freed at once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(64 * 2**20 // 4)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert keep_freed_memory()
    warm = [faults() for _ in range(10)]  # the allocator settles within a few calls, as a warm-up does
    assert warm[-1] < 1000  # by default: 16,384 (4 kB pages mapped fresh) on every call


def test_every_call_starts_from_swept_caches():
    from nas.profile.timing import largest_cache_bytes, time_call

    calls = []
    timing = time_call(lambda: calls.append("run"), warmup=1, repeats=3, evict=lambda: calls.append("evict"))
    assert calls == ["evict", "run"] * 4 and timing.samples == 3
    assert largest_cache_bytes() >= 2**20
