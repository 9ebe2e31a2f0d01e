"""A measured table knows its machine: nas profile records it, and the check, nas cost and nas search say in
exactly one line when this machine differs in what matters for speed, never for estimated or Core ML tables."""

import pytest
import yaml

from nas.machine import FLAGS, differences, fingerprint
from tests.conftest import ROOT, TINY, copy_table, here_table

SHIPPED = ROOT / "latency_tables" / "cpu_tiny.csv"


def test_the_fingerprint_names_cpu_flags_threads_memory_and_tools():
    import torch

    here = fingerprint("cpu")
    assert here["cpu"] and here["cores"] >= 1 and here["threads"] == torch.get_num_threads()
    assert here["memory_gb"] > 0 and here["torch"] == str(torch.__version__)
    assert all(FLAGS.match(flag) for flag in here["cpu_flags"]) and here["gpu"] is None


def test_what_counts_for_speed():
    here = fingerprint("cpu")
    assert differences(here, here, threads=True) == []
    assert differences({**here, "torch": "2.13.1"}, {**here, "torch": "2.13.0+cpu"}) == []  # a patch release
    assert differences({**here, "torch": "2.12.0"}, here) == [f"torch 2.12 -> {here['torch'][:4]}"]
    assert differences({**here, "cpu": "Intel Xeon"}, here) == [f"cpu Intel Xeon -> {here['cpu']}"]
    assert differences({**here, "cpu_flags": [*here["cpu_flags"], "amx_tile"]}, here) == ["cpu_flags amx_tile -> -"]
    assert differences({**here, "threads": 99}, here) == [] and differences({**here, "threads": 99}, here, threads=True)
    assert differences({**here, "memory_gb": 1, "os": "Linux 1.0", "python": "3.9"}, here) == []
    assert differences({"cpu": None}, here) == []  # unknown is not a difference
    assert differences({**here, "gpu": "NVIDIA H100"}, here) == ["gpu NVIDIA H100 -> none"]


def _other_machine(table, folder, provenance="measured", **changes):
    """``table`` copied into ``folder``, its sidecar saying another machine (or ``provenance``) measured it."""
    path = here_table(table, folder)
    meta = yaml.safe_load(path.with_suffix(".yaml").read_text())
    meta = {
        **meta,
        "provenance": provenance,
        "machine": {**meta["machine"], "cpu": "Intel Xeon Platinum 8480+", **changes},
    }
    path.with_suffix(".yaml").write_text(yaml.safe_dump(meta))
    return path


def warnings_of(err):
    return [line for line in err.splitlines() if line.startswith("nas: warning: ")]


def machine_warnings_of(err):
    """The warnings about the table's machine (a table without fixed-part rows is warned about too)."""
    return [line for line in warnings_of(err) if "machine" in line]


@pytest.mark.parametrize(
    "command",
    [
        ["cost", TINY, "--table", "{table}"],
        ["search", TINY, "--table", "{table}", "--trials", "2", "--out", "{out}"],
        [
            "table",
            "check",
            TINY,
            "--table",
            "{table}",
            "--samples",
            "2",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--rounds",
            "1",
        ],
    ],
    ids=["cost", "search", "check"],
)
def test_a_table_of_another_machine_is_said_in_exactly_one_line(cli, tmp_path, command):
    table = _other_machine(SHIPPED, tmp_path / "t")
    code, _, err = cli(*[str(a).format(table=table, out=tmp_path / "run") for a in command])
    assert code == 0, err
    (line,) = machine_warnings_of(err)
    assert (
        f"{table}: measured on another machine (cpu Intel Xeon Platinum 8480+ -> " in line and "nas table adapt" in line
    )


def test_same_machine_estimated_and_core_ml_tables_say_nothing(cli, tmp_path, tiny_estimate):
    same = here_table(SHIPPED, tmp_path / "same")
    estimated = _other_machine(SHIPPED, tmp_path / "estimated", provenance="estimated")
    coreml = copy_table(tiny_estimate, tmp_path / "coreml")
    side = coreml.with_suffix(".yaml")
    side.write_text(
        yaml.safe_dump({**yaml.safe_load(side.read_text()), "provenance": "measured", "machine": {"cpu": "Apple M4"}})
    )
    for table in (same, estimated, coreml):
        code, _, err = cli("cost", TINY, "--table", table)
        assert code == 0 and warnings_of(err) == [], (table, err)


def test_a_table_of_an_unknown_machine_is_said_by_cost_and_not_by_search(cli, tmp_path):
    old = copy_table(SHIPPED, tmp_path / "old")
    side = old.with_suffix(".yaml")
    meta = yaml.safe_load(side.read_text())
    meta.pop("machine", None)
    side.write_text(yaml.safe_dump(meta))
    code, _, err = cli("cost", TINY, "--table", old)
    assert code == 0 and len(machine_warnings_of(err)) == 1 and "does not say which machine measured it" in err
    code, _, err = cli("search", TINY, "--table", old, "--trials", "2", "--out", tmp_path / "run")
    assert code == 0 and machine_warnings_of(err) == [], err


def test_a_profile_records_its_machine_and_will_not_resume_on_another(cli, tiny_space, tmp_path):
    from nas.cost.plan import plan_frame, table_plan

    plan = tmp_path / "plan.csv"
    plan_frame(table_plan(tiny_space)[1:3]).to_csv(plan, index=False)
    out = tmp_path / "t.csv"
    fast = ["--warmup", "0", "--repeats", "3", "--budget", "0.1"]
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, *fast)
    assert code == 0, err
    meta = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert meta["machine"]["threads"] >= 1 and meta["machine"]["cpu"] == fingerprint()["cpu"]
    meta["machine"]["cpu"] = "Intel Xeon Platinum 8480+"
    out.with_suffix(".yaml").write_text(yaml.safe_dump(meta))
    before = out.read_bytes()
    plan_frame(table_plan(tiny_space)[1:4]).to_csv(plan, index=False)  # one key left to measure
    code, _, err = cli("profile", TINY, "-o", out, "--plan", plan, *fast)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "measured on another machine (cpu Intel" in err, err
    assert out.read_bytes() == before
