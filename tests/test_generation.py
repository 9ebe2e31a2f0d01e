"""The fixed parts of a whole generation: how a space names them, their table keys and rows, and the calibration
of the estimate on published points (stand-in workloads here; the real 17 points are a heavy check)."""

import json

import pytest
import yaml

from nas.cost.calibration import POINTS, Fit, PublishedPoint, calibrate_published, fit_points, predict_point
from nas.cost.cost_model import CostModel
from nas.cost.placement import UnitWork
from nas.cost.plan import fixed_part_key, part_fingerprint, table_plan
from nas.cost.roofline import CHIPS, KeyWork, estimate_table
from nas.cost.table import CostTable
from nas.data.tiny_models import write_tiny_models
from nas.errors import NasError
from nas.space import SearchSpace
from nas.space.generation import tiny_vae_config
from tests.conftest import ROOT, TINY

CHIP = CHIPS["a18-pro-ne"]


def space_with(generation, tmp_path, name="space.yaml"):
    data = yaml.safe_load(TINY.read_text())
    if generation is None:
        data.pop("generation")
    else:
        data["generation"] = generation
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_space):
    """The stand-ins `nas data tiny-models` writes, as a pipeline folder (vae/, text_encoder/, tokenizer/)."""
    return write_tiny_models(tmp_path_factory.mktemp("models"), width=tiny_space.cross_attention_dim)


def test_a_saved_folder_prices_as_the_built_in_config_it_was_made_from(tiny_models, tiny_space, tmp_path):
    """`tiny` is the config `nas data tiny-models` writes: the folder's decoder and text encoder share its rows."""
    folder = SearchSpace.load(space_with({"decoder": str(tiny_models), "text_encoder": str(tiny_models)}, tmp_path))
    assert folder.generation.decoder.folder == str(tiny_models / "vae")  # a pipeline folder: its vae/
    for kind in ("decoder", "text_encoder"):
        assert part_fingerprint(folder.generation.part(kind)) == part_fingerprint(tiny_space.generation.part(kind))
        assert fixed_part_key(folder, kind) == fixed_part_key(tiny_space, kind)


def test_a_pruned_decoder_has_its_own_row_and_is_missing_from_a_table_of_another(tiny_estimate, tmp_path):
    from diffusers import AutoencoderKL

    narrow = {**tiny_vae_config(), "block_out_channels": [4, 4, 8, 8]}
    AutoencoderKL(**narrow).save_pretrained(tmp_path / "pruned")
    space = SearchSpace.load(space_with({"decoder": str(tmp_path / "pruned"), "text_encoder": "tiny"}, tmp_path))
    tiny = SearchSpace.load(TINY)
    assert fixed_part_key(space, "decoder") != fixed_part_key(tiny, "decoder")
    # the table made for the tiny decoder has no row for this one: missing, not the other decoder's price
    prediction = CostModel(space, CostTable.load(tiny_estimate)).predict(space.architecture("reference"))
    assert prediction.missing == ["decoder"] and not prediction.complete
    own = CostModel(space, estimate_table(space, CHIP)).predict(space.architecture("reference"))
    full = CostModel(tiny, CostTable.load(tiny_estimate)).predict(tiny.architecture("reference"))
    decoder = {p["name"]: p for p in (own.fixed[1], full.fixed[1])}
    assert own.complete and decoder[str(tmp_path / "pruned")]["total_ms"] < decoder["tiny"]["total_ms"]
    # the API the decoder's own reports use: the same price from the table's fit, without a row
    from nas.cost.calibration import estimated_ms

    table = CostTable.load(tiny_estimate)
    per_call = estimated_ms(space, fixed_part_key(space, "decoder"), table.meta)
    assert per_call == pytest.approx(own.fixed[1]["latency_ms"], rel=1e-6)
    assert decoder[str(tmp_path / "pruned")]["weights_mb"] < decoder["tiny"]["weights_mb"]


def test_decoding_the_clip_at_once_is_one_call_with_the_clips_working_set(tiny_space, tmp_path):
    clip = SearchSpace.load(space_with({"decoder": "tiny", "text_encoder": "tiny", "decode": "clip"}, tmp_path))
    per_frame, whole = (CostModel(s, estimate_table(s, CHIP)) for s in (tiny_space, clip))
    frames = tiny_space.video.frames
    assert fixed_part_key(clip, "decoder").frames == frames and fixed_part_key(tiny_space, "decoder").frames == 1
    one, all_at_once = per_frame.fixed[1], whole.fixed[1]
    assert (one.calls, all_at_once.calls) == (frames, 1)
    assert all_at_once.working_set_mb > 2 * one.working_set_mb  # the clip's frames held at once
    assert all_at_once.weights_mb == one.weights_mb


def test_a_space_without_generation_loads_and_is_priced_with_sd15_where_it_fits(tmp_path, cli):
    """The default (SD1.5's parts) is checked when the space is priced: tiny's 32-wide cross-attention is refused
    in one line naming the key to add, while the commands that do not price load the space as before."""
    path = space_with(None, tmp_path)
    space = SearchSpace.load(path)
    assert cli("space", "show", path)[0] == 0
    code, _, err = cli("table", "plan", path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "hidden_size 768 does not match the space's cross-attention width 32" in err
    assert "the space has no 'generation' key: SD1.5's parts are the default" in err
    default = SearchSpace.load(ROOT / "search_spaces" / "snapgen_v.yaml")
    assert default.generation.decoder.name == "sd15" and default.generation.decode == "per_frame"
    with pytest.raises(NasError, match="generation.decode must be one of per_frame, clip"):
        SearchSpace.load(space_with({"decode": "batch"}, tmp_path, "bad.yaml"))
    with pytest.raises(NasError, match="generation: unknown key"):
        SearchSpace.load(space_with({"vae": "tiny"}, tmp_path, "bad2.yaml"))
    assert space.generation_given is None


def test_search_on_a_table_without_fixed_parts_says_so_once(cli, tiny_estimate, tmp_path):
    table = CostTable.load(tiny_estimate)
    bare = CostTable(table.rows[~table.rows["op"].isin(["decoder", "text_encoder"])].reset_index(drop=True), table.meta)
    path = bare.save(tmp_path / "bare.csv")
    out = tmp_path / "run"
    code, stdout, err = cli("search", TINY, "--table", path, "--trials", "3", "--out", out)
    assert code == 0, err
    warned = [line for line in err.splitlines() if "warning" in line]
    assert warned == [
        f"nas: warning: {path}: no row for this space's text_encoder and decoder: the budgets are held against the "
        f"rest of the generation only (measure them: nas profile {TINY} ..., or nas table estimate)"
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generation"]["complete"] is False and summary["generation"]["missing"] == [
        "text_encoder",
        "decoder",
    ]
    assert "text_encoder and decoder not in the table, not counted" in stdout


def test_search_outputs_break_the_generation_down(cli, tiny_estimate, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("search", TINY, "--table", tiny_estimate, "--trials", "4", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    generation = summary["generation"]
    assert generation["complete"] and generation["decoder"] == "tiny" and generation["decode"] == "per_frame"
    assert generation["fixed_ms"] == pytest.approx(generation["text_encoder_ms"] + generation["decoder_ms"])
    import pandas as pd

    pareto = pd.read_csv(out / "pareto.csv")
    passes = summary["budgets"]["passes"]
    assert (pareto["latency_ms"] - passes * pareto["unet_ms"]).round(6).eq(round(generation["fixed_ms"], 6)).all()
    pick = summary["picks"][0]
    assert pick["latency_ms"] == pytest.approx(passes * pick["unet_ms"] + generation["fixed_ms"])
    assert "text encoder + 4 UNet passes + decoder (per frame)" in stdout


# ---------------------------------------------------------------- calibration on published points
def stand_in(flops: float, moved: float, ops: int = 10) -> KeyWork:
    """A workload of ``ops`` equal Neural Engine ops."""
    unit = UnitWork(flops, 0.0, ops, [flops / ops] * ops, [moved / ops] * ops, [0.0] * ops)
    return KeyWork(unit, UnitWork(), 0.0, 0.0, 0, 0.0, "ne", "")


WORKS = {"compute": stand_in(2e12, 1e8), "memory": stand_in(1e9, 4e9), "many_ops": stand_in(1e10, 1e7, ops=2000)}


def stand_in_points(truth: Fit) -> list[PublishedPoint]:
    chips = ("a14-ne", "a16-ne", "m2-ne")
    points = []
    for chip in chips:
        for name in WORKS:
            for stack in ("2023", "2022") if name == "compute" else ("2023",):
                point = PublishedPoint(f"{name}-{chip}-{stack}", chip, 1.0, ((name, 1),), stack, name, "stand-in")
                ms = predict_point(point, truth, WORKS.__getitem__)
                points.append(PublishedPoint(point.name, chip, ms, point.calls, stack, name, "stand-in"))
    return points


def test_the_fit_recovers_known_parameters_and_leaves_each_point_out():
    truth = Fit(efficiency=0.3, dispatch_ms=0.02, stack_2022=1.5)
    points = stand_in_points(truth)
    fit, block = calibrate_published(points, WORKS.__getitem__)
    assert fit.efficiency == pytest.approx(0.3, rel=1e-3) and fit.dispatch_ms == pytest.approx(0.02, rel=1e-3)
    assert fit.stack_2022 == pytest.approx(1.5, rel=1e-3)
    assert block["leave_one_out_mean_abs_error_pct"] < 0.5 and block["parameters"] == 3
    # one point published 30% slow: its own held-out prediction says so, most; the points its bias cannot reach
    # (memory-bound ones) do not move
    slow = [
        PublishedPoint(p.name, p.chip, p.ms * 1.3, p.calls, p.stack, p.what, p.source) if i == 0 else p
        for i, p in enumerate(points)
    ]
    _, block = calibrate_published(slow, WORKS.__getitem__)
    errors = {row["point"]: row["held_out_error_pct"] for row in block["points"]}
    assert errors[points[0].name] == pytest.approx(-100 * 0.3 / 1.3, abs=2.0)
    assert abs(errors[points[0].name]) == max(abs(e) for e in errors.values())
    assert all(abs(e) < 1 for name, e in errors.items() if name.startswith("memory"))
    with pytest.raises(NasError, match="2 points cannot fit 3 parameters"):
        fit_points(points[:2], WORKS.__getitem__)  # a 2023 and a 2022 point: three parameters to fit


def test_the_published_points_name_their_source_and_settings():
    assert len(POINTS) >= 5 and len({p.name for p in POINTS}) == len(POINTS)
    for point in POINTS:
        assert point.chip in CHIPS and point.ms > 0 and "apple/ml-stable-diffusion" in point.source
        assert "it/s" in point.what or " s:" in point.what


def test_the_shipped_iphone_sidecar_holds_out_its_published_points():
    table = CostTable.load(ROOT / "latency_tables" / "iphone16promax_ne_snapgen_v.csv")
    calibration = table.meta["calibration"]
    points = calibration["points"]
    assert len(points) >= 5 and all(p["source"] for p in points)
    mean = sum(abs(p["held_out_error_pct"]) for p in points) / len(points)
    assert calibration["leave_one_out_mean_abs_error_pct"] == pytest.approx(mean, abs=0.05)
    assert calibration["parameters"] < len(points)
    assert "calibrate published" in table.meta["command"]
    plan = table_plan(SearchSpace.load(ROOT / "search_spaces" / "snapgen_v.yaml"))
    assert set(table.lookup()) == set(plan)  # every key of the space, the fixed parts included


@pytest.mark.heavy
def test_the_real_calibration_holds_out_within_twenty_percent():
    fit, block = calibrate_published()
    assert block["leave_one_out_mean_abs_error_pct"] <= 20.0
    assert 0 < fit.efficiency <= 1
