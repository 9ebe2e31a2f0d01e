"""``nas cost``: the price of one architecture on one device table, as a report a notebook can keep.

What cannot run on the device has no price: its latency and memory are infinite in the
:class:`~nas.cost.cost_model.Prediction` (so that comparisons and sorting still work), and
``null`` in the JSON form, never a stand-in number nor JSON's non-standard ``Infinity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.cost.cost_model import CostModel, Prediction
from nas.cost.table import CostTable
from nas.errors import NasError
from nas.machine import warn_other_machine
from nas.options import renamed_kwargs
from nas.space import Architecture, SearchSpace


@dataclass
class CostReport:
    """An architecture, the table that priced it, and the prediction."""

    architecture: Architecture
    table: CostTable
    table_path: Path
    prediction: Prediction

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``nas cost --json``): infinities as None."""
        return no_infinity(
            {
                "arch_id": self.architecture.id,
                "table": str(self.table_path),
                "provenance": self.table.meta["provenance"],
                **self.prediction.as_dict(),
            }
        )


@renamed_kwargs(steps="passes")
def price(
    space: str | Path | SearchSpace, table: str | Path, arch: str | Path = "reference", passes: int | None = None
) -> CostReport:
    """Latency and memory of ``arch`` of ``space`` from the device table at ``table``.

    ``passes`` is UNet evaluations per generation (default: the space's).
    """
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    architecture = space.architecture(arch)
    if passes is not None and passes < 1:
        raise NasError(f"--passes must be at least 1, got {passes}")
    loaded = CostTable.load(table)
    warn_other_machine(loaded.meta, table)
    return CostReport(architecture, loaded, Path(table), CostModel(space, loaded).predict(architecture, passes))


def no_infinity(value: Any) -> Any:
    """``value`` with every non-finite float (nested in dicts and lists) replaced by None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: no_infinity(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_infinity(v) for v in value]
    return value
