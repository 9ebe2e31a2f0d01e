"""``nas export coreml``: a whole VideoUNet to Core ML packages a phone app can load.

Converts at the clip shape the model was built for (static shapes, batch 1 = no CFG), then
optionally palettizes the weights and splits the program into chunks for the Neural Engine,
reads every package back to verify it (op counts, weight bytes, inputs/outputs, Core ML
rules) and writes a JSON summary next to it. The folder it writes to becomes a Mac kit
(:mod:`nas.profile.coreml_kit`: the model's inputs as .npy, its config, the space YAML, a
relative manifest), so it can be copied alone to a Mac and timed there with ``nas table time``.
Timing on compute units right away needs macOS; elsewhere that step stops with one line saying
so, after the packages, the summary and the kit are written.
"""

from __future__ import annotations

import copy
import json
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from nas import outputs
from nas.errors import NasError
from nas.export import verify
from nas.export.chunk import split_package
from nas.export.compress import check_palettize, default_mode
from nas.export.compress import palettize as palettize_weights
from nas.export.coreml import ATTENTIONS, convert_video_unet, video_unet_inputs
from nas.ops.base import OpGraph
from nas.profile.coreml_convert import PRECISIONS, TARGETS, convert
from nas.profile.coreml_kit import check_model_folder, model_kit_outputs, write_model_kit
from nas.profile.coreml_runtime import CoreMLRuntime, check_compute_units, time_chain
from nas.rss import peak_rss_mb


def export_coreml(
    model,
    out: str | Path,
    *,
    target: str = "iOS18",
    precision: str = "fp16",
    batch: int = 1,
    palettize: int | None = None,
    palettize_mode: str | None = None,
    chunks: int = 1,
    compute_units: str | None = None,
    runs: int = 5,
    attention: str = "split_einsum",
    space_path: str | Path | None = None,
) -> dict[str, Any]:
    """Convert ``model`` (a VideoUNet) to ``out`` (``NAME.mlpackage``); return the summary also written
    to ``NAME.json``.

    With ``chunks`` > 1 the packages are ``NAME_chunk1.mlpackage`` ... instead of ``NAME.mlpackage``.
    ``compute_units`` (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE) asks for timing, which needs macOS.
    ``palettize_mode`` None: k-means where scikit-learn is installed, else uniform (with a note).
    ``attention``: ``split_einsum`` (the Neural Engine form, as apple/ml-stable-diffusion) or ``sdpa``.
    The summary describes each package's program (op counts by type, tensor ranks, transposes and
    reshapes, 3D convs) and, apart, the program of each distinct temporal layer of the model.
    ``out``'s folder is made a Mac kit for the model (``space_path``, the space YAML the model was
    built from, is copied in when given).
    """
    out = Path(out)
    _check_arguments(out, target, precision, batch, chunks, runs)
    if compute_units is not None:
        check_compute_units(compute_units)
    claim_export(out, chunks, [space_path])
    if attention not in ATTENTIONS:
        raise NasError(f"--attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    mode_note = None
    if palettize_mode is None:
        palettize_mode, mode_note = default_mode()
    if palettize:
        check_palettize(palettize, palettize_mode)
    summary: dict[str, Any] = {
        "model": {
            "space": model.config.space_name,
            "architecture": dict(model.config.architecture),
            "params": sum(p.numel() for p in model.parameters()),
        },
        "target": target,
        "precision": precision,
        "palettize": (
            {"nbits": palettize, "mode": palettize_mode, **({"note": mode_note} if mode_note else {})}
            if palettize
            else None
        ),
        "chunks": chunks,
        "attention": attention,
        "tools": _versions(),
    }
    start = time.perf_counter()
    try:
        mlmodel = convert_video_unet(model, batch=batch, precision=precision, target=target, attention=attention)
    except Exception as exc:  # coremltools names the op it cannot convert; one line is enough
        raise NasError(f"{out}: Core ML conversion failed: {_first_line(exc)}") from exc
    summary["convert_s"] = round(time.perf_counter() - start, 1)
    if palettize:
        start = time.perf_counter()
        mlmodel = palettize_weights(mlmodel, palettize, palettize_mode)
        summary["palettize_s"] = round(time.perf_counter() - start, 1)

    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    if chunks == 1:
        _save(mlmodel, out)
        packages = [out]
    else:
        with tempfile.TemporaryDirectory(prefix="nas-export-", dir=out.parent) as scratch:
            whole = Path(scratch) / out.name
            _save(mlmodel, whole)
            start = time.perf_counter()
            packages = split_package(whole, chunks, stem)
            summary["chunk_s"] = round(time.perf_counter() - start, 1)
    del mlmodel

    summary["packages"] = [verify.describe_package(p) for p in packages]
    summary["temporal_ops"] = describe_temporal_ops(model, precision, target, attention)
    summary["peak_rss_mb"] = round(peak_rss_mb())
    expected = _expected_io(model, batch)
    problems = [f"{Path(p['path']).name}: {problem}" for p in summary["packages"] for problem in p["problems"]]
    problems += verify.check_chain(summary["packages"], expected["inputs"], expected["outputs"])
    summary["warnings"] = [
        f"temporal op {op['slots'][0]} ({op['op']}): {w}" for op in summary["temporal_ops"] for w in op["warnings"]
    ]
    summary["inputs"], summary["outputs"] = expected["inputs"], expected["outputs"]
    summary["weight_bytes"] = sum(p["weight_bytes"] for p in summary["packages"])
    summary["problems"] = problems
    summary["timing"] = None
    summary_path = stem.with_suffix(".json")
    _write(summary_path, summary)
    if problems:
        raise NasError(f"{packages[0]}: converted program breaks Core ML rules: {problems[0]} (see {summary_path})")
    dtypes = {f["name"]: f["dtype"] for package in summary["packages"] for f in package["inputs"]}
    inputs = {name: tensor.numpy().astype(dtypes[name]) for name, tensor in video_unet_inputs(model, batch).items()}
    write_model_kit(out.parent, stem.name, packages, inputs, model.to_json_string(), space_path, precision)
    if compute_units:
        runtime = CoreMLRuntime(
            f"timing on {compute_units} needs macOS (the Core ML runtime); {packages[0]} was "
            f"written: copy {out.parent} alone to a Mac and run `nas table time {out.parent} "
            f"--compute-units {compute_units}`"
        )
        timing = time_chain(packages, inputs, compute_units, warmup=1, repeats=runs, runtime=runtime)
        summary["timing"] = {"compute_units": compute_units, **timing}
        _write(summary_path, summary)
    return summary


def describe_temporal_ops(
    model, precision: str = "fp16", target: str = "iOS18", attention: str = "split_einsum"
) -> list[dict[str, Any]]:
    """Convert each distinct temporal layer of ``model`` alone, at its slot's shape, and describe its program.

    Layers alike in op, parameters and input shape are converted once (``slots`` lists where
    they sit). A Neural-Engine-ready layer has no tensor above rank 4 and no 3D convolution.
    """
    config = model.config
    widths, frames = config.backbone["block_out_channels"], config.frames
    shapes = [(config.sample_height, config.sample_width)]
    for _ in widths[1:]:
        shapes.append((-(-shapes[-1][0] // 2), -(-shapes[-1][1] // 2)))
    seen: dict[tuple, dict[str, Any]] = {}
    for placement in config.slots:
        name = placement["name"]
        if name not in model.temporal:
            continue
        choice = config.architecture[name]
        params = {k: v for k, v in choice.items() if k not in ("op", "count")}
        height, width = shapes[placement["level"]]
        shape = [frames, widths[placement["level"]], height, width]
        key = (choice["op"], tuple(sorted(params.items())), tuple(shape))
        if key in seen:
            seen[key]["slots"].append(name)
            continue
        layer = copy.deepcopy(model.temporal[name][0]).float()
        mlmodel = convert(
            OpGraph(layer, frames),
            [torch.zeros(shape)],
            ["hidden_states"],
            precision=precision,
            target=target,
            attention=attention,
        )
        program = verify.describe_program(mlmodel.get_spec())
        warnings = []
        if program["max_rank"] > 4:
            warnings.append(f"a tensor of rank {program['max_rank']} (the Neural Engine layouts are rank <= 4)")
        if program["conv3d"]:
            warnings.append(f"{program['conv3d']} 3D convolution(s): these do not run on the Neural Engine")
        if program["longest_axis"] > verify.ANE_MAX_AXIS:
            warnings.append(f"an axis of {program['longest_axis']} elements (> {verify.ANE_MAX_AXIS})")
        program.pop("dynamic")
        seen[key] = {
            "slots": [name],
            "op": choice["op"],
            "params": params,
            "input_shape": shape,
            **program,
            "warnings": warnings,
        }
    return list(seen.values())


def export_outputs(out: str | Path, chunks: int = 1) -> list[outputs.Derived]:
    """What ``nas export coreml -o out`` writes besides the folder's kit files: the package (or its chunks),
    which are replaced whole, and the summary ``NAME.json``."""
    out = Path(out)
    stem = out.with_suffix("")
    packages = [out] if chunks == 1 else [out.parent / f"{stem.name}_chunk{i}.mlpackage" for i in range(1, chunks + 1)]
    return [
        *(outputs.Derived(p, "a Core ML package", outputs.owner_file("Manifest.json")) for p in packages),
        outputs.Derived(
            stem.with_suffix(".json"), "the export's summary", outputs.json_keys("model", "target", "chunks")
        ),
    ]


def claim_export(out: str | Path, chunks: int = 1, inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse, before any work, an export whose package, summary, chunks or kit files would land on an input
    (``inputs``: a model folder is given as its files) or on a file nas did not write."""
    out = Path(out)
    given = outputs.files_of(*inputs)
    outputs.claim([*export_outputs(out, chunks), *model_kit_outputs(out.parent, out.with_suffix("").name)], given)
    check_model_folder(out.parent)


def _check_arguments(out: Path, target: str, precision: str, batch: int, chunks: int, runs: int) -> None:
    if out.suffix != ".mlpackage":
        raise NasError(f"{out}: the output must be a NAME.mlpackage path")
    if target not in TARGETS:
        raise NasError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if precision not in PRECISIONS:
        raise NasError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if batch < 1 or runs < 1:
        raise NasError(f"--batch and --runs must be >= 1, got {batch} and {runs}")
    if chunks < 1 or chunks & (chunks - 1):
        raise NasError(f"--chunks must be a power of two (1, 2, 4, 8, ...), got {chunks}")


def _expected_io(model, batch: int) -> dict[str, list[dict[str, Any]]]:
    inputs = video_unet_inputs(model, batch)
    return {
        "inputs": [{"name": n, "shape": list(t.shape)} for n, t in inputs.items()],
        "outputs": [{"name": "noise_pred", "shape": list(inputs["sample"].shape)}],
    }


def _save(mlmodel, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    mlmodel.save(str(path))


def _write(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def _versions() -> dict[str, str]:
    import coremltools
    import torch

    return {
        "coremltools": coremltools.__version__,
        "torch": torch.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return re.sub(r"\s+", " ", text.splitlines()[0])
