"""The exact front: price every architecture of a space at once with the vectorised cost model.

Ground truth for the samplers, for spaces up to ~10^7 architectures (cheap, vectorised
proxies only: the proxy scores every architecture too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas.cost.cost_model import CostModel
from nas.errors import NasError
from nas.quality.proxies import QualityProxy
from nas.search.optuna_internals import is_pareto_front
from nas.search.results import COLUMNS, LEAST_VIOLATING
from nas.search.study import Budgets
from nas.space import SearchSpace

MAX_ARCHITECTURES = 20_000_000
CHUNK = 1_000_000


def all_choices(space: SearchSpace, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the space's architectures in mixed-radix order, as choice indices."""
    radices = [len(s.choices) for s in space.slots]
    number = np.arange(start, stop, dtype=np.int64)
    columns = []
    for radix in reversed(radices):
        columns.append(number % radix)
        number //= radix
    return np.stack(columns[::-1], axis=1).astype(np.int16)


def exhaustive_front(
    space: SearchSpace, cost: CostModel, budgets: Budgets, proxy: QualityProxy | None
) -> tuple[pd.DataFrame, dict]:
    """Pareto set over (latency, memory[, quality]) of all feasible architectures, and counts."""
    total = space.num_architectures
    if total > MAX_ARCHITECTURES:
        raise NasError(
            f"{space.source}: {total:,} architectures is too many to enumerate "
            f"(limit {MAX_ARCHITECTURES:,}); use --sampler nsga2"
        )
    if proxy is not None and not proxy.vectorised:
        raise NasError(
            f"--proxy {proxy.name} scores one architecture at a time; exhaustive search takes "
            "a vectorised proxy (params, flops) or none"
        )
    kept, feasible_count, least = [], 0, None
    for start in range(0, total, CHUNK):
        choices = all_choices(space, start, min(total, start + CHUNK))
        latency, memory = cost.price(choices, budgets.passes)
        over_l, over_m = budgets.violations(latency, memory)
        feasible = (over_l <= 0) & (over_m <= 0)
        feasible_count += int(feasible.sum())
        quality = proxy.score_many(choices) if proxy is not None else np.zeros(len(choices))
        if feasible.any():
            loss = np.column_stack([latency, memory, -quality])[feasible]
            on_front = is_pareto_front(loss)
            kept.append((choices[feasible][on_front], loss[on_front], True))
        elif not feasible_count:
            runnable = np.flatnonzero(np.isfinite(latency) & np.isfinite(memory))  # inf: the device cannot run it
            violation = np.maximum(over_l, 0) + np.maximum(over_m, 0)
            order = runnable[np.argsort(violation[runnable])[:LEAST_VIOLATING]]
            if not len(order):
                continue
            candidate = (choices[order], np.column_stack([latency, memory, -quality])[order], violation[order])
            if least is None or candidate[2][0] < least[2][0]:
                least = candidate
    if kept:
        choices = np.concatenate([k[0] for k in kept])
        loss = np.concatenate([k[1] for k in kept])
        on_front = is_pareto_front(loss)
        choices, loss, feasible_flag = choices[on_front], loss[on_front], True
    elif least is None:
        raise NasError(
            f"{cost.table.path}: the device runs no architecture of {space.source} (every one has an "
            "unsupported or failed op)"
        )
    else:
        choices, loss, _ = least
        feasible_flag = False
    rows = []
    for index, values in zip(choices, loss):
        arch = space.decode(index)
        rows.append(
            {
                "arch_id": arch.id,
                "latency_ms": values[0],
                "peak_memory_mb": values[1],
                "quality": -values[2] if proxy is not None else np.nan,
                "feasible": feasible_flag,
                **{name: choice.label for name, choice in arch.choices},
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS + space.slot_names).drop_duplicates("arch_id")
    return frame.sort_values("latency_ms").reset_index(drop=True), {"architectures": total, "feasible": feasible_count}
