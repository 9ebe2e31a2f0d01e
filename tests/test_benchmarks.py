"""The benchmark scripts measure what they claim (tiny space, our model, in-process).

Each script normally runs every model in a fresh process (that start-up alone is ~10 s) and
the comparison model (SD1.5 + MotionAdapter, 1.3B parameters) takes ~30 s and ~6 GB just to
build, so whole script runs are heavy checks.
"""

import argparse
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY

sys.path.insert(0, str(ROOT / "benchmarks"))

import generation  # noqa: E402
import unet_forward  # noqa: E402


def arguments(**overrides) -> argparse.Namespace:
    values = {
        "space": TINY,
        "frames": None,
        "height": None,
        "width": None,
        "device": "cpu",
        "threads": None,
        "decoder": None,
        "repeats": 1,
        "warmup": 0,
    }
    return argparse.Namespace(**{**values, **overrides})


def test_forward_measures_latency_and_memory_of_one_call():
    row = unet_forward.measure("reference", arguments(repeats=2))
    assert row["params"] > 0 and len(row["latency_ms_all"]) == 2 and row["latency_ms"] > 0
    assert row["peak_memory_mb"] >= row["memory_after_build_mb"] > 0


def test_generation_runs_the_4_step_loop_and_decodes_every_frame():
    row = generation.generate("reference", arguments(frames=2, height=64, width=64))
    assert row["steps"] == row["unet_calls"] == 4 and row["guidance"] is None and row["batch_per_call"] == 1
    assert row["unet_s"] > 0 and row["vae_decode_s"] > 0 and row["total_s"] >= row["unet_s"]
    # ours decodes with the light decoder, then (timed apart) with SD's: the two rows of the comparison
    assert row["decoder"] == "light" and 0 < row["decoder_share"] < 1 and row["sd_decode_s"] > 0
    assert 2_000_000 < row["decoder_params"] < 20_000_000  # SD's decoder has 49.5M


def test_bad_clip_shape_is_one_line(monkeypatch, capsys):
    """In-process (a fresh interpreter costs ~10 s of imports): the script's own entry, run_main(main)."""
    monkeypatch.setattr(
        sys, "argv", [str(ROOT / "benchmarks" / "unet_forward.py"), "--space", str(TINY), "--height", "100"]
    )
    with pytest.raises(SystemExit) as exit_:
        unet_forward.run_main(unet_forward.main)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.strip().count("\n") == 0 and "tiny.yaml" in err, err


@pytest.mark.heavy
def test_side_by_side_at_a_toy_clip(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "unet_forward.py"),
            "--frames",
            "2",
            "--height",
            "64",
            "--width",
            "64",
            "--repeats",
            "1",
            "-o",
            str(tmp_path / "f.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "f.json").read_text())
    assert set(result["models"]) == {"reference", "animatediff"} and result["ratio_latency"] > 0
    assert result["models"]["animatediff"]["params"] > 1_300_000_000


def test_pruned_backbone_prices_a_backbone_on_the_estimated_roofline():
    """The benchmark's roofline pair goes through today's cost API (it once called an older signature)."""
    import math

    import pruned_backbone

    from nas.cost.calibration import Fit
    from nas.space import SearchSpace

    space = SearchSpace.load(TINY)
    small, large = (
        pruned_backbone.roofline_estimate(pruned_backbone.image_space(TINY, space.backbone, side, side), Fit(0.2, 0.05))
        for side in (64, 512)
    )
    assert 0 < small < large and math.isfinite(large)  # 64x more pixels, more time
