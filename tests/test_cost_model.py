"""CostModel: exact sums, vectorised pricing, interpolation with honest coverage, failures."""

import math

import numpy as np
import pytest
import torch

from nas.cost.cost_model import CostModel
from nas.cost.memory import MemoryTracker, slot_context_bytes
from nas.cost.plan import choice_key, spatial_key
from nas.cost.roofline import CHIPS, estimate_table
from nas.cost.table import LatencyTable
from nas.errors import NasError
from nas.model import VideoUNet
from nas.space import Architecture


@pytest.fixture(scope="module")
def table(tiny_space):
    return estimate_table(tiny_space, CHIPS["a18-pro-ne"])


def without(table, **match):
    rows = table.rows
    mask = np.ones(len(rows), bool)
    for column, value in match.items():
        mask &= (rows[column] == value).to_numpy()
    return LatencyTable(rows[~mask].reset_index(drop=True), dict(table.meta))


def test_prediction_is_the_sum_of_rows(tiny_space, table):
    model = CostModel(tiny_space, table)
    arch = tiny_space.architecture("reference")
    rows = table.lookup()
    expected = rows[spatial_key(tiny_space)]["latency_p50_ms"]
    for slot in tiny_space.slots:
        choice = arch.choice(slot.name)
        key = choice_key(tiny_space, slot, choice)
        expected += 0 if key is None else rows[key]["latency_p50_ms"] * choice.count
    p = model.predict(arch, steps=1)
    assert p.unet_ms == pytest.approx(expected)
    assert model.predict(arch, steps=4).latency_ms == pytest.approx(4 * expected)
    assert p.coverage["exact"] == 1 + sum(1 for _, c in arch.choices if not c.is_none)
    params = sum(p.numel() for p in VideoUNet.from_space(tiny_space, arch).parameters())
    assert p.weights_mb == pytest.approx(params * 2 / 2**20)


def test_vectorised_pricing_matches_single_predictions(tiny_space, table):
    model = CostModel(tiny_space, table)
    archs = [tiny_space.sample(seed) for seed in range(50)]
    latency, memory = model.price(np.stack([model.encode(a) for a in archs]))
    for arch, lat, mem in zip(archs, latency, memory):
        p = model.predict(arch)
        assert lat == pytest.approx(p.latency_ms) and mem == pytest.approx(p.memory_mb)


def test_missing_shape_is_interpolated_between_neighbours(tiny_space, table):
    # Drop attn1d at 64 channels, 4x4: neighbours 8x8 and 2x2 remain.
    thinned = without(table, op="attn1d", channels=64, height=4)
    model = CostModel(tiny_space, thinned)
    slot = tiny_space.slot("down2")
    key = choice_key(tiny_space, slot, next(c for c in slot.choices if c.op == "attn1d"))
    cost = model.key_cost(key)
    assert cost.coverage == "interpolated"
    rows = table.lookup()
    small = rows[key.__class__("attn1d", 64, 4, 2, 2, 4, 0)]["latency_p50_ms"]
    big = rows[key.__class__("attn1d", 64, 4, 8, 8, 4, 0)]["latency_p50_ms"]
    assert small <= cost.latency_ms <= big
    assert cost.latency_ms == pytest.approx(rows[key]["latency_p50_ms"], rel=0.5)


def test_beyond_the_range_is_flagged_then_refused(tiny_space, table):
    model = CostModel(tiny_space, without(table, op="attn3d", channels=32))
    # attn3d at 32 channels now has no same-width rows: priced from the 64-channel rows by FLOPs.
    slot = tiny_space.slot("down0")
    key = choice_key(tiny_space, slot, next(c for c in slot.choices if c.op == "attn3d"))
    assert model.key_cost(key).coverage in ("interpolated", "extrapolated")
    far = key.__class__("attn3d", 64, 64, 64, 64, 4, 0)
    with pytest.raises(NasError, match="far outside the measured range"):
        model.key_cost(far)


def test_extrapolation_within_limits_is_flagged(tiny_space, table):
    model = CostModel(tiny_space, table)
    key = choice_key(tiny_space, tiny_space.slot("down1"),
                     next(c for c in tiny_space.slot("down1").choices if c.op == "conv1d"))
    bigger = key.__class__("conv1d", key.channels, key.frames, 12, 12, 0, 3)  # 2.25x the largest (8x8) work
    biggest = key.__class__("conv1d", key.channels, key.frames, 16, 16, 0, 3)  # 4x: the limit
    assert model.key_cost(bigger).coverage == model.key_cost(biggest).coverage == "extrapolated"
    assert model.key_cost(biggest).latency_ms > model.key_cost(bigger).latency_ms > model.key_cost(key).latency_ms
    with pytest.raises(NasError, match="far outside"):
        model.key_cost(key.__class__("conv1d", key.channels, key.frames, 24, 24, 0, 3))


def test_key_with_no_basis_is_an_error_not_zero(tiny_space, table):
    model = CostModel(tiny_space, without(table, op="conv3d"))
    arch = Architecture.from_dict(tiny_space, {"slots": {s: {"op": "conv3d"} for s in tiny_space.slot_names}})
    with pytest.raises(NasError, match="no conv3d rows"):
        model.predict(arch)
    with pytest.raises(NasError, match="no spatial rows"):
        CostModel(tiny_space, without(table, op="spatial")).predict(tiny_space.architecture("reference"))


def test_failed_rows_make_architectures_infeasible(tiny_space, table):
    rows = table.rows.copy()
    mask = (rows["op"] == "attn3d") & (rows["channels"] == 32)
    rows.loc[mask, ["status", "latency_p50_ms", "latency_p90_ms", "memory_mb"]] = ["oom", math.nan, math.nan, math.nan]
    model = CostModel(tiny_space, LatencyTable(rows, dict(table.meta)))
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


def test_slot_context_grows_with_skips(tiny_space):
    context = slot_context_bytes(tiny_space, 4)
    assert set(context) == set(tiny_space.slot_names)
    assert context["mid"] > context["down0"]  # more skips held at the bottom of the UNet
    assert all(v > 0 for v in context.values())


def test_cost_command_json(cli, tiny_space, table, tmp_path):
    from tests.conftest import TINY

    table.save(tmp_path / "t.csv")
    code, out, err = cli("cost", TINY, "--table", tmp_path / "t.csv", "--steps", "4", "--json")
    assert code == 0, err
    import json

    report = json.loads(out)
    assert report["steps"] == 4 and report["latency_ms"] == pytest.approx(4 * report["unet_ms"])
    assert report["memory_mb"] == pytest.approx(report["weights_mb"] + report["activation_mb"])
    assert set(report["coverage"]) == {"exact", "interpolated", "extrapolated"}
    assert [s["slot"] for s in report["slots"]] == tiny_space.slot_names
