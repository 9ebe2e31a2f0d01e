"""Read a converted ML program back and check what a device will need from it.

Reads only the package's spec and files, so it works on Linux where Core ML cannot load a
model: op counts (what the runtime will schedule), weight bytes (what must fit in memory, and
under ~1 GB per model for the Neural Engine), inputs and outputs, and the Core ML rules a
program can break silently at conversion time but not at load time on the phone: every
tensor of rank <= 5 with static shape; axes no longer than the Neural Engine compiles.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

MAX_RANK = 5
ANE_MAX_AXIS = 16384  # longer axes fail to compile for the Neural Engine (user reports)
ANE_MAX_WEIGHT_BYTES = 1 << 30  # ~1 GB of weights per model; beyond it, chunk or palettize


def describe_package(path: str | Path) -> dict[str, Any]:
    """Op counts, weight and package bytes, inputs/outputs and rule checks of one ``.mlpackage``."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2

    path = Path(path)
    spec = ct.utils.load_spec(str(path))
    program = describe_program(spec)
    max_rank, longest, dynamic = program["max_rank"], program["longest_axis"], program["dynamic"]

    def feature(f) -> dict[str, Any]:
        array = f.type.multiArrayType
        return {
            "name": f.name,
            "shape": list(array.shape),
            "dtype": FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType).lower(),
        }

    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weight_bytes = weights.stat().st_size if weights.is_file() else 0
    problems = []
    if max_rank > MAX_RANK:
        problems.append(f"a tensor of rank {max_rank} (Core ML allows {MAX_RANK})")
    if dynamic:
        problems.append(f"{len(dynamic)} tensor(s) with dynamic shape, first {dynamic[0]}")
    warnings = []
    if longest > ANE_MAX_AXIS:
        warnings.append(f"an axis of {longest} elements (> {ANE_MAX_AXIS}): will not compile for the Neural Engine")
    if weight_bytes > ANE_MAX_WEIGHT_BYTES:
        warnings.append(
            f"{weight_bytes / 2**30:.2f} GiB of weights (> 1 GiB): too big for the Neural Engine; "
            "use --chunks or --palettize"
        )
    if program["conv3d"]:
        warnings.append(f"{program['conv3d']} rank-5 (3D) convolution(s): these do not run on the Neural Engine")
    return {
        "path": str(path),
        **{k: v for k, v in program.items() if k != "dynamic"},
        "weight_bytes": weight_bytes,
        "package_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        "inputs": [feature(f) for f in spec.description.input],
        "outputs": [feature(f) for f in spec.description.output],
        "problems": problems,
        "warnings": warnings,
    }


def describe_program(spec) -> dict[str, Any]:
    """What the Neural Engine cares about in an ML program's spec (``mlmodel.get_spec()``).

    Op counts by type (consts apart), the highest tensor rank and a histogram of ranks, the
    layout ops (``transpose``, ``reshape``: each a copy the Neural Engine guidance says to
    avoid), 3D convolutions (a ``conv`` whose output is rank 5) and the longest axis.
    """
    function = spec.mlProgram.functions["main"]
    operations = function.block_specializations[function.opset].operations
    types = Counter(op.type for op in operations)
    compute = {t: n for t, n in types.items() if not t.startswith("const")}
    ranks: Counter = Counter()
    longest, dynamic, conv3d = 0, [], 0
    for op in operations:
        for out in op.outputs:
            if out.type.WhichOneof("type") != "tensorType":
                continue
            tensor = out.type.tensorType
            ranks[tensor.rank] += 1
            conv3d += op.type in ("conv", "conv_transpose") and tensor.rank == 5
            for dim in tensor.dimensions:
                if dim.WhichOneof("dimension") == "constant":
                    longest = max(longest, dim.constant.size)
                else:
                    dynamic.append(out.name)
    return {
        "opset": function.opset,
        "ops": sum(compute.values()),
        "op_types": dict(sorted(compute.items(), key=lambda kv: (-kv[1], kv[0]))),
        "const_ops": types.get("const", 0),
        "palettized_weights": types.get("constexpr_lut_to_dense", 0),
        "max_rank": max(ranks, default=0),
        "ranks": {str(r): n for r, n in sorted(ranks.items())},
        "transposes": types.get("transpose", 0),
        "reshapes": types.get("reshape", 0),
        "conv3d": int(conv3d),
        "longest_axis": longest,
        "dynamic": dynamic,
    }


def check_chain(parts: list[dict[str, Any]], inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> list[str]:
    """Problems in running ``parts`` (package descriptions) one after another as one model.

    Each part may read the model's inputs and the outputs of the parts before it; the last
    values must include the model's outputs with their shapes.
    """
    available = {f["name"]: f["shape"] for f in inputs}
    problems = []
    for index, part in enumerate(parts, 1):
        for f in part["inputs"]:
            if available.get(f["name"]) != f["shape"]:
                problems.append(f"chunk {index} reads {f['name']}{f['shape']}, which no earlier chunk makes")
        available.update({f["name"]: f["shape"] for f in part["outputs"]})
    for f in outputs:
        if available.get(f["name"]) != f["shape"]:
            problems.append(f"no chunk makes the model output {f['name']}{f['shape']}")
    return problems
