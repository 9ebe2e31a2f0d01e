"""One noun, one name: the renamed options, and their old spellings still working with one warning."""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from pathlib import Path

import pytest

from nas.cli import build_parser
from nas.errors import NasError, NasWarning
from nas.options import renamed_keys, renamed_kwargs
from tests.command_process import NasProcess
from tests.conftest import ROOT, TINY

GENERATE = ["generate", "--model", "m", "--text-encoder", "e", "--prompt", "p", "-o", "o"]
# command line before the flag, old flag, new flag, the value given, and how it parses
DEPRECATED_FLAGS = [
    (["cost", "s.yaml", "--table", "t.csv"], "--steps", "--passes", "8", 8),
    (["search", "s.yaml", "--table", "t.csv"], "--steps", "--passes", "8", 8),
    (["table", "estimate", "s.yaml", "-o", "t.csv"], "--steps", "--passes", "8", 8),
    (GENERATE, "--steps", "--sampling-steps", "8", 8),
    (["proxy", "check"], "--steps", "--train-steps", "2,4", "2,4"),
    (["proxy", "check"], "--reference-steps", "--reference-train-steps", "8", 8),
    (["world", "make", "w"], "--backbone-steps", "--backbone-train-steps", "8", 8),
]


def _parse(argv):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = build_parser().parse_args(argv)
    return args, [str(w.message) for w in caught if issubclass(w.category, NasWarning)]


@pytest.mark.parametrize(
    "argv, old, new, text, value", DEPRECATED_FLAGS, ids=[f"{a[0]} {o}" for a, o, *_ in DEPRECATED_FLAGS]
)
def test_deprecated_flag_sets_the_new_option_and_warns_once(argv, old, new, text, value):
    dest = new.lstrip("-").replace("-", "_")
    args, messages = _parse([*argv, old, text])
    assert getattr(args, dest) == value and messages == [f"{old} is deprecated; use {new}"]
    args, messages = _parse([*argv, new, text])
    assert getattr(args, dest) == value and messages == []


def test_deprecated_flag_prints_one_line_on_the_command_line(cli, tmp_path):
    code, out, err = cli("cost", tmp_path / "missing.yaml", "--table", tmp_path / "t.csv", "--steps", "4")
    lines = err.splitlines()
    assert code == 2 and lines[0] == "nas: warning: --steps is deprecated; use --passes"
    assert len(lines) == 2 and lines[1].startswith("nas: error: ")


def test_renamed_keys_moves_old_keys_and_warns_once():
    with pytest.warns(NasWarning, match="where: sample_steps is deprecated; use sampling_steps") as caught:
        assert renamed_keys({"sample_steps": 2, "lr": 1}, {"sample_steps": "sampling_steps"}, "where") == {
            "lr": 1,
            "sampling_steps": 2,
        }
    assert len(caught) == 1
    with pytest.raises(NasError, match="give only sampling_steps"):
        renamed_keys({"sample_steps": 2, "sampling_steps": 3}, {"sample_steps": "sampling_steps"}, "where")


def test_old_budgets_steps_key_loads_as_passes_with_one_warning(tmp_path):
    from nas.space import SearchSpace

    text = (Path(__file__).parents[1] / "search_spaces" / "tiny.yaml").read_text()
    assert "\n  passes: 4\n" in text
    old = tmp_path / "old.yaml"
    old.write_text(text.replace("\n  passes: 4\n", "\n  steps: 4\n"))
    with pytest.warns(NasWarning, match=re.escape(f"{old}: budgets: steps is deprecated; use passes")) as caught:
        assert SearchSpace.load(old).budgets["passes"] == 4
    assert len(caught) == 1
    both = tmp_path / "both.yaml"
    both.write_text(text.replace("\n  passes: 4\n", "\n  passes: 4\n  steps: 4\n"))
    with pytest.raises(NasError, match="give only passes"):
        SearchSpace.load(both)


def test_renamed_keyword_argument_still_works_with_one_warning():
    @renamed_kwargs(steps="passes")
    def cost(arch, passes=1):
        return arch, passes

    with pytest.warns(NasWarning, match=r"cost\(\): steps is deprecated; use passes") as caught:
        assert cost("a", steps=4) == ("a", 4)
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cost("a", passes=3) == ("a", 3)


@pytest.mark.parametrize("module", ["proxies", "zero_cost", "ground_truth", "proxy_check", "clips"])
def test_quality_modules_keep_their_old_search_path_for_one_release(module, monkeypatch):
    monkeypatch.delitem(sys.modules, f"nas.search.{module}", raising=False)
    with pytest.warns(
        NasWarning, match=rf"^nas\.search\.{module} is deprecated; use nas\.quality\.{module}$"
    ) as caught:
        old = importlib.import_module(f"nas.search.{module}")
    assert len(caught) == 1
    assert old is importlib.import_module(f"nas.quality.{module}")  # the same module: registries, classes


def test_proxy_names_keep_their_old_search_import_for_one_release():
    import nas.quality

    with pytest.warns(NasWarning, match="^nas.search.register_proxy is deprecated; use nas.quality.register_proxy$"):
        from nas.search import register_proxy
    assert register_proxy is nas.quality.register_proxy
    with pytest.raises(ImportError):
        from nas.search import no_such_name  # noqa: F401


def test_latency_table_is_the_deprecated_name_of_cost_table():
    import nas.cost.table as table

    with pytest.warns(NasWarning, match="LatencyTable is deprecated; use CostTable") as caught:
        from nas.cost.table import LatencyTable
    assert LatencyTable is table.CostTable and len(caught) == 1


def test_torch_sidecar_names_its_torch_device_and_old_ones_still_load(tmp_path):
    import shutil

    from nas.cost.table import CostTable

    shipped = Path(__file__).parents[1] / "latency_tables" / "cpu_tiny"
    assert CostTable.load(shipped.with_suffix(".csv")).meta["torch_device"] == "cpu"
    old = tmp_path / "old.csv"
    shutil.copy(shipped.with_suffix(".csv"), old)
    text = shipped.with_suffix(".yaml").read_text()
    old.with_suffix(".yaml").write_text(text.replace("torch_device: cpu", "compute_units: cpu"))
    meta = CostTable.load(old).meta
    assert meta["torch_device"] == "cpu" and "compute_units" not in meta
    old.with_suffix(".yaml").write_text(text.replace("torch_device: cpu\n", ""))
    with pytest.raises(NasError, match="missing key.*torch_device"):
        CostTable.load(old)


def test_adversarial_config_reads_its_old_steps_key_as_sampling_steps(tmp_path):
    from nas.train.config import AdversarialConfig, load_config

    old = tmp_path / "adversarial.yaml"
    old.write_text("stage: adversarial\ninit: runs/d\ndata: d\nout: o\nsteps: 2\n")
    with pytest.warns(NasWarning, match="steps is deprecated; use sampling_steps") as caught:
        assert load_config(AdversarialConfig, old, {}).sampling_steps == 2
    assert len(caught) == 1
    with pytest.warns(NasWarning, match="--set: steps is deprecated; use sampling_steps"):
        assert (
            load_config(AdversarialConfig, None, {"init": "i", "data": "d", "out": "o", "steps": 3}).sampling_steps == 3
        )


def test_distill_proxy_reads_its_old_steps_option_as_train_steps():
    from nas.quality.proxies import check_options, get_proxy

    distill = get_proxy("distill")
    with pytest.warns(NasWarning, match="--proxy-option: steps is deprecated; use train_steps") as caught:
        assert check_options(distill, {"steps": "4", "clips": 2}) == {"train_steps": 4, "clips": 2}
    assert len(caught) == 1


def test_old_budgets_memory_mb_key_loads_as_peak_memory_mb_with_one_warning(tmp_path):
    from nas.search.study import Budgets
    from nas.space import SearchSpace

    text = (Path(__file__).parents[1] / "search_spaces" / "tiny.yaml").read_text()
    assert "\n  peak_memory_mb: 512\n" in text
    old, new, both = tmp_path / "old.yaml", tmp_path / "new.yaml", tmp_path / "both.yaml"
    old.write_text(text.replace("\n  peak_memory_mb: 512\n", "\n  memory_mb: 512\n"))
    new.write_text(text)
    message = re.escape(f"{old}: budgets: memory_mb is deprecated; use peak_memory_mb")
    with pytest.warns(NasWarning, match=message) as caught:
        space = SearchSpace.load(old)
    assert len(caught) == 1
    assert space.budgets == SearchSpace.load(new).budgets and Budgets.for_space(space).peak_memory_mb == 512
    both.write_text(text.replace("\n  peak_memory_mb: 512\n", "\n  peak_memory_mb: 512\n  memory_mb: 512\n"))
    with pytest.raises(NasError, match="give only peak_memory_mb"):
        SearchSpace.load(both)


def test_budgets_take_their_old_memory_mb_keyword_with_one_warning(tiny_space):
    from nas.search.study import Budgets

    with pytest.warns(NasWarning, match=r"for_space\(\): memory_mb is deprecated; use peak_memory_mb") as caught:
        assert Budgets.for_space(tiny_space, memory_mb=100).peak_memory_mb == 100
    assert len(caught) == 1


def test_prediction_memory_mb_is_the_deprecated_name_of_peak_memory_mb(tiny_space):
    from nas.cost.cost_model import CostModel
    from nas.cost.table import CostTable

    table = CostTable.load(Path(__file__).parents[1] / "latency_tables" / "cpu_tiny.csv")
    prediction = CostModel(tiny_space, table).predict(tiny_space.architecture("reference"))
    assert "memory_mb" not in prediction.as_dict() and prediction.as_dict()["peak_memory_mb"] > 0
    with pytest.warns(NasWarning, match="Prediction.memory_mb is deprecated; use peak_memory_mb") as caught:
        assert prediction.memory_mb == prediction.peak_memory_mb
    assert len(caught) == 1


def test_world_recipe_takes_its_old_backbone_steps_keyword_with_one_warning():
    from dataclasses import asdict

    from nas.data.world import WorldRecipe

    with pytest.warns(NasWarning, match="backbone_steps is deprecated; use backbone_train_steps") as caught:
        recipe = WorldRecipe(backbone_steps=7, clips=9)
    assert len(caught) == 1 and recipe == WorldRecipe(backbone_train_steps=7, clips=9)
    assert "backbone_steps" not in asdict(recipe)


def test_proxy_check_functions_take_their_old_step_keywords_with_one_warning_each(monkeypatch, tiny_space, tmp_path):
    from nas.quality import proxy_check as check

    seen = {}

    def fake_check(space, world, proxies, samples, seed, train_steps, reference, reference_train_steps, *rest, **kw):
        seen.update(train_steps=train_steps, reference_train_steps=reference_train_steps)
        return {}

    with monkeypatch.context() as patch:
        patch.setattr(check, "proxy_check", fake_check)
        patch.setattr(check, "write_outputs", lambda report, out: {})
        with pytest.warns(NasWarning) as caught:
            check.check_proxies(tmp_path, TINY, proxies=("params",), reference="replay", steps="2,4", reference_steps=9)
    assert seen == {"train_steps": (2, 4), "reference_train_steps": 9}
    assert [str(w.message) for w in caught] == [
        "check_proxies(): steps is deprecated; use train_steps",
        "check_proxies(): reference_steps is deprecated; use reference_train_steps",
    ]
    with pytest.warns(NasWarning) as caught, pytest.raises(NasError, match="--train-steps must be positive"):
        check.proxy_check(tiny_space, None, ("params",), reference="replay", proxy_steps=(0,), reference_steps=9)
    assert [str(w.message) for w in caught] == [
        "proxy_check(): proxy_steps is deprecated; use train_steps",
        "proxy_check(): reference_steps is deprecated; use reference_train_steps",
    ]


def _old_column_table(tmp_path, name="old.csv"):
    """The shipped tiny table with its working_set_mb column under the old name memory_mb."""
    import shutil

    shipped = Path(__file__).parents[1] / "latency_tables" / "cpu_tiny.csv"
    header, _, body = shipped.read_text().partition("\n")
    assert ",working_set_mb," in header
    old = tmp_path / name
    old.write_text(header.replace(",working_set_mb,", ",memory_mb,") + "\n" + body)
    shutil.copy(shipped.with_suffix(".yaml"), old.with_suffix(".yaml"))
    return shipped, old


def test_old_memory_mb_table_column_reads_as_working_set_mb_and_prices_the_same(tmp_path, tiny_space):
    import numpy as np

    from nas.cost.cost_model import CostModel
    from nas.cost.table import CostTable

    shipped, old = _old_column_table(tmp_path)
    before = old.read_bytes()
    with pytest.warns(NasWarning) as caught:
        table = CostTable.load(old)
    assert [str(w.message) for w in caught] == [f"{old}: column memory_mb is deprecated; use working_set_mb"]
    assert old.read_bytes() == before  # read, never rewritten
    new = CostTable.load(shipped)
    assert "memory_mb" not in table.rows.columns
    assert table.rows.equals(new.rows)
    old_model, new_model = CostModel(tiny_space, table), CostModel(tiny_space, new)
    for architecture in [tiny_space.architecture("reference"), *(tiny_space.sample(seed) for seed in range(20))]:
        assert old_model.predict(architecture).as_dict() == new_model.predict(architecture).as_dict()
    choices = np.stack([tiny_space.encode(tiny_space.sample(seed)) for seed in range(50)])
    for got, want in zip(old_model.price(choices), new_model.price(choices)):
        np.testing.assert_array_equal(got, want)
    # saved again, it is in today's format
    table.save(tmp_path / "saved.csv")
    assert (tmp_path / "saved.csv").read_text().splitlines()[0] == shipped.read_text().splitlines()[0]


def test_old_table_column_is_one_warning_line_on_the_command_line(cli, tmp_path):
    _, old = _old_column_table(tmp_path)
    code, out, err = cli("table", "validate", old)
    assert code == 0 and out.startswith(f"ok  {old}: ")
    assert err == f"nas: warning: {old}: column memory_mb is deprecated; use working_set_mb\n"
    # a search reads its table more than once, and says it once
    _, old = _old_column_table(tmp_path, "searched.csv")
    code, out, err = cli("search", TINY, "--table", old, "--trials", "2", "--out", tmp_path / "run")
    assert code == 0, err
    assert [line for line in err.splitlines() if "deprecated" in line] == [
        f"nas: warning: {old}: column memory_mb is deprecated; use working_set_mb"
    ]


def test_table_with_both_names_of_a_column_is_refused(tmp_path):
    from nas.cost.table import CostTable

    _, old = _old_column_table(tmp_path)
    lines = old.read_text().splitlines()
    old.write_text("\n".join([lines[0] + ",working_set_mb"] + [line + ",1" for line in lines[1:]]) + "\n")
    with pytest.raises(NasError, match="column memory_mb and working_set_mb are the same column; give only"):
        CostTable.load(old)


def test_key_cost_memory_mb_is_the_deprecated_name_of_working_set_mb():
    from nas.cost.cost_model import KeyCost

    cost = KeyCost(1.0, 2.5, "ok", "exact")
    with pytest.warns(NasWarning, match="KeyCost.memory_mb is deprecated; use working_set_mb") as caught:
        assert cost.memory_mb == cost.working_set_mb == 2.5
    assert len(caught) == 1


def test_search_workers_do_not_repeat_the_parents_warnings(tmp_path):
    """Spawned search workers load the same table: the deprecation is said once, as one line, by the parent."""
    _, old = _old_column_table(tmp_path)
    args = ["search", TINY, "--table", old, "--trials", "4", "--workers", "2", "--out", tmp_path / "run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    stderr = tmp_path / "stderr.txt"
    # `python -m nas ARGS` forked warm; its workers come from a forkserver of its own, writing to its stderr
    code = NasProcess(args, cwd=ROOT, env=env, stderr=stderr).wait(timeout=300)
    assert code == 0, stderr.read_text()[-2000:]
    warned = [line for line in stderr.read_text().splitlines() if "warn" in line.lower()]
    deprecated = [line for line in warned if "deprecated" in line]
    assert deprecated == [f"nas: warning: {old}: column memory_mb is deprecated; use working_set_mb"], warned
    # the table's lack of fixed-part rows (if it lacks them) is said once too
    assert len(warned) == 1 + sum("no row for this space's" in line for line in warned) <= 2, warned
