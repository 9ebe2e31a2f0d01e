"""Every temporal op converts to a Core ML ML program (FP16) on this OS; running it needs macOS."""

import pytest

pytest.importorskip("coremltools")

from coremltools.proto import MIL_pb2  # noqa: E402

from nas.export.coreml import convert_op  # noqa: E402
from nas.export.verify import describe_program  # noqa: E402

PARAMS = {"attn1d": {"heads": 4}, "attn3d": {"heads": 4}, "conv1d": {"kernel": 3}, "conv3d": {"kernel": 3}, "none": {}}


def program(model):
    function = model.get_spec().mlProgram.functions["main"]
    return function.block_specializations[function.opset].operations


def const_dtypes(model) -> set[str]:
    return {
        MIL_pb2.DataType.Name(out.type.tensorType.dataType)
        for op in program(model)
        if op.type == "const"
        for out in op.outputs
        if out.type.WhichOneof("type") == "tensorType"
    }


@pytest.mark.parametrize(
    "op, attention, expected",
    [
        ("none", "split_einsum", "identity"),
        ("conv1d", "split_einsum", "conv"),
        ("conv3d", "split_einsum", "conv"),
        ("attn1d", "split_einsum", "einsum"),
        ("attn3d", "split_einsum", "einsum"),
        ("attn1d", "sdpa", "scaled_dot_product_attention"),
        ("attn3d", "sdpa", "scaled_dot_product_attention"),
    ],
)
def test_op_converts_to_an_fp16_ml_program(tiny_space, op, attention, expected):
    slot = tiny_space.slots[1]
    model = convert_op(
        op,
        slot.channels,
        tiny_space.video.frames,
        slot.height,
        slot.width,
        PARAMS[op],
        norm_groups=tiny_space.backbone["norm_num_groups"],
        attention=attention,
    )
    spec = model.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert expected in [o.type for o in program(model)]
    assert list(spec.description.input[0].type.multiArrayType.shape) == [
        tiny_space.video.frames,
        slot.channels,
        slot.height,
        slot.width,
    ]
    if op != "none":
        dtypes = const_dtypes(model)
        assert "FLOAT16" in dtypes and "FLOAT32" not in dtypes
    # Neural-Engine form: rank <= 4 everywhere, no 3D convolution.
    program_summary = describe_program(spec)
    assert program_summary["max_rank"] <= 4 and program_summary["conv3d"] == 0, program_summary


def test_fp32_precision_keeps_fp32_weights(tiny_space):
    model = convert_op("conv1d", 32, 4, 8, 8, {"kernel": 3}, norm_groups=8, precision="fp32")
    assert "FLOAT32" in const_dtypes(model) and "FLOAT16" not in const_dtypes(model)
