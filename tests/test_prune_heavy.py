"""Full size: SD1.5's UNet (public config, random weights saved by diffusers) -> `nas prune` to
snapgen_v.yaml's backbone -> `nas build --arch reference --spatial-weights` (576M). ~7 min, ~7 GB.
And SD1.5's VAE -> `nas prune --decoder` to under a quarter of its decoder's FLOPs per frame."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT, ROOT


@pytest.mark.heavy
def test_sd15_prunes_to_snapgen_v_and_builds_576m(tmp_path):
    results = tmp_path / "results.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "prune_sd15.py"),
            "--work",
            str(tmp_path),
            "--space",
            str(DEFAULT),
            "--results",
            str(results),
        ],
        check=True,
    )
    data = json.loads(results.read_text())
    assert data["prune"]["returncode"] == 0 and data["build"]["returncode"] == 0, data
    assert data["params_total_built"] == 576_323_332
    f = data["report"]["function"]
    assert f["mse_pruned"] < f["mse_random"] and f["cosine_pruned"] > f["cosine_random"]


@pytest.mark.heavy
def test_sd15_vae_decoder_prunes_to_a_quarter_of_its_flops_and_beats_random(tmp_path):
    """SD1.5's VAE (public config, random weights) -> `nas prune --decoder` (benchmarks/prune_vae.py). ~1 min, ~2 GB."""
    results = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prune_vae.py"), "--work", str(tmp_path), "--results", str(results)],
        check=True,
    )
    data = json.loads(results.read_text())
    assert data["prune"]["returncode"] == 0, data
    report = data["report"]
    assert report["frame_size"] == [320, 512] and report["flops_ratio"] <= 0.25
    assert report["function"]["psnr_pruned"] > report["function"]["psnr_random"]
