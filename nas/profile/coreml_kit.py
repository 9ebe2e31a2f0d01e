"""The Core ML export folder (the "Mac kit"): everything a Mac needs to time packages, and no checkout.

Two commands write one. ``nas profile --backend coreml --export-only DIR`` (:func:`export_packages`)
converts one package per table key (kind ``ops``); ``nas export coreml -o DIR/NAME.mlpackage``
(:func:`write_model_kit`) adds a whole VideoUNet, one package or a chain of chunks (kind
``models``). Either way DIR holds the packages, the space YAML (and a model's config), each
package's inputs as ``.npy``, ``manifest.csv`` and ``export.yaml``, with paths relative to DIR
only, so DIR copied alone to a Mac with ``pip install snapgen-nas`` is enough. There
``nas table time DIR`` (:func:`time_packages`) writes ``results.csv`` and ``results.yaml``; then
``nas table import DIR -o OUT.csv`` (:func:`import_results`), on any machine, makes a device
table of them (ops) or the record of the measured models (models). Results written by hand, say
from Xcode's performance report on an iPhone, enter the same way.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from nas import outputs
from nas.cost.plan import table_plan
from nas.cost.table import (
    COLUMNS,
    KEY_COLUMNS,
    PLACEMENT,
    PLACEMENTS,
    STATUSES,
    WORKING_SET,
    CostTable,
    claim_table,
    renamed_columns,
    sidecar_keys,
    sidecar_path,
    table_columns,
    validate_rows,
)
from nas.cost.workload import build_workload
from nas.errors import NasError
from nas.machine import fingerprint
from nas.ops import OpKey
from nas.ops.key import parse_params
from nas.profile.base import Profiler
from nas.profile.coreml_convert import convert, feed_arrays
from nas.profile.coreml_runtime import CoreMLRuntime, check_compute_units, time_chain
from nas.space import SearchSpace
from nas.space.yaml_io import read_yaml_mapping, write_yaml

SPACE_COPY = "space.yaml"  # an op export's space, copied in
INPUTS = "inputs"  # folder of the packages' inputs (.npy)
MANIFEST, EXPORT_INFO = "manifest.csv", "export.yaml"
RESULTS, RESULTS_INFO = "results.csv", "results.yaml"
OPS, MODELS = "ops", "models"  # export.yaml ``kind``; folders from before it are op exports
# A models manifest row: the chain of packages (``;``-joined, in order), their inputs (name=path), the
# copied space YAML (empty for a model exported from a folder) and the model's config.
MODEL_COLUMNS = ["model", "packages", "inputs", "space", "config", "precision"]
MODEL_RESULT_COLUMNS = [
    "model",
    "precision",
    "latency_p50_ms",
    "latency_p90_ms",
    WORKING_SET,
    "samples",
    "status",
    "message",
    PLACEMENT,
    "load_s",
]
MAC_NOTE = (
    "measured on this Mac's own Neural Engine/CPU/GPU, not on an iPhone; working_set_mb = growth of the process "
    "physical footprint during prediction, empty if unmeasured"
)


def _kit_info(path: Path) -> bool:
    """An export.yaml nas wrote: ``kind`` and ``tools``, or (op exports from before ``kind``) space, precision,
    target."""
    return outputs.any_of(outputs.yaml_keys("kind", "tools"), outputs.yaml_keys("space", "precision", "target"))(path)


def _timed_here(path: Path) -> bool:
    """A results.yaml that `nas table time` wrote (not figures written by hand, say an iPhone's)."""
    return outputs.yaml_keys("note")(path) and read_yaml_mapping(path).get("note") == MAC_NOTE


def kit_outputs(export_dir: Path, *names: str) -> list[outputs.Derived]:
    """Files of a kit folder a command writes (``names``: manifest, export info, a space copy, ...): nas's
    when the folder's export.yaml is."""
    info = export_dir / EXPORT_INFO
    return [
        outputs.Derived(info, "the kit's export.yaml", _kit_info),
        *(outputs.Derived(export_dir / n, f"the kit's {n}", outputs.ours_if(info, _kit_info)) for n in names),
    ]


def package_name(key: OpKey) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(str(v) for v in key.as_dict().values())) + ".mlpackage"


def export_packages(
    space_path: str | Path,
    out_dir: str | Path,
    precision: str = "fp16",
    target: str = "iOS18",
    progress: bool = True,
    attention: str = "split_einsum",
) -> Path:
    """Convert every planned key to DIR/<key>.mlpackage and write what a Mac needs to time them (resumable)."""
    space = SearchSpace.load(space_path)
    out_dir = Path(out_dir)
    outputs.claim(kit_outputs(out_dir, MANIFEST, SPACE_COPY, INPUTS), [space_path])
    import coremltools

    if _kind(out_dir) not in (None, OPS):
        raise NasError(
            f"{out_dir}: holds another kind of folder (a model export or a foreign {MANIFEST}); "
            "write the op export elsewhere"
        )
    (out_dir / INPUTS).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space_path, out_dir / SPACE_COPY)
    rows = []
    for key in tqdm(table_plan(space), desc=f"export {space.name} (coreml)", unit="op", disable=not progress):
        path = out_dir / package_name(key)
        workload = None
        status = "ok"
        if not path.exists():
            try:
                workload = build_workload(space, key)
                convert(
                    workload.module,
                    workload.inputs,
                    workload.input_names,
                    precision=precision,
                    target=target,
                    attention=attention,
                ).save(str(path))
            except (MemoryError, RuntimeError, ValueError) as exc:
                status = "oom" if "memory" in str(exc).lower() else "unsupported"
        inputs = ""
        if status == "ok":
            workload = workload or build_workload(space, key)
            feed = feed_arrays(workload.input_names, workload.inputs)
            inputs = save_inputs(out_dir, path.name.removesuffix(".mlpackage"), feed)
        rows.append(
            {**key.as_dict(), "package": path.name if status == "ok" else "", "inputs": inputs, "status": status}
        )
    pd.DataFrame(rows).to_csv(out_dir / MANIFEST, index=False)
    write_yaml(
        out_dir / EXPORT_INFO,
        {
            "kind": OPS,
            "space": space.name,
            "space_path": SPACE_COPY,
            "precision": precision,
            "target": target,
            "attention": attention,
            "tools": {"coremltools": coremltools.__version__},
        },
    )
    return out_dir / MANIFEST


def model_kit_outputs(export_dir: str | Path, name: str) -> list[outputs.Derived]:
    """The kit files a model export named ``name`` writes into ``export_dir``."""
    return kit_outputs(Path(export_dir), MANIFEST, f"{name}.config.json", f"{name}.space.yaml")


def check_model_folder(export_dir: str | Path, name: str | None = None, space_path: str | Path | None = None) -> None:
    """Fail early where ``export_dir`` cannot take a model export: it holds an op export, or a kit file of model
    ``name`` would land on the space YAML or on a file nas did not write."""
    if name is not None:
        outputs.claim(model_kit_outputs(export_dir, name), [space_path])
    if _kind(Path(export_dir)) not in (None, MODELS):
        raise NasError(
            f"{export_dir}: holds another kind of folder (a per-op export or a foreign {MANIFEST}); "
            "write the model to another folder"
        )


def write_model_kit(
    export_dir: str | Path,
    name: str,
    packages: Sequence[str | Path],
    feed: Mapping[str, np.ndarray],
    config_json: str,
    space_path: str | Path | None = None,
    precision: str = "fp16",
) -> Path:
    """Make ``export_dir``, which holds ``packages`` (one model, chunks in order), a kit that times model ``name``.

    Writes ``inputs/<name>.<input>.npy``, ``<name>.config.json`` (the VideoUNet's config), a copy of
    the space YAML as ``<name>.space.yaml`` when given, and the model's manifest row; rows of other
    models exported to the same folder are kept.
    """
    import coremltools

    export_dir = Path(export_dir)
    check_model_folder(export_dir, name, space_path)
    for package in packages:
        if Path(package).resolve().parent != export_dir.resolve():
            raise NasError(f"{package}: a kit's packages lie in its folder {export_dir}")
    rows = []
    if (export_dir / MANIFEST).is_file():
        rows = [r for r in read_export(export_dir)[0].to_dict("records") if r["model"] != name]
    config = f"{name}.config.json"
    (export_dir / config).write_text(config_json)
    space = ""
    if space_path is not None:
        space = f"{name}.space.yaml"
        shutil.copyfile(space_path, export_dir / space)
    rows.append(
        {
            "model": name,
            "packages": ";".join(Path(p).name for p in packages),
            "inputs": save_inputs(export_dir, name, feed),
            "space": space,
            "config": config,
            "precision": precision,
        }
    )
    pd.DataFrame(rows, columns=MODEL_COLUMNS).to_csv(export_dir / MANIFEST, index=False)
    write_yaml(export_dir / EXPORT_INFO, {"kind": MODELS, "tools": {"coremltools": coremltools.__version__}})
    return export_dir / MANIFEST


def save_inputs(export_dir: Path, stem: str, feed: Mapping[str, np.ndarray]) -> str:
    """Write each input as ``inputs/<stem>.<name>.npy``; the manifest's ``name=path;...`` list of them."""
    (export_dir / INPUTS).mkdir(parents=True, exist_ok=True)
    items = []
    for name, array in feed.items():
        relative = f"{INPUTS}/{stem}.{name}.npy"
        np.save(export_dir / relative, np.asarray(array))
        items.append(f"{name}={relative}")
    return ";".join(items)


def time_packages(
    export_dir: str | Path,
    compute_units: str = "CPU_AND_NE",
    warmup: int = 3,
    repeats: int = 20,
    time_limit_s: float = 30.0,
    budget_s: float = 10.0,
    runtime: CoreMLRuntime | None = None,
    progress: bool = True,
) -> Path:
    """On a Mac: time every package (ops) or chain of chunks (models) of an export folder.

    Writes ``results.csv`` and ``results.yaml`` in it. Needs only the folder. ``runtime``
    defaults to the Core ML runtime, which exists on macOS only; tests pass a stand-in.
    """
    check_compute_units(compute_units)
    export_dir = Path(export_dir)
    manifest, info = read_export(export_dir)
    outputs.claim(
        [
            outputs.Derived(export_dir / RESULTS_INFO, "the timing's results.yaml", _timed_here),
            outputs.Derived(
                export_dir / RESULTS,
                "the timing's results.csv",
                outputs.ours_if(export_dir / RESULTS_INFO, _timed_here),
            ),
        ]
    )
    runtime = runtime or CoreMLRuntime(
        f"{export_dir}: timing needs macOS (the Core ML runtime); copy this folder "
        "alone to a Mac and run `nas table time` there"
    )
    models = info.get("kind", OPS) == MODELS
    options = {
        "warmup": warmup,
        "repeats": repeats,
        "time_limit_s": time_limit_s,
        "budget_s": budget_s,
        "runtime": runtime,
    }
    rows = []
    for record in tqdm(manifest.to_dict("records"), desc="time coreml", unit="package", disable=not progress):
        if models:
            packages = [_inside(export_dir, p, record["model"]) for p in record["packages"].split(";")]
            values = time_chain(packages, read_inputs(export_dir, record, record["model"]), compute_units, **options)
            rows.append({"model": record["model"], "precision": record["precision"], "message": "", **values})
            continue
        key = OpKey.of(*(record[c] for c in KEY_COLUMNS[:-1]), parse_params(str(record["params"])))
        if record["status"] != "ok":
            values = {
                "latency_p50_ms": "",
                "latency_p90_ms": "",
                WORKING_SET: "",
                "samples": 0,
                "status": record["status"],
                PLACEMENT: "",
            }
        else:
            package = _inside(export_dir, record["package"], record["package"])
            values = time_chain([package], read_inputs(export_dir, record, record["package"]), compute_units, **options)
        rows.append({**key.as_dict(), **values})
    pd.DataFrame(rows, columns=MODEL_RESULT_COLUMNS if models else COLUMNS).to_csv(export_dir / RESULTS, index=False)
    precision = ",".join(sorted(set(manifest["precision"]))) if models else info["precision"]
    meta = Profiler.common_metadata()
    meta.update(device=_mac_name(), backend="coreml", compute_units=compute_units, precision=precision, note=MAC_NOTE)
    meta["machine"] = fingerprint(None, compute_units)
    write_yaml(export_dir / RESULTS_INFO, meta)
    return export_dir / RESULTS


@dataclass
class MeasuredModels:
    """Whole models measured on a device (a models export's results): rows and their sidecar."""

    rows: pd.DataFrame
    meta: dict[str, Any]


def import_results(export_dir: str | Path, out: str | Path, command: str = "") -> CostTable | MeasuredModels:
    """Turn the results.csv (+ results.yaml) of an export folder into a validated file ``out`` (+ sidecar).

    An op export gives a device table; a models export, the record of each model's measured
    latency and memory (``MODEL_RESULT_COLUMNS``), to set against ``nas cost`` predictions.
    """
    export_dir = Path(export_dir)
    results = export_dir / RESULTS
    claim_table(out, [results, export_dir / RESULTS_INFO, export_dir / MANIFEST, export_dir / EXPORT_INFO])
    if not results.is_file():
        raise NasError(f"{results}: no results yet (time the export on a Mac with `nas table time {export_dir}`)")
    if not (export_dir / RESULTS_INFO).is_file():
        raise NasError(f"{export_dir / RESULTS_INFO}: missing (written by `nas table time` with the results)")
    meta = read_yaml_mapping(export_dir / RESULTS_INFO)
    frame = pd.read_csv(results, dtype=str, keep_default_na=False)
    manifest, info = read_export(export_dir)
    if not isinstance(meta.get("tools", {}), dict):
        raise NasError(f"{export_dir / RESULTS_INFO}: tools must map tool names to versions")
    meta["tools"] = {**info.get("tools", {}), **meta.get("tools", {})}
    if info.get("kind", OPS) == OPS:
        table = CostTable(
            validate_rows(table_columns(frame, results), results), {**meta, "space": info["space"], "command": command}
        )
        table.save(out)
        return table
    spaces = sorted({_space_name(_inside(export_dir, c, c)) for c in manifest["config"]})
    measured = MeasuredModels(
        _model_rows(frame, set(manifest["model"]), results), {**meta, "space": ",".join(spaces), "command": command}
    )
    missing = [k for k in sidecar_keys(measured.meta) if k not in measured.meta]
    if missing:
        raise NasError(f"{export_dir / RESULTS_INFO}: missing key(s) {', '.join(missing)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    measured.rows.to_csv(out, index=False, float_format="%.6g")
    write_yaml(sidecar_path(out), {**measured.meta, "rows": len(measured.rows)})
    return measured


def _model_rows(frame: pd.DataFrame, known: set[str], path: Path) -> pd.DataFrame:
    """Validated rows of a models results file; the optional columns (message, placement, load_s) may be absent,
    an old column name is read under its new one."""
    frame = renamed_columns(frame, path)
    required = ["model", "latency_p50_ms", "latency_p90_ms", WORKING_SET, "samples", "status"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise NasError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = []
    for line, raw in enumerate(frame.to_dict("records"), 2):
        where = f"{path}: line {line}"
        row = {c: raw.get(c, "") for c in MODEL_RESULT_COLUMNS}
        if row["model"] not in known:
            raise NasError(f"{where}: model {row['model']!r} is not in the export's manifest")
        if row["status"] not in STATUSES:
            raise NasError(f"{where}: status must be one of {', '.join(STATUSES)}, got {row['status']!r}")
        if row[PLACEMENT] not in PLACEMENTS:
            raise NasError(f"{where}: placement must be one of {', '.join(p or '(empty)' for p in PLACEMENTS)}")
        for column in ("latency_p50_ms", "latency_p90_ms", WORKING_SET, "samples", "load_s"):
            if row[column] == "" and (row["status"] != "ok" or column in (WORKING_SET, "load_s")):
                continue  # unmeasured
            try:
                row[column] = float(row[column])
            except ValueError:
                raise NasError(f"{where}: {column} must be a number, got {row[column]!r}") from None
            least = 1 if column == "samples" and row["status"] == "ok" else 0
            if not row[column] >= least:
                raise NasError(f"{where}: {column} must be >= {least}, got {row[column]}")
        if row["status"] == "ok" and row["latency_p90_ms"] < row["latency_p50_ms"]:
            raise NasError(f"{where}: latency_p90_ms is below latency_p50_ms")
        rows.append(row)
    return pd.DataFrame(rows, columns=MODEL_RESULT_COLUMNS)


def read_export(export_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The manifest and export.yaml of an export folder."""
    manifest = export_dir / MANIFEST
    if not manifest.is_file():
        raise NasError(
            f"{manifest}: not an export folder (made by `nas profile --backend coreml --export-only` "
            "or `nas export coreml`)"
        )
    info = read_yaml_mapping(export_dir / EXPORT_INFO)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    columns = MODEL_COLUMNS if info.get("kind", OPS) == MODELS else ["package", "status"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NasError(f"{manifest}: missing column(s) {', '.join(missing)}")
    return frame, info


def read_inputs(export_dir: Path, record: dict[str, Any], what: str) -> dict[str, np.ndarray]:
    """The inputs of ``what``, from the ``name=relative/path.npy`` list of its manifest row (never pickled)."""
    feed = {}
    for item in filter(None, str(record.get("inputs", "")).split(";")):
        name, _, relative = item.partition("=")
        feed[name] = np.load(_inside(export_dir, relative, what), allow_pickle=False)
    if not feed:
        raise NasError(
            f"{export_dir / MANIFEST}: no inputs listed for {what} (export made before inputs were saved: export again)"
        )
    return feed


def _space_name(config: Path) -> str:
    """The space a model's config (``<name>.config.json``) says it was built from."""
    try:
        return str(json.loads(config.read_text()).get("space_name", ""))
    except (ValueError, AttributeError):
        raise NasError(f"{config}: not a model config (JSON object)") from None


def _inside(export_dir: Path, relative: str, what: str) -> Path:
    """``export_dir / relative``, refused unless it is an existing path inside the folder."""
    path = export_dir / relative
    if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts or not path.exists():
        raise NasError(f"{export_dir / MANIFEST}: {relative!r} of {what} is not a path inside the export folder")
    return path


def _kind(export_dir: Path) -> str | None:
    """``ops`` or ``models`` for an export folder, None for a folder that is not one (yet), ``other`` for a
    folder whose manifest.csv no export wrote."""
    if not (export_dir / EXPORT_INFO).is_file():
        return "other" if (export_dir / MANIFEST).exists() else None
    return read_yaml_mapping(export_dir / EXPORT_INFO).get("kind", OPS)


def _mac_name() -> str:
    return f"Mac ({platform.machine()}, {platform.mac_ver()[0] or platform.system()})"
