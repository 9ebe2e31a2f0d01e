"""The tiny world and `nas proxy check` end to end, small: a world is made, proxies are checked against
its ground truth, and the ground truth is shown to be independent of the proxy (another seed,
another data order, held-out clips no proxy saw) -- while the old replay reference is caught."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

WORLD = ROOT / "search_spaces" / "world.yaml"
SMALL_REFERENCE = [
    "--reference-option",
    "eval_timesteps=3",
    "--reference-option",
    "sampling_steps=2",
    "--reference-option",
    "samples_per_caption=1",
    "--reference-option",
    "batch=2",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from nas.cli import main

    folder = tmp_path_factory.mktemp("world") / "w"
    assert (
        main(
            [
                "world",
                "make",
                str(folder),
                "--space",
                str(WORLD),
                "--clips",
                "8",
                "--test-clips",
                "2",
                "--position-clips",
                "2",
                "--content",
                "digits",
                "--backbone-train-steps",
                "6",
                "--json",
            ]
        )
        == 0
    )
    return folder


def assert_independent(report: dict) -> None:
    """The reference's run differs from the distill proxy's in seed, data order and evaluation clips."""
    proxy, ref = report["proxy_provenance"], report["reference"]["provenance"]
    assert proxy["seed"] != ref["seed"]
    common = min(len(proxy["order"]), len(ref["order"]))
    assert common > 0 and proxy["order"][:common] != ref["order"][:common]
    seen_by_proxy = set(proxy["train_clips"]) | set(proxy["eval_clips"])
    assert ref["eval_clips"] and not seen_by_proxy & set(ref["eval_clips"])


def test_world_is_trained_and_reproducible_in_its_record(world, cli):
    info = json.loads((world / "world.json").read_text())
    assert info["backbone"]["held_out_loss_after"] < info["backbone"]["held_out_loss_before"]
    assert len(info["test_captions_unseen"]) == 2  # every test caption is a combination no search clip has
    assert info["motion_calibration"]["direction_cosine"] > 0.8  # the latent centroid follows the true motion
    code, _, err = cli("world", "make", world, "--space", WORLD)
    assert code == 2 and err.count("\n") == 1 and "not empty" in err


def test_proxy_check_against_independent_ground_truth(world, cli, tmp_path):
    code, out, err = cli(
        "proxy",
        "check",
        "--world",
        world,
        "--samples",
        4,
        "--train-steps",
        1,
        "--reference-train-steps",
        10,
        "--proxy",
        "params",
        "--proxy",
        "tsens",
        "--proxy",
        "distill",
        "--cache",
        "none",
        *SMALL_REFERENCE,
        "--out",
        tmp_path / "check",
    )
    assert code == 0, err
    report = json.loads((tmp_path / "check" / "check.json").read_text())
    assert report["reference"]["kind"] == "ground-truth" and report["reference"]["train_steps"] == 10
    assert_independent(report)
    assert report["independence_problems"] == []
    labels = [a["label"] for a in report["architectures"]]
    assert labels[0] == "all none" and len(labels) == 4
    row = report["architectures"][0]
    assert row["ref_denoise_loss"] > 0 and row["reference_s"] > 0 and row["reference2_s"] > 0
    assert 0 <= row["ref_direction_accuracy"] <= 1 and 0 <= row["ref2_positions_direction_accuracy"] <= 1
    assert report["reference"]["seeds"] == [7919, 31337] and set(report["ceilings"]) == {
        "denoise",
        "motion",
        "positions",
    }
    for r in report["results"]:  # every proxy's tau sits beside its metric's ceiling
        assert r["ceiling"] == report["ceilings"][r["metric"]]
    names = {(r["proxy"], r["metric"]) for r in report["results"]}
    assert {("params", "denoise"), ("distill@1", "motion"), ("combo", "denoise")} <= names
    for r in report["results"]:
        assert r["relative_cost"] >= 0 and len(r["tau_ci90"]) == 2
    assert (tmp_path / "check" / "scatter.png").stat().st_size > 0
    assert "tau" in out and "ceiling" in out and "recommended on motion" in out


def test_replayed_reference_fails_the_independence_check(world, cli, tmp_path):
    code, out, _ = cli(
        "proxy",
        "check",
        "--world",
        world,
        "--samples",
        4,
        "--train-steps",
        1,
        "--reference",
        "replay",
        "--proxy",
        "params",
        "--proxy",
        "distill",
        "--cache",
        "none",
        "--out",
        tmp_path / "replay",
    )
    assert code == 0 and "not independent" in out
    report = json.loads((tmp_path / "replay" / "check.json").read_text())
    assert report["independence_problems"]
    with pytest.raises(AssertionError):
        assert_independent(report)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proxy-option", "train_steps=-1"], "train_steps=-1: expected a positive whole number"),
        (["--proxy-option", "clips=1"], "clips must be >= 2"),
        (["--proxy-option", "bogus=1"], "none of the checked proxies"),
        (["--proxy", "vibes"], "unknown proxy 'vibes'"),
        (["--train-steps", "a,b"], "expected comma-separated step counts"),
        (["--reference-option", "bogus=1"], "the ground truth takes lr, batch"),
        (["--reference-option", "lr=fast"], "lr must be a number, got 'fast'"),
    ],
)
def test_bad_check_options_are_one_line_errors(world, cli, tmp_path, args, message):
    code, _, err = cli(
        "proxy", "check", "--world", world, "--samples", 4, "--proxy", "synflow", *args, "--out", tmp_path
    )
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_ground_truth_needs_a_world(cli, tmp_path):
    code, _, err = cli("proxy", "check", WORLD, "--out", tmp_path)
    assert code == 2 and "needs a world" in err
    code, _, err = cli("proxy", "check", "--world", tmp_path / "nowhere", "--out", tmp_path)
    assert code == 2 and "nas world make" in err


def test_world_refuses_another_recipe_version_and_bad_content(world, cli, tmp_path):
    """An old world folder is one line, exit 2 (the version check in World); so are --content and --digits."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(world, old)
    info = json.loads((old / "world.json").read_text())
    info.pop("recipe_version")  # as a world of recipe 1 was written
    (old / "world.json").write_text(json.dumps(info))
    code, _, err = cli("proxy", "check", "--world", old, "--samples", 4, "--proxy", "params", "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "recipe version 1" in err, err
    small = tmp_path / "long.yaml"  # 8 frames of 64x64 px: no room for a digit moving 1.5 latent px a frame
    small.write_text(WORLD.read_text().replace("frames: 4", "frames: 8"))
    for args, message in (
        (["--content", "letters"], "--content must be one of shapes, digits, both"),
        (["--content", "digits", "--digits", "11"], "--digits must be 1 to 10"),
        (["--space", small], "cannot draw"),
    ):
        code, _, err = cli("world", "make", tmp_path / "new", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "new").exists()


def test_world_has_digit_captions_and_unseen_positions(world):
    from nas.data.world import SEEN_OFFSETS, UNSEEN_OFFSETS, World

    w = World(world)
    search, test, positions = (w.test_motion(p) for p in ("search", "test", "positions"))
    assert all(c.startswith("the digit ") and " moving " in c for c in search["caption"])
    assert not set(test["caption"]) & set(search["caption"])  # unseen combinations
    assert set(positions["caption"]) <= set(search["caption"])  # seen captions ...

    def offsets(frame):  # ... at starting offsets across the motion no search clip has (latent px)
        across = [r.start_y_px if r.direction in ("left", "right") else r.start_x_px for r in frame.itertuples()]
        return {round((a - 32) / 8, 2) for a in across}

    assert offsets(search) <= set(SEEN_OFFSETS) and offsets(positions) <= set(UNSEEN_OFFSETS)
    speeds = (search["dx_px"] ** 2 + search["dy_px"] ** 2) ** 0.5 / 8
    assert speeds.min() >= 1  # at least one latent pixel a frame


def test_ground_truth_motion_reads_the_samples_from_its_fixed_noise(world):
    """Same seed, same noises, same values; the other seed's noises (same captions) give other values --
    a motion metric that read the caption or the real clip instead of the sample would not change."""
    import numpy as np

    from nas.data.world import World
    from nas.quality.ground_truth import GroundTruth
    from nas.quality.proxy_check import check_architectures

    w = World(world)
    options = {"train_steps": 2, "batch": 2, "sampling_steps": 2, "samples_per_caption": 2}
    first, second = GroundTruth(w, seed=1, **options), GroundTruth(w, seed=2, **options)
    label, architecture = check_architectures(w.space(), 4)[1]  # a design with temporal layers
    assert label != "all none"
    model = first.train(architecture)
    values = first.motion(model, per_sample=True)
    again = first.motion(model, per_sample=True)
    assert all(np.array_equal(values[k], again[k]) for k in values)
    assert len(values["direction_accuracy"]) == 2 * 2  # 2 test captions x 2 samples each
    first.pools = {pool: (text, second.pools[pool][1], *rest) for pool, (text, _, *rest) in first.pools.items()}
    swapped = first.motion(model, per_sample=True)
    for key in ("dynamic_degree", "temporal_consistency", "positions_speed_error"):
        assert not np.allclose(values[key], swapped[key]), key


@pytest.mark.parametrize("proxy", ["params", "gradnorm", "distill"])
def test_search_output_says_how_its_proxy_was_validated(proxy):
    from nas.quality.proxies import get_proxy
    from nas.search.job import describe

    summary = {
        "space": "tiny",
        "table": "t.csv",
        "provenance": "measured",
        "proxy": proxy,
        "sampler": "nsga2",
        "budgets": {"latency_ms": 400.0, "peak_memory_mb": 512.0, "passes": 4},
        "generation": {"decode": "per_frame", "complete": True, "missing": []},
        "feasible_front": False,
        "pareto": 0,
    }
    line = describe(summary).splitlines()[1]
    assert line == f"quality proxy {proxy}: {get_proxy(proxy).validation}" and "validated" in line
    assert "quality proxy" not in describe({**summary, "proxy": "none"})


def test_ground_truth_trains_and_samples_on_the_backbones_schedule_without_clipping(world):
    """The world's latents are unit-std with channel means near 2: a sampler that clips its x0 estimate
    to [-1, 1] (diffusers' default schedule) washes them out, so the world records SD1.5's schedule --
    the training stages' and the proxies' -- and the ground truth trains and samples on exactly that one."""
    from nas.data.schedule import SD15_SCHEDULE
    from nas.data.world import World
    from nas.pipeline import few_step_scheduler
    from nas.quality.ground_truth import GroundTruth
    from nas.quality.proxies import DistillProxy

    w = World(world)
    assert json.loads((world / "world.json").read_text())["noise_schedule"] == SD15_SCHEDULE
    truth = GroundTruth(w, train_steps=1, batch=2, samples_per_caption=1)
    assert {k: truth.scheduler.config[k] for k in SD15_SCHEDULE} == SD15_SCHEDULE
    assert few_step_scheduler(truth.scheduler.config).config.clip_sample is False
    proxy = DistillProxy(w.space(), data=w.latents, spatial_weights=w.backbone, clips=4)
    assert {k: proxy.scheduler.config[k] for k in SD15_SCHEDULE} == SD15_SCHEDULE
