"""The light commands start without the heavy libraries (a fresh interpreter per check)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

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


def modules_after(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=list(argv), heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


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
