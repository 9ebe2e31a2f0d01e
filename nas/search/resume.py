"""What a study's trials mean, stored in the study, so that a resume never mixes two searches.

A study's objective values are only comparable when they come from the same space, the same
device table (its rows and sidecar, not its file name), the same budgets and steps, and the
same proxy with the same options and seed. :func:`setup_record` condenses those into plain
strings (the space and table as SHA-256 digests of their contents); the first run stores them
in the study's user attributes and every later run, on any worker or machine, must match.
The sampler, screen, pruner and worker count may change between runs: they decide which
architectures are tried next, not what a finished trial's numbers mean.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna

from nas.cost.table import CostTable
from nas.errors import NasError
from nas.space.yaml_io import read_yaml_mapping

SETUP_ATTR = "nas_setup"
VOLATILE_META = ("date", "command", "rows")  # sidecar keys that never change a price


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def setup_record(setup) -> dict[str, str]:
    """The parts of a :class:`~nas.search.study.SearchSetup` that fix what a trial's numbers mean."""
    table = CostTable.load(setup.table_path)
    meta = {k: v for k, v in table.meta.items() if k not in VOLATILE_META}
    budgets = setup.budgets
    return {
        "space": _digest(read_yaml_mapping(setup.space_path)),
        "table": _digest([table.rows.to_csv(index=False), meta]),
        "latency_budget_ms": f"{budgets.latency_ms:g}",
        "memory_budget_mb": f"{budgets.memory_mb:g}",
        "passes": str(budgets.passes),
        "proxy": setup.proxy,
        "proxy_options": json.dumps({k: str(v) for k, v in sorted(setup.proxy_options.items())}),
        "seed": str(setup.seed),
    }


def check_resume(study: optuna.Study, record: dict[str, str], where: str) -> None:
    """Store ``record`` in a new study; refuse, in one line, a study made by another setup."""
    stored = study.user_attrs.get(SETUP_ATTR)
    hint = "use another --out (or --study NAME) to start a new study"
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise NasError(
                f"{where}: study {study.study_name!r} has trials but no record of its setup "
                f"(made by an older nas); {hint}"
            )
        study.set_user_attr(SETUP_ATTR, record)
        return
    stored = {("passes" if key == "steps" else key): value for key, value in stored.items()}  # older nas: steps
    changed = [key for key in record if stored.get(key) != record[key]]
    if changed:
        what = ", ".join(
            f"{key} {stored.get(key)!s} -> {record[key]}" if key not in ("space", "table") else f"{key} contents"
            for key in changed
        )
        raise NasError(f"{where}: study {study.study_name!r} was run with another setup ({what}); {hint}")
