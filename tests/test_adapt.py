"""nas table adapt: the fit (one scale unless a richer form predicts held-out keys better), the keys it
measures, a measured table moved to this machine, an estimate moved to its device's results, and bad input."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from nas.cost.plan import plan_frame, table_plan
from nas.cost.table import COLUMNS, CostTable
from nas.errors import NasError
from nas.profile.adapt import choose_keys, fit_correction, fit_models
from tests.conftest import ROOT, TINY, copy_table, here_table

FAST = ["--warmup", "1", "--repeats", "3", "--budget", "0.2"]
TINY_OK = int((pd.read_csv(ROOT / "latency_tables" / "cpu_tiny.csv")["status"] == "ok").sum())  # the shipped table's


def test_a_known_scale_is_found_exactly_and_predicts_every_held_out_key():
    parent = [1.0, 2.0, 5.0, 40.0, 2000.0, 9000.0]
    fit = fit_correction(
        parent, [p * 0.4 for p in parent], ["conv1d", "conv1d", "attn1d", "attn1d", "spatial", "spatial"]
    )
    assert fit.form == "scale" and fit.factors == {"all": pytest.approx(0.4)}
    assert fit.loo_error == pytest.approx(0, abs=1e-12)


def test_a_richer_form_replaces_the_scale_only_where_it_predicts_held_out_keys_better():
    parent = [100, 200, 300, 2000, 3000, 4000]  # three short calls, three of a second or more
    noise = [1.05, 0.95, 1.0, 0.97, 1.03, 1.0]
    same = fit_correction(parent, [p * n for p, n in zip(parent, noise)], ["a"] * 6)
    assert same.form == "scale" and same.candidates["regime"] > same.candidates["scale"]  # noise: the scale wins
    long_slower = [p * n * (0.6 if p >= 1000 else 1.0) for p, n in zip(parent, noise)]
    split = fit_correction(parent, long_slower, ["a"] * 6)
    assert split.form == "regime" and split.factors == {
        "long": pytest.approx(0.6, rel=0.02),
        "short": pytest.approx(1.0, rel=0.02),
    }
    assert split.loo_error < split.candidates["scale"]


def test_no_form_has_a_class_with_fewer_than_two_keys():
    """Each key must be predictable with itself left out: one key per op type rules the op form out."""
    fit = fit_correction([1, 2, 3], [2, 4, 9], ["conv1d", "attn1d", "attn3d"])
    assert fit.candidates["op"] is None and fit.candidates["regime"] is None and fit.form == "scale"
    with pytest.raises(NasError, match="at least 2 measured keys"):
        fit_correction([1.0], [2.0], ["conv1d"])


def test_a_steady_bias_of_whole_models_is_fitted_and_noise_around_none_is_not():
    """The rows over-predict every model by 6% (+-2% noise): the factor is applied and held-out models come
    within the noise. Models scattered around their predictions get no factor: it would only fit noise."""
    predicted = np.array([60.0, 70.0, 80.0, 90.0, 100.0, 110.0])
    noise = np.array([1.02, 0.98, 1.0, 1.01, 0.99, 1.0])
    biased = fit_models(predicted, predicted / 1.06 * noise)
    assert biased.applied and biased.factor == pytest.approx(1 / 1.06, rel=0.01)
    assert biased.loo_error < 0.03 < biased.rows_error
    unbiased = fit_models(predicted, predicted * np.array([1.03, 0.97, 1.02, 0.98, 1.01, 0.99]))
    assert not unbiased.applied and unbiased.factor == 1.0 and unbiased.loo_error >= unbiased.rows_error
    with pytest.raises(NasError, match="at least 2 whole architectures"):
        fit_models([1.0], [2.0])


def test_keys_cover_the_whole_model_every_op_type_and_both_ends_of_their_sizes():
    table = CostTable.load(ROOT / "latency_tables" / "cpu_snapgen_v.csv")
    whole = ["spatial", "text_encoder", "decoder"]  # the shipped table prices the whole generation
    keys = choose_keys(table, 7)
    assert [k.op for k in keys[:3]] == whole and {k.op for k in keys} == {
        *whole,
        "conv1d",
        "conv3d",
        "attn1d",
        "attn3d",
    }
    p50 = table.rows.set_index(["op", "channels", "height"])["latency_p50_ms"]
    sizes = [p50[(k.op, k.channels, k.height)] for k in keys]
    assert min(sizes) < 1000 <= max(sizes)  # both regimes: probe-scaled and absolute calls
    nine = choose_keys(table, 15)  # the three whole-model rows, then three keys of each of the four op types
    conv1d = sorted(p50[("conv1d", k.channels, k.height)] for k in nine if k.op == "conv1d")
    assert conv1d[0] == p50.loc["conv1d"].min() and conv1d[-1] == p50.loc["conv1d"].max()  # both ends of one op
    ok = int((table.rows["status"] == "ok").sum())
    with pytest.raises(NasError, match=f"only {ok} measured"):
        choose_keys(table, ok + 1)


@pytest.fixture
def scaled(tmp_path):
    """The shipped tiny table (as of this machine) and the same table with every latency x3."""
    original = here_table(ROOT / "latency_tables" / "cpu_tiny.csv", tmp_path / "original")
    rows = pd.read_csv(original, keep_default_na=False)
    rows[["latency_p50_ms", "latency_p90_ms"]] *= 3
    folder = tmp_path / "scaled"
    copy_table(original, folder)
    rows.to_csv(folder / original.name, index=False)
    return original, folder / original.name


def test_a_table_scaled_by_a_known_factor_is_adapted_back_to_what_this_machine_measures(cli, scaled, tmp_path):
    """Both tables adapted from the same measurements (the second run resumes the first's) become the same table:
    the x3 is undone by the fit, not by ignoring it. An adapt that ignored its measurements keeps the x3."""
    original, tripled = scaled
    out = tmp_path / "adapted.csv"
    code, stdout, err = cli("table", "adapt", tripled, "--samples", "4", "-o", out, *FAST)
    assert code == 0, err
    from_tripled = CostTable.load(out)
    code, _, err = cli("table", "adapt", original, "--samples", "4", "-o", out, *FAST)  # measured keys: reused
    assert code == 0, err
    from_original = CostTable.load(out)
    ours, theirs = from_tripled.meta["adapt"], from_original.meta["adapt"]
    assert ours["factors"]["all"] == pytest.approx(theirs["factors"]["all"] / 3, rel=1e-3)
    assert 0.2 < theirs["factors"]["all"] < 5  # this machine is of the kind the table was measured on
    np.testing.assert_allclose(from_tripled.rows["latency_p50_ms"], from_original.rows["latency_p50_ms"], rtol=2e-3)
    assert not np.allclose(from_tripled.rows["latency_p50_ms"], pd.read_csv(tripled)["latency_p50_ms"], rtol=0.2)
    meta = from_tripled.meta
    assert meta["provenance"] == "measured" and meta["parent"]["table"] == str(tripled)
    assert meta["parent"]["sha256"] == hashlib.sha256(tripled.read_bytes()).hexdigest()
    assert meta["machine"]["threads"] and len(ours["keys"]) == 4 and ours["loo_error"] >= 0
    assert meta["probe_ms"] == yaml.safe_load(original.with_suffix(".yaml").read_text())["probe_ms"]
    measured = CostTable.load(tmp_path / "adapted.measured.csv").lookup()  # the measurements: a table of their own
    adapted = from_original.lookup()
    assert len(measured) == 4
    for key, row in measured.items():  # a measured key carries its measurement, not a fitted value
        assert adapted[key]["latency_p50_ms"] == pytest.approx(row["latency_p50_ms"])
    assert "leave-one-out error" in stdout


def test_whole_models_scale_the_unet_rows_by_their_factor_and_leave_the_fixed_parts(cli, scaled, tmp_path):
    """Adapted twice from the same measured keys (the second run resumes them), without and with --models:
    every UNet-pass row moves by the models' factor (1 where it did not pay), the text encoder's and decoder's
    rows not at all, and the sidecar lists the timed architectures, drawn from the adapt's own seed."""
    original, _ = scaled
    out = tmp_path / "adapted.csv"
    code, _, err = cli("table", "adapt", original, "--samples", "4", "-o", out, *FAST)
    assert code == 0, err
    rows_only = CostTable.load(out).rows
    code, stdout, err = cli("table", "adapt", original, "--samples", "4", "--models", "3", "-o", out, *FAST)
    assert code == 0, err
    adapted = CostTable.load(out)
    models = adapted.meta["adapt"]["models"]
    assert models["seed"] == 1_000_000 and len(models["architectures"]) == 3
    assert models["factor"] == (models["fitted"] if models["applied"] else 1.0)
    ratio = adapted.rows["latency_p50_ms"] / rows_only["latency_p50_ms"]
    fixed = adapted.rows["op"].isin(["text_encoder", "decoder"])
    np.testing.assert_allclose(ratio[fixed], 1.0, rtol=1e-5)
    np.testing.assert_allclose(ratio[~fixed], models["factor"], rtol=2e-3)
    assert "whole models: 3 timed here" in stdout


def test_a_profile_resumed_on_an_adapted_table_keeps_its_parent_and_fit(cli, scaled, tmp_path):
    """Adding rows to an adapted table (a key the space now needs, say a fixed part) measures only those and
    keeps what the sidecar says of the others: the parent, the fit and the command that made them."""
    original, _ = scaled
    out = tmp_path / "adapted.csv"
    code, _, err = cli("table", "adapt", original, "--samples", "4", "-o", out, *FAST)
    assert code == 0, err
    before = yaml.safe_load(out.with_suffix(".yaml").read_text())
    rows = pd.read_csv(out, keep_default_na=False)
    rows[rows["op"] != "decoder"].to_csv(out, index=False)  # a key the adapted table lacks
    side = out.with_suffix(".yaml")
    side.write_text(yaml.safe_dump({**before, "rows": len(rows) - 1}))
    code, _, err = cli("profile", TINY, "--backend", "torch", "-o", out, *FAST)
    assert code == 0, err
    after = yaml.safe_load(side.read_text())
    assert after["parent"] == before["parent"] and after["adapt"] == before["adapt"]
    assert after["earlier_commands"] == [before["command"]] and after["command"].startswith("nas profile")
    assert len(pd.read_csv(out)) == len(rows)


@pytest.fixture
def results_kit(tiny_space, tiny_estimate, tmp_path):
    """The tiny estimate and a kit of four of its keys 'measured' on its device at half the estimate."""
    table = copy_table(tiny_estimate, tmp_path / "table")
    estimate = CostTable.load(table).rows
    keys = table_plan(tiny_space)[:4]
    kit = tmp_path / "kit"
    kit.mkdir()
    rows = estimate[estimate["op"].isin({k.op for k in keys})].merge(plan_frame(keys))
    rows[["latency_p50_ms", "latency_p90_ms"]] *= 0.5
    rows.assign(samples=20, placement="ne")[COLUMNS].to_csv(kit / "results.csv", index=False)
    meta = yaml.safe_load(table.with_suffix(".yaml").read_text())
    (kit / "results.yaml").write_text(
        yaml.safe_dump(
            {
                "device": "iPhone 16 Pro Max",
                "os": "iOS 18.2",
                "backend": "coreml",
                "compute_units": "CPU_AND_NE",
                "precision": meta["precision"],
                "tools": {"xcode": "16.2"},
                "date": "2026-12-01",
                "provenance": "measured",
            }
        )
    )
    (kit / "export.yaml").write_text(yaml.safe_dump({"kind": "ops", "space": "tiny", "precision": meta["precision"]}))
    return table, kit


def test_an_estimate_adapted_to_its_devices_results_takes_their_scale_and_says_it_is_adapted(
    cli, results_kit, tmp_path
):
    table, kit = results_kit
    out = tmp_path / "iphone.csv"
    code, _, err = cli("table", "adapt", table, "--results", kit, "-o", out)
    assert code == 0, err
    adapted, parent = CostTable.load(out), CostTable.load(table)
    assert adapted.meta["provenance"] == "adapted" and adapted.meta["device"] == "iPhone 16 Pro Max"
    assert adapted.meta["adapt"]["factors"] == {"all": pytest.approx(0.5, rel=1e-3)}
    assert adapted.meta["adapt"]["loo_error"] == pytest.approx(0, abs=1e-3)
    np.testing.assert_allclose(adapted.rows["latency_p50_ms"], 0.5 * parent.rows["latency_p50_ms"], rtol=2e-3)
    assert adapted.meta["calibration"] == parent.meta["calibration"]  # the estimate's own record is kept
    code, out_text, err = cli("cost", TINY, "--table", out)  # cost takes an adapted table, quietly
    assert code == 0 and "adapted" in out_text and err == "", err


def test_keys_that_disagree_on_a_correction_are_written_with_one_warning(cli, results_kit, tmp_path):
    table, kit = results_kit
    rows = pd.read_csv(kit / "results.csv", keep_default_na=False)
    rows[["latency_p50_ms", "latency_p90_ms"]] = rows[["latency_p50_ms", "latency_p90_ms"]].mul(
        [0.1, 4, 0.5, 9], axis=0
    )
    rows.to_csv(kit / "results.csv", index=False)
    code, _, err = cli("table", "adapt", table, "--results", kit, "-o", tmp_path / "t.csv")
    assert code == 0 and err.count("nas: warning: ") == 1 and "disagree with one correction" in err, err


def _kit_of_another_space(kit):
    info = yaml.safe_load((kit / "export.yaml").read_text())
    (kit / "export.yaml").write_text(yaml.safe_dump({**info, "space": "snapgen_v"}))


@pytest.mark.parametrize(
    "args, setup, message",
    [
        (["{measured}", "--samples", "99"], None, f"--samples 99, but the table has only {TINY_OK} measured (ok) rows"),
        (["{measured}", "--samples", "1"], None, "--samples must be at least 2"),
        (["{estimate}", "--samples", "4"], None, "is adapted to measurements of that device: pass them with --results"),
        (["{estimate}", "--results", "{kit}"], _kit_of_another_space, "results of space snapgen_v, but"),
        (["{estimate}", "--results", "{kit}", "--samples", "3"], None, "--samples and --models go with measuring here"),
        (["{estimate}", "--results", "{kit}", "--models", "3"], None, "--samples and --models go with measuring here"),
        (["{measured}", "--samples", "2", "--models", "1"], None, "--models must be 0 or at least 2"),
        (["{measured}", "--samples", "2", "-o", "{measured}"], None, "the output is also an input"),
        (
            ["{measured}", "--samples", "2", "--space", ROOT / "search_spaces" / "snapgen_v.yaml"],
            None,
            "space snapgen_v, but",
        ),
    ],
)
def test_bad_adapt_input_is_one_line_and_changes_no_file(cli, results_kit, tmp_path, args, setup, message):
    estimate, kit = results_kit
    measured = here_table(ROOT / "latency_tables" / "cpu_tiny.csv", tmp_path / "measured")
    if setup:
        setup(kit)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    paths = {"measured": measured, "estimate": estimate, "kit": kit}
    out = [] if "-o" in args else ["-o", tmp_path / "new.csv"]
    code, _, err = cli("table", "adapt", *[str(a).format(**paths) for a in args], *out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_space_is_found_from_the_tables_own_command(tmp_path, monkeypatch):
    from nas.profile.adapt import space_of_table

    monkeypatch.chdir(ROOT)
    table = CostTable.load(ROOT / "latency_tables" / "cpu_snapgen_v.csv")
    assert str(space_of_table(table, None)) == "search_spaces/snapgen_v.yaml"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NasError, match="name it with --space"):
        space_of_table(table, None)
