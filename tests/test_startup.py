"""The light commands start without the heavy libraries (a fresh interpreter per check)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, here_table

HEAVY = ("torch", "diffusers", "transformers", "optuna", "coremltools")
PROBE = """
import json, sys
from nas.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def modules_after(*argv: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=list(argv), heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "stdout": "\n".join(lines[:-1])}


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["table", "validate"]])
def test_light_commands_import_no_torch_diffusers_optuna(argv):
    result = modules_after(*argv)
    assert result["code"] == 0 and result["heavy"] == []


def test_import_nas_is_light_and_the_names_still_resolve():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, nas; assert 'torch' not in sys.modules; "
            "from nas import SearchSpace, VideoUNet, register_op; print(VideoUNet.__name__)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "VideoUNet", done.stderr


COST = ["cost", "search_spaces/tiny.yaml", "--arch", "reference", "--table", "latency_tables/cpu_tiny.csv", "--json"]


@pytest.mark.parametrize(
    "argv", [COST, ["space", "show", "search_spaces/tiny.yaml", "--json"], ["machine-table", *COST[1:]]]
)
def test_cost_and_space_show_need_no_torch_once_the_backbone_is_counted(tmp_path, argv):
    """The first call counts the backbone (torch, diffusers) and keeps the count in NAS_CACHE_DIR; the next
    prices and describes from the space, the table, the built-in ops' closed-form sizes and that count,
    and says the same. A table that names its machine is checked against this one without torch too."""
    if argv[0] == "machine-table":
        table = here_table(ROOT / "latency_tables" / "cpu_tiny.csv", tmp_path / "table")
        argv = ["cost", *[str(table) if a.endswith(".csv") else a for a in argv[1:]]]
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path)}
    first = modules_after(*argv, env=env)
    assert first["code"] == 0 and "torch" in first["heavy"]
    assert list((tmp_path / "backbone_params").glob("*.json"))
    again = modules_after(*argv, env=env)
    assert again["code"] == 0 and again["heavy"] == []
    assert json.loads(again["stdout"]) == json.loads(first["stdout"])
