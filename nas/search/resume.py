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
import itertools
import json
from typing import Any

import optuna

from nas.cost.table import RENAMED_COLUMNS, CostTable
from nas.errors import NasError
from nas.space.search_space import BUDGET_RENAMES
from nas.space.yaml_io import read_yaml_mapping

SETUP_ATTR = "nas_setup"
VOLATILE_META = ("date", "command", "rows")  # sidecar keys that never change a price
OLD_ATTRS = {"peak_memory_mb": "memory_mb"}  # trial attributes an older nas stored under another name


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def setup_record(setup) -> dict[str, str]:
    """The parts of a :class:`~nas.search.study.SearchSetup` that fix what a trial's numbers mean."""
    budgets = setup.budgets
    return {
        "space": _space_digests(setup.space_path)[0],
        "table": _table_digests(setup.table_path)[0],
        "latency_budget_ms": f"{budgets.latency_ms:g}",
        "memory_budget_mb": f"{budgets.peak_memory_mb:g}",
        "passes": str(budgets.passes),
        "proxy": setup.proxy,
        "proxy_options": json.dumps({k: str(v) for k, v in sorted(setup.proxy_options.items())}),
        "seed": str(setup.seed),
    }


def older_forms(setup) -> dict[str, set[str]]:
    """Stored values that mean the same as :func:`setup_record`'s: the digests an older nas made of this space.

    A renamed budgets key (``memory_mb`` -> ``peak_memory_mb``) or table column (``memory_mb`` ->
    ``working_set_mb``) changes the file, not the search: a study stored with either spelling resumes
    with the other."""
    return {"space": _space_digests(setup.space_path)[1], "table": _table_digests(setup.table_path)[1]}


def stored_attr(attrs: dict[str, Any], key: str, default: Any = None) -> Any:
    """A trial's user attribute ``key``, or the same value under the name an older nas stored it as."""
    return attrs[key] if key in attrs else attrs.get(OLD_ATTRS.get(key, key), default)


def _table_digests(path) -> tuple[str, set[str]]:
    """Digest of a table's rows and sidecar under today's column names, and under the names an older nas wrote."""
    table = CostTable.load(path)
    meta = {k: v for k, v in table.meta.items() if k not in VOLATILE_META}
    old_names = {new: old for old, new in RENAMED_COLUMNS.items()}
    return (
        _digest([table.rows.to_csv(index=False), meta]),
        {_digest([table.rows.rename(columns=old_names).to_csv(index=False), meta])},
    )


def _space_digests(path) -> tuple[str, set[str]]:
    """Digest of a space file with its budgets keys under their current names, and of every older spelling of it."""
    raw = read_yaml_mapping(path)
    budgets = raw.get("budgets")
    if not isinstance(budgets, dict):
        return _digest(raw), {_digest(raw)}
    current = {BUDGET_RENAMES.get(k, k): v for k, v in budgets.items()}
    old_names = {new: old for old, new in BUDGET_RENAMES.items() if new in current}
    forms = set()
    for n in range(len(old_names) + 1):
        for renamed in itertools.combinations(old_names, n):
            forms.add(
                _digest({**raw, "budgets": {(old_names[k] if k in renamed else k): v for k, v in current.items()}})
            )
    return _digest({**raw, "budgets": current}), forms


def check_resume(
    study: optuna.Study, record: dict[str, str], where: str, older: dict[str, set[str]] | None = None
) -> None:
    """Store ``record`` in a new study; refuse, in one line, a study made by another setup.

    ``older``: per key, stored values an older nas wrote for the same setup (see :func:`older_forms`)."""
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
    older = older or {}
    changed = [key for key in record if stored.get(key) != record[key] and stored.get(key) not in older.get(key, ())]
    if changed:
        what = ", ".join(
            f"{key} {stored.get(key)!s} -> {record[key]}" if key not in ("space", "table") else f"{key} contents"
            for key in changed
        )
        raise NasError(f"{where}: study {study.study_name!r} was run with another setup ({what}); {hint}")
