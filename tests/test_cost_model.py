"""CostModel: exact sums, vectorised pricing, interpolation with honest coverage, failures."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from nas.cost.cost_model import CostModel
from nas.cost.memory import slot_context_bytes
from nas.cost.plan import choice_key, fixed_part_key, spatial_key, table_plan
from nas.cost.table import COLUMNS, CostTable, validate_rows
from nas.errors import NasError, NasWarning
from nas.model import VideoUNet
from nas.ops import OpKey, TemporalOp, register_op
from nas.ops.memory_tracker import MemoryTracker
from nas.space import Architecture, SearchSpace
from nas.space.yaml_io import read_yaml_mapping


@pytest.fixture(scope="module")
def table(tiny_estimate):
    return CostTable.load(tiny_estimate)


def without(table, **match):
    rows = table.rows
    mask = np.ones(len(rows), bool)
    for column, value in match.items():
        mask &= (rows[column] == value).to_numpy()
    return CostTable(rows[~mask].reset_index(drop=True), dict(table.meta))


def test_prediction_is_the_sum_of_rows(tiny_space, table):
    model = CostModel(tiny_space, table)
    arch = tiny_space.architecture("reference")
    rows = table.lookup()
    expected = rows[spatial_key(tiny_space)]["latency_p50_ms"]
    for slot in tiny_space.slots:
        choice = arch.choice(slot.name)
        key = choice_key(tiny_space, slot, choice)
        expected += 0 if key is None else rows[key]["latency_p50_ms"] * choice.count
    p = model.predict(arch, passes=1)
    assert p.unet_ms == pytest.approx(expected)
    # the whole generation: one text encoding, 4 passes, the decoder once per latent frame
    text = rows[fixed_part_key(tiny_space, "text_encoder")]["latency_p50_ms"]
    decoder = rows[fixed_part_key(tiny_space, "decoder")]["latency_p50_ms"]
    whole = model.predict(arch, passes=4)
    assert whole.complete and whole.missing == []
    assert whole.latency_ms == pytest.approx(text + 4 * expected + tiny_space.video.frames * decoder)
    assert p.coverage["exact"] == 1 + sum(1 for _, c in arch.choices if not c.is_none)
    params = sum(p.numel() for p in VideoUNet.from_space(tiny_space, arch).parameters())
    assert p.weights_mb == pytest.approx(params * 2 / 2**20)


def test_vectorised_pricing_matches_single_predictions(tiny_space, table):
    model = CostModel(tiny_space, table)
    archs = [tiny_space.sample(seed) for seed in range(50)]
    latency, memory = model.price(np.stack([model.encode(a) for a in archs]))
    for arch, lat, mem in zip(archs, latency, memory):
        p = model.predict(arch)
        assert lat == pytest.approx(p.latency_ms) and mem == pytest.approx(p.peak_memory_mb)


def test_missing_shape_is_interpolated_between_neighbours(tiny_space, table):
    # Drop attn1d at 64 channels, 4x4: neighbours 8x8 and 2x2 remain.
    thinned = without(table, op="attn1d", channels=64, height=4)
    model = CostModel(tiny_space, thinned)
    slot = tiny_space.slot("down2")
    key = choice_key(tiny_space, slot, next(c for c in slot.choices if c.op == "attn1d"))
    cost = model.key_cost(key)
    assert cost.coverage == "interpolated"
    rows = table.lookup()
    small = rows[OpKey.of("attn1d", 64, 4, 2, 2, {"heads": 4})]["latency_p50_ms"]
    big = rows[OpKey.of("attn1d", 64, 4, 8, 8, {"heads": 4})]["latency_p50_ms"]
    assert small <= cost.latency_ms <= big
    assert cost.latency_ms == pytest.approx(rows[key]["latency_p50_ms"], rel=0.5)


def test_beyond_the_range_is_flagged_then_refused(tiny_space, table):
    model = CostModel(tiny_space, without(table, op="attn1d", channels=32))
    # attn1d at 32 channels now has no same-width rows: priced from the 64-channel rows by FLOPs.
    slot = tiny_space.slot("down0")
    key = choice_key(tiny_space, slot, next(c for c in slot.choices if c.op == "attn1d"))
    assert model.key_cost(key).coverage in ("interpolated", "extrapolated")
    far = OpKey.of("attn3d", 64, 64, 64, 64, {"heads": 4})
    with pytest.raises(NasError, match="far outside the measured range"):
        model.key_cost(far)


def test_memory_is_priced_and_range_checked_along_the_ops_working_set(tiny_space, table):
    # attn3d at 16x16 (1024 tokens) from rows of at most 8x8 (256 tokens): the attention working set
    # grows with tokens^2, 16x past the largest row, so the memory axis refuses it.
    model = CostModel(tiny_space, without(table, op="attn3d", channels=32))
    slot = tiny_space.slot("down0")
    key = choice_key(tiny_space, slot, next(c for c in slot.choices if c.op == "attn3d"))
    with pytest.raises(NasError, match="working set .* far outside|far outside .*working set"):
        model.key_cost(key)
    # Between rows, attention memory follows the op's own working set, not C*F*H*W.
    model = CostModel(tiny_space, without(table, op="attn3d", channels=64, height=4))
    key = OpKey.of("attn3d", 64, 4, 4, 4, {"heads": 4})
    rows = table.lookup()
    assert model.key_cost(key).coverage == "interpolated"
    assert model.key_cost(key).working_set_mb == pytest.approx(rows[key]["working_set_mb"], rel=0.15)


class SquareOp(TemporalOp):
    """A user op whose working set grows with the square of the pixels (like attention), with a
    parameter the table must keep apart (``fold``)."""

    name = "test_square"
    defaults = {"fold": 2}

    def __init__(self, channels, frames, norm_groups=32, **params):
        super().__init__(channels, frames, norm_groups, **params)
        self.proj = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, hidden_states, num_frames):
        tokens = hidden_states.flatten(2)  # (F, C, HW)
        scores = tokens.transpose(1, 2) @ tokens  # (F, HW, HW)
        return hidden_states + self.proj(hidden_states) * scores.mean() * self.params["fold"]


def test_extrapolation_within_limits_is_flagged(tiny_space, table):
    model = CostModel(tiny_space, table)
    key = choice_key(
        tiny_space, tiny_space.slot("down1"), next(c for c in tiny_space.slot("down1").choices if c.op == "conv1d")
    )
    bigger = OpKey.of("conv1d", key.channels, key.frames, 12, 12, {"kernel": 3})  # 2.25x the largest (8x8) work
    biggest = OpKey.of("conv1d", key.channels, key.frames, 16, 16, {"kernel": 3})  # 4x: the limit
    assert model.key_cost(bigger).coverage == model.key_cost(biggest).coverage == "extrapolated"
    assert model.key_cost(biggest).latency_ms > model.key_cost(bigger).latency_ms > model.key_cost(key).latency_ms
    with pytest.raises(NasError, match="far outside"):
        model.key_cost(OpKey.of("conv1d", key.channels, key.frames, 24, 24, {"kernel": 3}))


def test_key_with_no_basis_is_an_error_not_zero(tiny_space, table):
    model = CostModel(tiny_space, without(table, op="conv3d"))
    arch = Architecture.from_dict(tiny_space, {"slots": {s: {"op": "conv3d"} for s in tiny_space.slot_names}})
    with pytest.raises(NasError, match="no conv3d rows"):
        model.predict(arch)
    with pytest.raises(NasError, match="no spatial row for this backbone"):
        CostModel(tiny_space, without(table, op="spatial")).predict(tiny_space.architecture("reference"))


def test_failed_rows_make_architectures_infeasible(tiny_space, table):
    rows = table.rows.copy()
    mask = (rows["op"] == "attn3d") & (rows["channels"] == 32)
    rows.loc[mask, ["status", "latency_p50_ms", "latency_p90_ms", "working_set_mb"]] = [
        "oom",
        math.nan,
        math.nan,
        math.nan,
    ]
    model = CostModel(tiny_space, CostTable(rows, dict(table.meta)))
    slots = {s: {"op": "none"} for s in tiny_space.slot_names}
    slots["down0"] = {"op": "attn3d"}
    p = model.predict(Architecture.from_dict(tiny_space, {"slots": slots}))
    assert not p.runs and math.isinf(p.latency_ms)
    latency, memory = model.price(np.stack([model.encode(Architecture.from_dict(tiny_space, {"slots": slots}))]))
    assert math.isinf(latency[0]) and math.isinf(memory[0])


def test_memory_tracker_counts_live_tensor_peak():
    x = torch.randn(256, 256)
    with MemoryTracker() as tracker:
        a = x @ x  # 256 KB
        b = a + 1  # 256 KB, both alive
        del a
        c = b * 2  # a was freed: still 512 KB live at most
        del b, c
    assert tracker.peak == 2 * 256 * 256 * 4
    assert tracker.live == 0


def test_memory_tracker_counts_no_view_of_a_weight_or_input():
    # The Neural Engine ops view their weights (1x1 conv from a Linear, Conv3d taps) on every call;
    # were a view an allocation, each layer's weights would stay "live" for the rest of a whole model.
    weight, x = torch.randn(64, 64), torch.randn(1, 64, 4, 16)
    with MemoryTracker() as tracker:
        for _ in range(3):
            y = torch.nn.functional.conv2d(x, weight[:, :, None, None])  # 16 KB output, the weight's view free
            y.add_(1)  # in place: no allocation
            del y
        _view = weight.t()  # a view: no allocation
    assert tracker.peak == 64 * 4 * 16 * 4
    assert tracker.live == 0


def test_slot_context_grows_with_skips(tiny_space):
    context = slot_context_bytes(tiny_space, 4)
    assert set(context) == set(tiny_space.slot_names)
    assert context["mid"] > context["down0"]  # more skips held at the bottom of the UNet
    assert all(v > 0 for v in context.values())


def test_cost_command_json(cli, tiny_space, table, tmp_path):
    from tests.conftest import TINY

    table.save(tmp_path / "t.csv")
    code, out, err = cli("cost", TINY, "--table", tmp_path / "t.csv", "--passes", "4", "--json")
    assert code == 0, err
    import json

    report = json.loads(out)
    assert report["passes"] == 4 and report["complete"] and report["missing"] == []
    fixed = {f["part"]: f for f in report["fixed"]}
    assert fixed["decoder"]["calls"] == tiny_space.video.frames and fixed["text_encoder"]["calls"] == 1
    assert report["latency_ms"] == pytest.approx(
        fixed["text_encoder"]["total_ms"] + 4 * report["unet_ms"] + fixed["decoder"]["total_ms"]
    )
    resident = report["weights_mb"] + sum(f["weights_mb"] for f in fixed.values())
    largest = max(report["activation_mb"], *(f["working_set_mb"] for f in fixed.values()))
    assert report["peak_memory_mb"] == pytest.approx(resident + largest)
    assert set(report["coverage"]) == {"exact", "interpolated", "extrapolated"}
    assert [s["slot"] for s in report["slots"]] == tiny_space.slot_names


register_op(SquareOp)


def user_table(rows, meta=None):
    frame = pd.DataFrame(
        [
            {
                **k.as_dict(),
                "latency_p50_ms": ms,
                "latency_p90_ms": ms,
                "working_set_mb": mb,
                "samples": 3,
                "status": status,
                "message": "",
            }
            for k, ms, mb, status in rows
        ],
        columns=COLUMNS,
    )
    frame = frame.map(lambda v: "" if isinstance(v, float) and math.isnan(v) else str(v))
    return CostTable(validate_rows(frame, "t.csv"), {"precision": "fp32", **(meta or {})})


def square_key(size, fold=2):
    return OpKey.of("test_square", 32, 4, size, size, {"fold": fold})


def true_mb(key):
    return SquareOp.working_set(key.channels, key.frames, key.height, key.width, key.param_dict) / 2**20


def test_user_op_memory_is_extrapolated_along_its_own_working_set(tiny_space):
    rows = [(square_key(s), float(s), true_mb(square_key(s)), "ok") for s in (2, 4)]
    model = CostModel(tiny_space, user_table(rows))
    cost = model.key_cost(square_key(5))
    assert cost.coverage == "extrapolated"
    # the op's working set grows with (H*W)^2: C*F*H*W would give 4x4's memory x 25/16, 1.56x too little
    assert cost.working_set_mb == pytest.approx(true_mb(square_key(5)), rel=0.05)


def test_keys_carry_every_op_parameter(tiny_space):
    assert square_key(4, fold=2) != square_key(4, fold=4)
    assert square_key(4).params == "fold=2" and OpKey.of("x", 1, 1, 1, 1, {"b": 1, "a": 2}).params == "a=2;b=1"
    data = read_yaml_mapping(tiny_space.source)
    data["choices"] = [{"op": "none"}, {"op": "test_square", "fold": 2}, {"op": "test_square", "fold": 4}]
    data.pop("architectures")
    space = SearchSpace.from_dict(data)
    keys = [k for k in table_plan(space) if k.op == "test_square"]
    assert len(keys) == 2 * len({(s.channels, s.height) for s in space.slots})
    assert {k.param_dict["fold"] for k in keys} == {2, 4}
    # a table row that omits a parameter gets the op's default; one the op does not have is refused
    assert user_table([(OpKey("test_square", 32, 4, 4, 4, ""), 1.0, 1.0, "ok")]).rows.loc[0, "params"] == "fold=2"
    with pytest.raises(NasError, match="test_square has no parameter heads"):
        user_table([(OpKey("test_square", 32, 4, 4, 4, "heads=4"), 1.0, 1.0, "ok")])


def test_a_larger_row_that_ran_overrides_a_smaller_failure(tiny_space):
    # 2x2 failed (say a flaky oom), 8x8 ran: 4x4 lies below a shape that ran, so it is priced, not infeasible.
    rows = [
        (square_key(2), math.nan, math.nan, "oom"),
        (square_key(3), 3.0, true_mb(square_key(3)), "ok"),
        (square_key(8), 8.0, true_mb(square_key(8)), "ok"),
    ]
    model = CostModel(tiny_space, user_table(rows))
    assert model.key_cost(square_key(4)).runs
    # beyond every row that ran, the nearest failure below decides, not the first failed row in the file
    rows = [
        (square_key(2), 2.0, true_mb(square_key(2)), "ok"),
        (square_key(3), math.nan, math.nan, "unsupported"),
        (square_key(4), math.nan, math.nan, "timeout"),
    ]
    cost = CostModel(tiny_space, user_table(rows)).key_cost(square_key(5))
    assert not cost.runs and cost.status == "timeout" and cost.coverage == "extrapolated"
    # error rows (the measurement failed) are not evidence either way; the exact key keeps its message
    rows = [
        (square_key(2), 2.0, true_mb(square_key(2)), "ok"),
        (square_key(3), math.nan, math.nan, "error"),
        (square_key(4), 4.0, true_mb(square_key(4)), "ok"),
    ]
    table = user_table(rows)
    table.rows.loc[1, "message"] = "ValueError: bug in my op"
    model = CostModel(tiny_space, table)
    assert model.key_cost(square_key(3)).status == "error"
    assert model.key_cost(square_key(3)).message == "ValueError: bug in my op"
    assert CostModel(tiny_space, user_table([rows[0], rows[2]])).key_cost(square_key(3)).runs


def test_a_generation_holds_the_largest_working_set_of_its_phases(tiny_space, table):
    """Weights of all three parts stay resident; the phases run one after another, so only the largest working set
    counts. A decoder whose frame needs more than the UNet sets the peak; then the vectorised price agrees."""
    arch = tiny_space.architecture("reference")
    rows = table.rows.copy()
    decoder = rows["op"] == "decoder"
    base = CostModel(tiny_space, table).predict(arch)
    rows.loc[decoder, "working_set_mb"] = base.activation_mb + 100.0
    model = CostModel(tiny_space, CostTable(rows, dict(table.meta)))
    p = model.predict(arch)
    fixed = {f["part"]: f for f in p.fixed}
    resident = p.weights_mb + fixed["text_encoder"]["weights_mb"] + fixed["decoder"]["weights_mb"]
    assert fixed["decoder"]["weights_mb"] > 0 and fixed["text_encoder"]["weights_mb"] > 0
    assert p.peak_memory_mb == pytest.approx(resident + base.activation_mb + 100.0)
    assert p.peak_memory_mb == pytest.approx(p.weights_mb + p.activation_mb + p.fixed_mb)
    assert base.peak_memory_mb == pytest.approx(resident + base.activation_mb)  # the UNet's was the largest
    latency, memory = model.price(np.stack([model.encode(arch)]))
    assert memory[0] == pytest.approx(p.peak_memory_mb) and latency[0] == pytest.approx(p.latency_ms)


def test_fixed_parts_a_table_lacks_are_missing_never_free(tiny_space, table, cli, tmp_path):
    from tests.conftest import TINY

    arch = tiny_space.architecture("reference")
    bare = without(table, op="decoder")
    p = CostModel(tiny_space, bare).predict(arch)
    full = CostModel(tiny_space, table).predict(arch)
    assert not p.complete and p.missing == ["decoder"] and p.fixed_parts == ["text_encoder"]
    decoder = next(f for f in full.fixed if f["part"] == "decoder")
    assert p.latency_ms == pytest.approx(full.latency_ms - decoder["total_ms"])  # what is priced, said incomplete
    path = bare.save(tmp_path / "bare.csv")
    code, out, err = cli("cost", TINY, "--table", path)
    assert code == 0, err
    assert f"decoder (tiny): not in {path} (missing)" in out
    assert "latency at least" in out and "+ decoder (missing)" in out
    code, out, _ = cli("cost", TINY, "--table", path, "--json")
    report = json.loads(out)
    assert report["complete"] is False and report["missing"] == ["decoder"]
    assert next(f for f in report["fixed"] if f["part"] == "decoder")["latency_ms"] is None  # not 0, not NaN


def test_fixed_part_rows_of_the_first_form_still_price(tiny_space, table, tmp_path):
    """A hand-written ``vae_decode`` row (the old name, no fingerprint) is read as ``decoder`` with one deprecation
    line and priced as it meant: once per generation, its working set the part's whole footprint."""
    arch = tiny_space.architecture("reference")
    rows = table.rows[~table.rows["op"].isin(["decoder", "text_encoder"])]
    path = CostTable(rows.reset_index(drop=True), {**table.meta, "space": "tiny"}).save(tmp_path / "old.csv")
    lines = path.read_text().splitlines()
    lines.append("vae_decode,4,4,16,16,,30,30,300,5,ok,,")
    path.write_text("\n".join(lines) + "\n")
    from nas.space.yaml_io import write_yaml

    write_yaml(path.with_suffix(".yaml"), {**read_yaml_mapping(path.with_suffix(".yaml")), "rows": len(lines) - 1})
    with pytest.warns(NasWarning, match="op vae_decode is deprecated; use decoder"):
        old = CostTable.load(path)
    p = CostModel(tiny_space, old).predict(arch)
    decoder = next(f for f in p.fixed if f["part"] == "decoder")
    assert decoder["coverage"] == "legacy" and decoder["calls"] == 1 and decoder["total_ms"] == 30.0
    assert p.missing == ["text_encoder"] and p.fixed_mb == pytest.approx(300.0)


def test_spatial_row_is_keyed_by_the_backbone(tiny_space, table, recwarn):
    data = read_yaml_mapping(tiny_space.source)
    data["name"] = "other"
    data["backbone"]["layers_per_block"] = 2  # same first width, another backbone
    other = SearchSpace.from_dict(data)
    assert spatial_key(other) != spatial_key(tiny_space)
    with pytest.warns(NasWarning, match="made for space 'tiny'"):
        model = CostModel(other, CostTable(table.rows, {**table.meta, "space": "tiny"}))
    with pytest.raises(NasError, match="no spatial row for this backbone .*made for space 'tiny'"):
        model.predict(other.architecture("reference"))
    # a first-format spatial row (no fingerprint) serves only the space named in its sidecar
    legacy = table.rows.copy()
    legacy.loc[legacy["op"] == "spatial", "params"] = ""
    old = CostTable(legacy, {**table.meta, "space": "tiny"})
    assert CostModel(tiny_space, old).spatial.runs
    with pytest.raises(NasError, match="first table format"):
        CostModel(other, old).spatial  # noqa: B018 (reading the property raises)


def test_cost_command_warns_about_another_space_and_says_what_memory_holds(cli, tmp_path):
    from tests.conftest import ROOT, TINY, here_table

    shipped = CostTable.load(here_table(ROOT / "latency_tables" / "cpu_tiny.csv", tmp_path / "here"))
    unet_only = shipped.rows[~shipped.rows["op"].isin(["text_encoder", "decoder"])].reset_index(drop=True)
    path = CostTable(unet_only, {**shipped.meta, "space": "other"}).save(tmp_path / "t.csv")
    code, out, err = cli("cost", TINY, "--table", path)
    assert code == 0, err
    assert err.startswith("nas: warning: ") and "made for space 'other'" in err and len(err.splitlines()) == 1
    assert "text_encoder (tiny): not in" in out and "(missing): the total is incomplete" in out
