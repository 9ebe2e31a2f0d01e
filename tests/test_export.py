"""nas export coreml: a whole tiny VideoUNet to verified Core ML packages, on any OS.

coremltools' graph passes take ~20 ms per op on this CPU: the tiny reference (~2,000 ops) takes ~45 s
to convert. So the module converts once, through the command, a model of the tiny space cut to two
levels (:func:`tests.conftest.two_levels`: ~950 ops, the same kinds of blocks and temporal ops), and
palettization and chunking run on that package.
Running a package needs macOS, so on Linux the timing step is checked to stop with one line.
"""

import contextlib
import io
import json
import platform
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("coremltools")

from nas.cli import main  # noqa: E402
from nas.errors import NasError  # noqa: E402
from nas.export import export_coreml  # noqa: E402
from nas.export.chunk import split_package  # noqa: E402
from nas.export.compress import palettize  # noqa: E402
from nas.export.verify import check_chain, describe_package  # noqa: E402
from nas.model import VideoUNet  # noqa: E402
from nas.profile.coreml_kit import read_export, read_inputs, time_packages, write_model_kit  # noqa: E402
from nas.profile.coreml_runtime import run_chain, time_chain  # noqa: E402
from nas.space import SearchSpace  # noqa: E402
from tests.conftest import TINY, two_levels  # noqa: E402
from tests.coreml_stand_in import StandInCoreMLRuntime  # noqa: E402


@pytest.fixture(scope="module")
def space_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny2.yaml"
    path.write_text(yaml.safe_dump(two_levels(yaml.safe_load(TINY.read_text())), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def space(space_path):
    return SearchSpace.load(space_path)


@pytest.fixture(scope="module")
def model(space):
    return VideoUNet.from_space(space, space.architecture("reference")).eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """``nas export coreml --model RUN --compute-units CPU_AND_NE`` of the two-level reference, run once.

    Returns (summary, package path, exit code, stdout, stderr); off macOS the timing step fails.
    """
    root = tmp_path_factory.mktemp("export")
    model.save_pretrained(root / "run")
    out = root / "tiny.mlpackage"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "export",
                "coreml",
                "--model",
                str(root / "run"),
                "-o",
                str(out),
                "--compute-units",
                "CPU_AND_NE",
                "--runs",
                "1",
            ]
        )
    return json.loads(out.with_suffix(".json").read_text()), out, code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def chunks(exported, tmp_path_factory):
    """The exported package split in two (``split_chunk1/2.mlpackage``), once: bisecting costs as much as a
    conversion, and the chain check and the Mac kit of a chunked model use the same two parts."""
    return split_package(exported[1], 2, tmp_path_factory.mktemp("chunks") / "split")


def names_and_shapes(features):
    return [(f["name"], f["shape"]) for f in features]


def test_export_writes_a_verified_package_and_summary(exported, space, model):
    summary, out, code, stdout, stderr = exported
    v = space.video
    latent = [1, v.latent_channels, v.frames, v.latent_height, v.latent_width]
    assert out.is_dir() and out.with_suffix(".json").is_file()
    (package,) = summary["packages"]
    text = [1, 77, space.cross_attention_dim]
    assert names_and_shapes(package["inputs"]) == [
        ("sample", latent),
        ("timestep", [1]),
        ("encoder_hidden_states", text),
    ]
    assert names_and_shapes(package["outputs"]) == [("noise_pred", latent)]
    assert package["ops"] > 500 and package["max_rank"] <= 5 and not summary["problems"]
    # Neural Engine form by default (split_einsum): attention as per-head einsums, linears as 1x1 convs
    assert {"einsum", "conv", "softmax"} <= set(package["op_types"])
    assert "scaled_dot_product_attention" not in package["op_types"] and summary["attention"] == "split_einsum"
    assert package["transposes"] == package["op_types"]["transpose"] and package["conv3d"] == 0
    # every distinct temporal layer of the reference, converted alone: rank <= 4 and no 3D conv
    ops = summary["temporal_ops"]
    reference = space.architecture("reference").slots_dict()
    assert {t["op"] for t in ops} == {c["op"] for c in reference.values()} - {"none"}
    assert sorted(s for t in ops for s in t["slots"]) == sorted(n for n, c in reference.items() if c["op"] != "none")
    assert all(t["max_rank"] <= 4 and t["conv3d"] == 0 and t["ops"] > 0 and not t["warnings"] for t in ops), ops
    params = sum(p.numel() for p in model.parameters())
    # FP16: two bytes per weight, less a little: identical constants (the zero-initialised output
    # layers of fresh temporal ops) are stored once
    assert 0.97 < package["weight_bytes"] / (2 * params) < 1.01
    if platform.system() == "Darwin":
        assert code == 0 and summary["timing"]["latency_p50_ms"] > 0
    else:  # the package and summary are written, then the timing step stops with one line
        assert code == 2 and summary["timing"] is None and stdout == ""
        # (coremltools' progress bars go to stderr before it)
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("nas: error: timing on CPU_AND_NE needs macOS") and "nas table time" in last


@pytest.mark.parametrize("nbits, mode", [(4, "uniform"), pytest.param(6, "kmeans", marks=pytest.mark.heavy)])
def test_palettized_weights_shrink_by_the_bit_width(exported, tmp_path, nbits, mode):
    import coremltools as ct

    summary, out, *_ = exported
    fp16 = summary["packages"][0]["weight_bytes"]
    model = palettize(ct.models.MLModel(str(out), skip_model_load=True), nbits, mode)
    model.save(str(tmp_path / "p.mlpackage"))
    small = describe_package(tmp_path / "p.mlpackage")
    assert small["palettized_weights"] > 50
    assert small["weight_bytes"] < fp16 * (nbits / 16 + 0.1)
    assert names_and_shapes(small["outputs"]) == names_and_shapes(summary["packages"][0]["outputs"])


def test_chunks_chain_back_into_the_whole_model(exported, chunks):
    summary, out, *_ = exported
    parts = [describe_package(p) for p in chunks]
    assert [p["path"].rsplit("/", 1)[1] for p in parts] == ["split_chunk1.mlpackage", "split_chunk2.mlpackage"]
    assert check_chain(parts, summary["inputs"], summary["outputs"]) == []
    whole = summary["packages"][0]["weight_bytes"]
    assert sum(p["weight_bytes"] for p in parts) == pytest.approx(whole, rel=0.02)
    assert all(p["weight_bytes"] < 0.75 * whole for p in parts)
    # a broken chain is reported: the second chunk alone lacks what the first makes
    assert check_chain(parts[1:], summary["inputs"], summary["outputs"])


def test_run_chain_feeds_each_part_what_came_before():
    calls = []

    def part(out_name, fn):
        def predict(values):
            calls.append(sorted(values))
            return {out_name: fn(values)}

        return predict

    values = run_chain(
        [(["x"], part("h", lambda v: v["x"] + 1)), (["h", "t"], part("y", lambda v: v["h"] * v["t"]))], {"x": 1, "t": 3}
    )
    assert values["y"] == 6 and calls == [["x"], ["h", "t"]]


@pytest.mark.heavy
def test_cli_exports_palettized_and_chunked_for_ios17(cli, tmp_path):
    out = tmp_path / "m.mlpackage"
    code, stdout, err = cli(
        "export",
        "coreml",
        "--space",
        TINY,
        "-o",
        out,
        "--palettize",
        "8",
        "--palettize-mode",
        "uniform",
        "--chunks",
        "2",
        "--target",
        "iOS17",
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "m.json").read_text())
    assert [p["path"] for p in summary["packages"]] == [str(tmp_path / f"m_chunk{i}.mlpackage") for i in (1, 2)]
    assert all(p["palettized_weights"] > 0 and p["opset"] == "CoreML7" for p in summary["packages"])
    assert "m_chunk2.mlpackage" in stdout and not out.exists()
    manifest, _ = read_export(tmp_path)  # the folder is a Mac kit for the chain of chunks
    assert manifest.loc[0, "packages"] == "m_chunk1.mlpackage;m_chunk2.mlpackage"
    assert manifest.loc[0, "space"] == "m.space.yaml" and (tmp_path / "m.space.yaml").read_text() == TINY.read_text()
    # iOS17 has no fused attention op: SDPA is lowered to matmul + softmax
    assert not any("scaled_dot_product_attention" in p["op_types"] for p in summary["packages"])


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML runs on macOS")
def test_timing_off_macos_is_one_clear_error(exported):
    out = exported[1]
    with pytest.raises(NasError, match="--compute-units must be one of CPU_AND_NE, CPU_AND_GPU, CPU_ONLY, ALL"):
        time_chain([out], {}, "NPU")
    with pytest.raises(NasError, match="needs macOS"):
        time_chain([out], {}, "CPU_AND_NE")


def test_model_export_folder_alone_is_enough_to_time_and_import(exported, chunks, space_path, cli, capsys, tmp_path):
    """The folder `nas export coreml` writes is a Mac kit, chunked models included (a chain of packages)."""
    summary, out, *_ = exported
    made = tmp_path / "made"
    shutil.copytree(out.parent, made, ignore=shutil.ignore_patterns("run"))  # the fixture's folder stays as is
    manifest, info = read_export(made)
    (row,) = manifest.to_dict("records")
    assert info["kind"] == "models" and row["packages"] == "tiny.mlpackage" and row["config"] == "tiny.config.json"
    # a second model in the same folder, split in two chunks (as --chunks 2 writes it)
    parts = [Path(shutil.copytree(chunk, made / chunk.name)) for chunk in chunks]
    capsys.readouterr()  # coremltools' progress bars are not the commands' output
    write_model_kit(
        made, "split", parts, read_inputs(made, row, "tiny"), (made / row["config"]).read_text(), space_path=space_path
    )
    export = tmp_path / "elsewhere" / "kit"
    shutil.copytree(made, export)  # copied alone: no checkout, no absolute path to follow
    shutil.rmtree(made)
    text = (export / "manifest.csv").read_text() + (export / "export.yaml").read_text()
    assert str(tmp_path) not in text and str(out.parent) not in text
    manifest, _ = read_export(export)
    assert list(manifest["model"]) == ["tiny", "split"] and (export / "split.space.yaml").is_file()
    assert manifest["packages"].iloc[1] == "split_chunk1.mlpackage;split_chunk2.mlpackage"

    # On Linux `nas table time` checks its arguments, then stops at the macOS guard: one line, exit 2.
    code, _, err = cli("table", "time", export, "--compute-units", "NPU")
    assert code == 2 and "--compute-units must be one of" in err and err.count("\n") == 1
    if platform.system() != "Darwin":
        code, _, err = cli("table", "time", export, "--compute-units", "CPU_AND_NE")
        assert code == 2 and "needs macOS" in err and err.count("\n") == 1

    # The timing logic with a stand-in runtime: each chunk gets the model inputs and what the chunks
    # before it made (the stand-in refuses any other feed), warm-up + repeats, p50/p90, placement merged.
    stand_in = StandInCoreMLRuntime(
        sleep_ms=3.0, growth_mb=20.0, placement=lambda path: "cpu" if path.name == "split_chunk2.mlpackage" else "ne"
    )
    time_packages(export, "CPU_AND_NE", warmup=1, repeats=3, runtime=stand_in, progress=False)
    assert [name for name, _ in stand_in.loads] == [
        "tiny.mlpackage",
        "split_chunk1.mlpackage",
        "split_chunk2.mlpackage",
    ]
    assert stand_in.calls == 3 * (1 + 3)
    results = pd.read_csv(export / "results.csv", keep_default_na=False).set_index("model")
    assert (results["samples"] == 3).all() and (results["status"] == "ok").all()
    assert results.loc["tiny", "latency_p50_ms"] >= 3.0 and results.loc["split", "latency_p50_ms"] >= 6.0
    assert (results["latency_p90_ms"] >= results["latency_p50_ms"]).all() and (results["working_set_mb"] == 20.0).all()
    assert results.loc["tiny", "placement"] == "ne" and results.loc["split", "placement"] == "mixed"
    code, stdout, err = cli("table", "import", export, "-o", tmp_path / "models.csv")
    assert code == 0, err
    measured = pd.read_csv(tmp_path / "models.csv", keep_default_na=False)
    meta = yaml.safe_load((tmp_path / "models.yaml").read_text())
    assert list(measured["model"]) == ["tiny", "split"] and meta["space"] == "tiny" and meta["rows"] == 2
    assert meta["compute_units"] == "CPU_AND_NE" and "not on an iPhone" in meta["note"]
    # Results timed by an older nas (column memory_mb) import the same, with one deprecation line.
    results_csv = export / "results.csv"
    new_results = results_csv.read_text()
    results_csv.write_text(new_results.replace(",working_set_mb,", ",memory_mb,", 1))
    code, _, err = cli("table", "import", export, "-o", tmp_path / "models_old.csv")
    assert code == 0 and err == f"nas: warning: {results_csv}: column memory_mb is deprecated; use working_set_mb\n"
    assert (tmp_path / "models_old.csv").read_text() == (tmp_path / "models.csv").read_text()
    results_csv.write_text(new_results)

    # No footprint from the OS: memory unmeasured (empty), never the input bytes.
    time_packages(export, "CPU_AND_NE", warmup=0, repeats=3, runtime=StandInCoreMLRuntime(), progress=False)
    assert (pd.read_csv(export / "results.csv", keep_default_na=False)["working_set_mb"] == "").all()
    # A hand-written results file (say from Xcode's report on an iPhone) is checked on import.
    broken = pd.read_csv(export / "results.csv", dtype=str, keep_default_na=False)
    broken.loc[1, "model"] = "other"
    broken.to_csv(export / "results.csv", index=False)
    code, _, err = cli("table", "import", export, "-o", tmp_path / "bad.csv")
    assert code == 2 and "model 'other' is not in the export's manifest" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", TINY, "-o", "x.onnx"], "must be a NAME.mlpackage"),
        (["--space", TINY, "-o", "x.mlpackage", "--chunks", "3"], "power of two"),
        (["--model", "no/such/run", "-o", "x.mlpackage"], "not a VideoUNet folder"),
        (["--model", TINY.parent, "--arch", "reference", "-o", "x.mlpackage"], "goes with --space"),
        (["--space", TINY, "-o", "x.mlpackage", "--compute-units", "NPU"], "--compute-units must be one of"),
    ],
)
def test_bad_export_arguments_fail_in_one_line(cli, args, message):
    code, _, err = cli("export", "coreml", *args)
    assert code == 2 and message in err and err.strip().count("\n") == 0


def test_conversion_failure_names_the_problem(model, tmp_path, monkeypatch):
    import nas.export.package as package

    def broken(*args, **kwargs):
        raise RuntimeError("PyTorch convert function for op 'frobnicate' not implemented.\nmore detail")

    monkeypatch.setattr(package, "convert_video_unet", broken)
    with pytest.raises(NasError, match="conversion failed: PyTorch convert function for op 'frobnicate'"):
        export_coreml(model, tmp_path / "x.mlpackage")


@pytest.mark.heavy
def test_paper_scale_reference_fits_the_neural_engine_at_6_bits(cli, tmp_path):
    """The acceptance check: the 0.58B default converts on this OS and palettizes under 1 GiB."""
    from tests.conftest import DEFAULT

    out = tmp_path / "ref.mlpackage"
    code, _, err = cli(
        "export", "coreml", "--space", DEFAULT, "-o", out, "--palettize", "6", "--palettize-mode", "uniform"
    )
    assert code == 0, err
    (package,) = json.loads(out.with_suffix(".json").read_text())["packages"]
    assert package["warnings"] == [] and package["max_rank"] <= 5
    assert package["weight_bytes"] < 1 << 30 and package["palettized_weights"] > 250


def test_default_palettize_mode_works_without_scikit_learn(monkeypatch):
    import importlib.util

    from nas.export.compress import check_palettize, default_mode

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else find_spec(name, *a)
    )
    mode, note = default_mode()
    assert mode == "uniform" and "scikit-learn is not installed" in note
    check_palettize(6, mode)  # the default path needs nothing extra
    with pytest.raises(NasError, match="kmeans mode needs scikit-learn"):
        check_palettize(6, "kmeans")


@pytest.mark.parametrize("platform_name, raw, mb", [("linux", 2048, 2.0), ("darwin", 2 * 2**20, 2.0)])
def test_peak_rss_is_right_on_linux_and_macos(monkeypatch, platform_name, raw, mb):
    import resource
    import types

    from nas import rss

    monkeypatch.setattr(rss.sys, "platform", platform_name)
    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=raw))
    assert rss.peak_rss_mb() == mb
