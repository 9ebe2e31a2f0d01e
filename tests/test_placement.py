"""Placement-aware estimate: the Neural Engine rules, the fallback pricing, the placement column."""

import pytest
import torch
import yaml
from torch import nn

from nas.cost.cost_model import CostModel
from nas.cost.placement import PlacementTracker
from nas.cost.roofline import CHIPS, estimate_table, roofline_ms, workload_work
from nas.cost.table import CostTable
from nas.errors import NasError
from nas.space import Architecture, SearchSpace

CHIP = CHIPS["a18-pro-ne"]


def run(module, x):
    with torch.device("meta"):
        module = module.to("meta")
        x = x.to("meta")
        weights = sum(p.numel() for p in module.parameters()) * 2
        return workload_work(module, (x,), "cpu", weights)


class Sandwich(nn.Module):
    """2D conv -> a layer the rules name -> 2D conv."""

    def __init__(self, middle: nn.Module, three_d: bool = False):
        super().__init__()
        self.a, self.middle, self.b, self.three_d = nn.Conv2d(8, 8, 1), middle, nn.Conv2d(8, 8, 1), three_d

    def forward(self, x):
        x = self.a(x)
        y = self.middle(x[:, :, None] if self.three_d else x)
        return self.b(y[:, :, 0] if self.three_d else y)


@pytest.mark.parametrize(
    "middle, three_d, rule",
    [
        (nn.Conv3d(8, 8, (3, 3, 3), padding=1), True, "conv3d"),
        (nn.Conv2d(8, 8, (1, 15), padding=(0, 7)), False, "kernel>13"),
    ],
)
def test_ops_the_rules_name_fall_back_and_cost_their_transfers(middle, three_d, rule):
    x = torch.empty(1, 8, 4, 16)
    mixed = run(Sandwich(middle, three_d), x)
    assert mixed.placement == "mixed" and rule in mixed.notes
    assert mixed.fallback.flops > 0 and mixed.ne.flops > 0
    # the fallback conv reads a's output and hands its own to b: at least two tensors cross units
    assert mixed.switches >= 2 and mixed.transfer_bytes >= 2 * x.numel() * 2
    on_ne = run(Sandwich(nn.Conv2d(8, 8, 3, padding=1)), x)
    assert on_ne.placement == "ne" and on_ne.transfer_bytes == 0 and not on_ne.notes
    assert roofline_ms(mixed, CHIP, 0.2) > roofline_ms(on_ne, CHIP, 0.2)


def test_an_axis_over_16384_runs_off_the_neural_engine():
    work = run(nn.Conv2d(8, 8, 1), torch.empty(1, 8, 1, 20000))
    assert work.placement == "cpu" and "axis>16384" in work.notes and work.ne.flops == 0
    tracker = PlacementTracker()
    assert tracker.placement == "ne"


@pytest.fixture(scope="module")
def long_clip_space(tmp_path_factory):
    """tiny.yaml with 64 frames at 256x256 px: attn3d at level 0 attends over 64*32*32 = 65,536 tokens."""
    from tests.conftest import TINY

    data = yaml.safe_load(TINY.read_text())
    data["video"].update({"frames": 64, "height": 256, "width": 256})
    data["choices"] = [c for c in data["choices"] if c["op"] in ("none", "attn1d", "attn3d")]
    data["slots"] = [s for s in data["slots"] if s["name"] in ("down0", "down3")]
    data.pop("architectures", None)
    path = tmp_path_factory.mktemp("long") / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return SearchSpace.load(path)


def test_estimate_marks_and_prices_rows_the_neural_engine_cannot_run(long_clip_space, tmp_path):
    table = estimate_table(long_clip_space, CHIP)
    rows = table.rows.set_index(["op", "height"])
    assert rows.loc[("attn3d", 32), "placement"] == "cpu"  # 65,536-token sequences
    assert rows.loc[("attn3d", 4), "placement"] == "ne"
    assert rows.loc[("attn1d", 32), "placement"] == "ne"
    assert rows.loc[("attn3d", 32), "status"] == "ok" and rows.loc[("attn3d", 32), "latency_p50_ms"] > 0
    off = table.meta["placement"]["off_ne"]
    assert any("attn3d" in key and "height=32" in key and "axis>16384" in note for key, note in off.items()), off
    assert set(table.meta["placement_rules"]) == {"conv3d", "axis>16384", "kernel>13"}
    path = table.save(tmp_path / "t.csv")
    assert path.read_text().splitlines()[0].endswith(",status,message,placement")
    loaded = CostTable.load(path)
    arch = Architecture.from_dict(
        long_clip_space,
        {
            "slots": {
                "down0": {"op": "attn3d", "count": 1, "heads": 4},
                "down3": {"op": "attn1d", "count": 1, "heads": 4},
            }
        },
    )
    prediction = CostModel(long_clip_space, loaded).predict(arch)
    assert prediction.placement == {"ne": 2, "cpu": 1}  # spatial + attn1d on the NE, attn3d on the CPU
    assert [r["placement"] for r in prediction.slots] == ["cpu", "ne"]


def test_tables_without_a_placement_column_still_load(tmp_path, tiny_space):
    table = estimate_table(tiny_space, CHIP)
    path = table.save(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    old = [",".join(line.split(",")[:-1]) for line in lines]  # the format before the column
    path.write_text("\n".join(old) + "\n")
    loaded = CostTable.load(path)
    assert (loaded.rows["placement"] == "").all()
    arch = tiny_space.architecture("reference")
    assert set(CostModel(tiny_space, loaded).predict(arch).placement) == {"unknown"}
    path.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",npu"] + lines[2:]) + "\n")
    with pytest.raises(NasError, match=r"t.csv: row 2: placement must be empty or one of ne, cpu, gpu, mixed"):
        CostTable.load(path)


def test_calibration_to_one_figure_fits_the_whole_generation(tiny_space):
    arch = tiny_space.architecture("reference")
    table = estimate_table(tiny_space, CHIP, calibrate=(arch, 4, 200.0), holdout=False, check=(arch, 4, 250.0))
    calibration = table.meta["calibration"]
    assert calibration["fit_on"]["published_ms"] == 200.0 and 0 < calibration["efficiency"] <= 1
    # the fitted efficiency reproduces the figure for the whole generation: text encoder, 4 passes, decoder
    prediction = CostModel(tiny_space, table).predict(arch, 4)
    assert prediction.complete and prediction.latency_ms == pytest.approx(200.0, rel=1e-3)
    check = calibration["check"]
    assert check["published_ms"] == 250.0 and check["predicted_ms"] == pytest.approx(200.0, rel=1e-3)
    assert check["error_pct"] == pytest.approx(-20.0, abs=0.2)
    assert check["unet_ms"] == pytest.approx(4 * prediction.unet_ms, rel=1e-3)
    assert set(check["fixed_ms"]) == {"text_encoder", "decoder"}
    keys = set(table.rows["op"])
    assert {"text_encoder", "decoder"} <= keys  # the fixed parts are rows of the estimate like any op


def test_the_roofline_prices_each_op_by_what_bounds_it():
    """A convolution with much arithmetic per byte is compute-bound, a 1x1 conv on a wide tensor memory-bound: the
    estimate takes each op's own bound, so halving the efficiency doubles only the compute-bound op's time."""
    heavy = run(nn.Conv2d(64, 64, 3, padding=1), torch.empty(1, 64, 64, 64))
    light = run(nn.Conv2d(8, 8, 1), torch.empty(1, 8, 256, 256))
    no_dispatch = {"dispatch_ms": 0.0}
    assert roofline_ms(heavy, CHIP, 0.1, **no_dispatch) == pytest.approx(
        2 * roofline_ms(heavy, CHIP, 0.2, **no_dispatch), rel=1e-6
    )
    assert roofline_ms(light, CHIP, 0.1, **no_dispatch) == pytest.approx(
        roofline_ms(light, CHIP, 0.2, **no_dispatch), rel=1e-6
    )
    # an op's bytes: its weights (fp32 here) apart from the activations it reads and writes
    assert heavy.ne.op_weight_bytes == [(64 * 64 * 9 + 64) * 4]
    assert heavy.ne.op_activation_bytes == [2 * 64 * 64 * 64 * 4]
