"""--plugin modules reach every process that needs them: the profiler's worker, search workers, build."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from nas import NasError, get_op, plugins
from nas.cost.plan import plan_frame, table_plan
from nas.cost.roofline import CHIPS, estimate_table
from nas.space import SearchSpace
from tests.conftest import ROOT, TINY

PLUGIN = '''
"""A user's op, known only to processes that import this module."""
from nas import register_op
from nas.ops.conv import Conv1d


@register_op
class PlugConv(Conv1d):
    """conv1d under a name no installed package registers."""

    name = "plugconv"
'''


def nas(tmp_path, *args, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "OMP_NUM_THREADS": "1"}
    env.pop("NAS_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "nas", "--plugin", "user_plugin", *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_loaded_plugins_reach_a_child_process(tmp_path, monkeypatch):
    (tmp_path / "user_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NAS_PLUGINS", "")  # restored after the test
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(tmp_path)]))
    plugins.load(["user_plugin"])
    assert plugins.loaded() == ["user_plugin"] and get_op("plugconv").name == "plugconv"
    child = subprocess.run(
        [sys.executable, "-c", "from nas.ops import get_op; print(get_op('plugconv').__module__)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.stdout.split() == ["user_plugin"], child.stderr
    with pytest.raises(NasError, match="--plugin no_such_plugin: cannot import"):
        plugins.load(["no_such_plugin"])


@pytest.mark.heavy  # seven fresh interpreters (CLI runs and the workers they spawn): minutes on a loaded CPU
def test_plugin_op_through_build_profile_and_two_search_workers(tmp_path):
    (tmp_path / "user_plugin.py").write_text(PLUGIN)
    data = yaml.safe_load(TINY.read_text())
    data["choices"] = [{"op": "none"}, {"op": "plugconv", "kernel": 3}]
    data["slots"] = data["slots"][:3]
    data["architectures"] = {
        "reference": {s["name"]: {"op": "plugconv", "count": 1, "kernel": 3} for s in data["slots"]}
    }
    space = tmp_path / "plug.yaml"
    space.write_text(yaml.safe_dump(data, sort_keys=False))

    built = nas(tmp_path, "build", space, "--device", "meta", "--json")
    assert built.returncode == 0, built.stderr

    # plan and table made here with conv1d, whose keys and prices plugconv shares, renamed: this process has no plugin
    twin = SearchSpace.from_dict(
        {**data, "choices": [{"op": "none"}, {"op": "conv1d", "kernel": 3}], "architectures": {}}
    )
    plan = tmp_path / "plan.csv"
    keys = plan_frame(table_plan(twin))
    keys[keys["op"] == "conv1d"].head(1).replace({"op": {"conv1d": "plugconv"}}).to_csv(plan, index=False)
    table = tmp_path / "measured.csv"
    profiled = nas(
        tmp_path, "profile", space, "--plan", plan, "-o", table, "--warmup", "1", "--repeats", "2", "--budget", "0.1"
    )
    assert profiled.returncode == 0, profiled.stderr  # the measuring worker (a child process) knew the op
    assert pd.read_csv(table)["status"].tolist() == ["ok"]

    estimated = estimate_table(twin, CHIPS["a18-pro-ne"])
    estimated.rows["op"] = estimated.rows["op"].replace({"conv1d": "plugconv"})
    estimated.save(tmp_path / "estimated.csv")
    searched = nas(
        tmp_path,
        "search",
        space,
        "--table",
        tmp_path / "estimated.csv",
        "--trials",
        "6",
        "--workers",
        "2",
        "--storage",
        f"journal:{tmp_path / 'study.log'}",
        "--out",
        tmp_path / "run",
        "--latency-budget",
        "1e9",
        "--json",
    )
    assert searched.returncode == 0, searched.stderr  # both search workers (child processes) knew the op
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert (
        len(trials) == 6
        and trials[["down0", "down1", "down2"]].apply(lambda c: c.str.startswith("plugconv")).any().any()
    )
