"""The nas command: outputs of space/build, and one-line errors with exit code 2 for bad input."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import DEFAULT, ROOT, TINY


def test_space_show_json(cli):
    code, out, _ = cli("space", "show", TINY, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["num_architectures"] == 5**9
    assert [s["name"] for s in data["slots"]][:2] == ["down0", "down1"]
    assert "attn3d(heads=4)x1" in data["slots"][0]["choices"]


def test_space_show_text(cli):
    code, out, _ = cli("space", "show", DEFAULT)
    assert code == 0 and "387,420,489 architectures" in out


def test_space_sample_writes_a_buildable_architecture(cli, tmp_path):
    code, out, _ = cli("space", "sample", TINY, "--seed", "4", "-o", tmp_path / "a.yaml")
    assert code == 0
    saved = yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert saved["space"] == "tiny" and set(saved["slots"]) >= {"down0", "mid", "up0"}
    code, out, _ = cli("build", TINY, "--arch", tmp_path / "a.yaml", "--json")
    assert code == 0 and json.loads(out)["arch_id"] == saved["id"]


def test_build_json_reports_sizes(cli, tiny_space, tmp_path):
    code, out, _ = cli("build", TINY, "--json", "-o", tmp_path / "model")
    assert code == 0
    report = json.loads(out)
    assert report["params_total"] == report["params_spatial"] + report["params_temporal"]
    assert report["params_spatial"] == tiny_space.params_spatial
    assert [r["slot"] for r in report["slots"]] == tiny_space.slot_names
    assert all(r["params"] > 0 and r["flops"] > 0 for r in report["slots"])
    assert (tmp_path / "model" / "config.json").is_file()
    assert (tmp_path / "model" / "architecture.yaml").is_file()


def test_default_reference_is_about_0_6b_params(cli):
    code, out, _ = cli("build", DEFAULT, "--arch", "reference", "--device", "meta", "--json")
    assert code == 0
    report = json.loads(out)
    assert 570_000_000 <= report["params_total"] <= 630_000_000


def broken(tiny_dict, how):
    if how == "unknown op":
        tiny_dict["choices"].append({"op": "attn2d"})
    elif how == "empty choices":
        tiny_dict["slots"][2]["choices"] = []
    elif how == "missing level":
        tiny_dict["slots"][0]["level"] = 7
    elif how == "non-divisible video":
        tiny_dict["video"]["height"] = 120
    elif how == "bad heads":
        tiny_dict["choices"][3]["heads"] = 5
    elif how == "bad backbone":
        tiny_dict["backbone"]["down_block_types"][0] = "SimpleDownBlock"
    elif how == "unknown key":
        tiny_dict["slot"] = []
    return tiny_dict


@pytest.mark.parametrize(
    "how, message",
    [
        ("unknown op", "unknown temporal op 'attn2d'"),
        ("empty choices", "choices is empty"),
        ("missing level", "level 7 does not exist"),
        ("non-divisible video", "video.height 120 px is not divisible by 64"),
        ("bad heads", "heads must be a positive divisor"),
        ("bad backbone", "unsupported block type 'SimpleDownBlock'"),
        ("unknown key", "unknown key(s) slot"),
    ],
)
def test_bad_space_is_one_line_and_exit_2(cli, tiny_dict, write_yaml, how, message):
    path = write_yaml(broken(tiny_dict, how))
    for args in (("space", "show", path), ("build", path)):
        code, out, err = cli(*args)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(path) in lines[0] and message in lines[0]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("name: [unclosed", "invalid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_unreadable_space_files(cli, tmp_path, content, message):
    path = tmp_path / "s.yaml"
    if content is not None:
        path.write_text(content)
    code, _, err = cli("space", "show", path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "slots, message",
    [
        ({"down0": {"op": "attn3d", "count": 2, "heads": 4}}, "not a choice of this slot"),
        ({"sideways": {"op": "none"}}, "slot 'sideways' is not in space"),
    ],
)
def test_architecture_that_does_not_fit_its_space(cli, tiny_space, write_yaml, slots, message):
    data = {"space": "tiny", "slots": {**{s: {"op": "none"} for s in tiny_space.slot_names}, **slots}}
    path = write_yaml(data, "arch.yaml")
    code, _, err = cli("build", TINY, "--arch", path)
    assert code == 2 and str(path) in err and message in err and len(err.strip().splitlines()) == 1


def test_architecture_of_another_space(cli, write_yaml, tiny_space):
    path = write_yaml({"space": "snapgen_v", "slots": {s: {"op": "none"} for s in tiny_space.slot_names}}, "a.yaml")
    code, _, err = cli("build", TINY, "--arch", path)
    assert code == 2 and "is for space 'snapgen_v', not 'tiny'" in err


def test_unknown_named_architecture(cli):
    code, _, err = cli("build", TINY, "--arch", "fastest")
    assert code == 2 and "named: reference" in err


def test_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("op: attn1d", "op: attn9d"))
    result = subprocess.run([sys.executable, "-m", "nas", "build", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"nas: error: {bad}: slot down0: unknown temporal op 'attn9d' (known: attn1d, attn3d, conv1d, conv3d, none)"
    ]
