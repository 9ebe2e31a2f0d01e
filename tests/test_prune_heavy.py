"""Full size: SD1.5's UNet (public config, random weights saved by diffusers) -> `nas prune` to
snapgen_v.yaml's backbone -> `nas build --arch reference --spatial-weights` (576M). ~7 min, ~7 GB."""

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
