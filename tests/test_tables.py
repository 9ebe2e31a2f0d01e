"""Device tables: format validation, the plan, bad tables as one-line errors."""

import pandas as pd
import pytest
import yaml

from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, CostTable
from nas.errors import NasError
from tests.conftest import TINY


@pytest.fixture
def table_copy(tiny_estimate, tmp_path):
    """A writable copy (CSV text, sidecar dict) and a function that writes them back."""
    csv = tmp_path / "t.csv"

    def write(lines: list[str], meta: dict | None = None):
        csv.write_text("\n".join(lines) + "\n")
        side = yaml.safe_load(tiny_estimate.with_suffix(".yaml").read_text()) if meta is None else meta
        csv.with_suffix(".yaml").write_text(yaml.safe_dump(side))
        return csv

    return tiny_estimate.read_text().splitlines(), write


def test_plan_lists_each_key_once(tiny_space):
    keys = table_plan(tiny_space)
    assert len(keys) == len(set(keys))
    assert keys[0].op == "spatial"
    ops = {(k.op, k.channels, k.height) for k in keys}
    assert ("attn3d", 32, 16) in ops and ("conv1d", 64, 2) in ops
    # every non-none choice of every slot is covered
    for slot in tiny_space.slots:
        for choice in slot.choices:
            if not choice.is_none:
                assert any(k.op == choice.op and k.channels == slot.channels and k.height == slot.height for k in keys)


def test_plan_command_writes_csv(cli, tmp_path):
    code, out, _ = cli("table", "plan", TINY, "-o", tmp_path / "plan.csv")
    assert code == 0
    plan = pd.read_csv(tmp_path / "plan.csv")
    assert list(plan.columns) == ["op", "channels", "frames", "height", "width", "params"]
    assert len(plan) == len(plan.drop_duplicates()) == 19
    assert list(plan["op"][:3]) == ["spatial", "text_encoder", "decoder"]  # the fixed parts come with every plan
    assert plan["frames"][2] == 1  # decoded frame by frame: one latent frame per call


def test_table_round_trip(tiny_estimate):
    table = CostTable.load(tiny_estimate)
    assert list(table.rows.columns) == COLUMNS
    assert table.meta["provenance"] == "estimated" and table.meta["rows"] == len(table.rows)


def test_validate_shipped_tables(cli):
    code, out, err = cli("table", "validate")
    assert code == 0, err
    assert out.count("ok  ") >= 1


def replace_field(line: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[COLUMNS.index(column)] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda l: [l[0].replace(",working_set_mb", ",mem")] + [",".join(r.split(",")) for r in l[1:]],
            "missing column(s) working_set_mb",
        ),
        (
            lambda l: [l[0], replace_field(l[1], "channels", "wide")] + l[2:],
            "row 2: channels must be a number, got 'wide'",
        ),
        (
            lambda l: [l[0], l[1], replace_field(l[2], "latency_p50_ms", "-1")] + l[3:],
            "row 3: latency_p50_ms must be a finite",
        ),
        (
            lambda l: [l[0], l[1], replace_field(l[2], "latency_p50_ms", "nan")] + l[3:],
            "row 3: latency_p50_ms must be a finite",
        ),
        (lambda l: l + [replace_field(l[2], "latency_p90_ms", "999")], "duplicate key"),
        (lambda l: [l[0], replace_field(l[1], "op", "warp")] + l[2:], "row 2: unknown temporal op 'warp'"),
        (lambda l: [l[0], replace_field(l[1], "status", "crashed")] + l[2:], "row 2: status must be one of"),
        (lambda l: [l[0], replace_field(l[1], "channels", "3.5")] + l[2:], "row 2: channels must be an integer"),
    ],
)
def test_bad_table_is_one_line_naming_file_and_row(cli, table_copy, mutate, message):
    lines, write = table_copy
    path = write(mutate(list(lines)))
    code, _, err = cli("table", "validate", path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(path) in err and message in err, err


def test_identical_duplicate_rows_are_tolerated(table_copy):
    lines, write = table_copy
    meta = yaml.safe_load((write(lines)).with_suffix(".yaml").read_text())
    path = write(lines + [lines[3]], meta)
    assert len(CostTable.load(path).rows) == len(lines) - 1


def test_missing_sidecar(cli, table_copy):
    lines, write = table_copy
    path = write(lines)
    path.with_suffix(".yaml").unlink()
    code, _, err = cli("table", "validate", path)
    assert code == 2 and "sidecar t.yaml is missing" in err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rows": 3}, "says 3 rows but the CSV has"),
        ({"provenance": "guessed"}, "provenance must be one of"),
        ({"device": None}, "missing key(s) device"),
    ],
)
def test_sidecar_that_does_not_match(cli, table_copy, change, message):
    lines, write = table_copy
    meta = yaml.safe_load(write(lines).with_suffix(".yaml").read_text())
    for key, value in change.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    path = write(lines, meta)
    code, _, err = cli("table", "validate", path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_failed_rows_may_leave_values_empty(table_copy):
    lines, write = table_copy
    failed = replace_field(
        replace_field(replace_field(lines[4], "status", "oom"), "latency_p50_ms", ""), "latency_p90_ms", ""
    )
    table = CostTable.load(write([lines[0]] + lines[1:4] + [failed] + lines[5:]))
    assert table.rows.loc[3, "status"] == "oom"
    with pytest.raises(NasError):
        CostTable.load(write([lines[0]] + lines[1:4] + [replace_field(lines[4], "latency_p50_ms", "")] + lines[5:]))
