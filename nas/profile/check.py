"""Accuracy check of a device table: predicted vs measured cost of random whole architectures.

A table is only useful if the sum of its parts predicts the whole; this measures that on the
table's own backend, end to end, with the same timing protocol the profiler used.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.errors import NasError, NasWarning
from nas.machine import fingerprint, warn_other_machine
from nas.metrics import kendall_tau
from nas.model import VideoUNet
from nas.profile import timing
from nas.profile.torch_profiler import DTYPES
from nas.space import SearchSpace

ROUND_ROBIN_MB = 2048  # below this much weight in all, forwards are short: ``rounds`` rounds, each re-warmed
ROUNDS = 10  # the default number of rounds (large models: at most this many, one per repeat)
MAX_DRAWS = 20  # random architectures drawn per one asked for, when the table rules many out


def accuracy(predicted: np.ndarray, measured: np.ndarray, prefix: str = "") -> dict[str, float]:
    error = np.abs(predicted - measured) / measured
    return {
        f"{prefix}within_10pct": float((error <= 0.10).mean()),
        f"{prefix}mape": float(error.mean()),
        # A table whose parts miss something (glue between slots, per-call overhead) is off by a
        # steady factor: the mean ratio shows that bias, which MAPE alone cannot tell from noise.
        f"{prefix}mean_ratio": float((predicted / measured).mean()),
        f"{prefix}kendall_tau": kendall_tau(predicted, measured),
    }


def spread(times: list[float]) -> float | None:
    """Run-to-run spread of one model's times over the rounds: (max - min) / median; None for one round."""
    return float((max(times) - min(times)) / np.median(times)) if len(times) > 1 else None


def noise(spreads: list[float | None]) -> dict[str, float | None]:
    """The check's own noise: the median and largest spread of the models' times from round to round.

    A table cannot be judged closer than this: with a 10% spread, a 5% error is the machine's as much as
    the table's."""
    known = [s for s in spreads if s is not None]
    return {
        "noise_median": float(np.median(known)) if known else None,
        "noise_max": float(max(known)) if known else None,
    }


def memory_groups(sizes_mb: list[float], free_mb: float | None = None) -> list[list[int]]:
    """Consecutive groups of model indices whose sizes add up to at most half the free memory (one at least)."""
    if free_mb is None:
        free_mb = free_memory_mb()
    groups: list[list[int]] = [[]]
    total = 0.0
    for i, size in enumerate(sizes_mb):
        if groups[-1] and total + size > free_mb / 2:
            groups.append([])
            total = 0.0
        groups[-1].append(i)
        total += size
    return groups


def free_memory_mb() -> float:
    """Memory this process may still fill (MB): psutil's available memory, which counts reclaimable caches."""
    import psutil

    return psutil.virtual_memory().available / 2**20


def check_table(
    space_path: str | Path,
    table_path: str | Path,
    samples: int = 20,
    seed: int = 0,
    warmup: int = 5,
    repeats: int = 100,
    progress: bool = True,
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Measure ``samples`` random architectures end to end and compare with the table's predictions.

    Every model is timed once per round (``rounds``; small models at least 3 calls a round), so that
    all see the same spells of machine speed; fewer rounds make a quicker, noisier check."""
    if samples < 2:
        raise NasError(f"--samples must be at least 2, got {samples}")
    if warmup < 0 or repeats < 1 or rounds < 1:
        raise NasError(f"--warmup must be >= 0, --repeats and --rounds >= 1, got {warmup}, {repeats} and {rounds}")
    space = SearchSpace.load(space_path)
    table = CostTable.load(table_path)
    if table.meta.get("backend") != "torch":
        raise NasError(
            f"{table.path}: the check measures on the table's backend; "
            f"{table.meta.get('backend')!r} tables are checked where they were measured (torch only here)"
        )
    device = torch.device(table.meta.get("torch_device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasError(f"{table.path}: measured on cuda, and no CUDA device is available here")
    other = warn_other_machine(table.meta, table.path, threads=True)
    threads = re.search(r"\((\d+) threads\)", str(table.meta.get("device", "")))
    if not other and device.type == "cpu" and threads and int(threads.group(1)) != torch.get_num_threads():
        warnings.warn(  # a table too old to name its machine names its threads in its device
            f"{table.path}: measured with {threads.group(1)} threads, checking with "
            f"{torch.get_num_threads()} (set OMP_NUM_THREADS={threads.group(1)} to compare like with like)",
            NasWarning,
            stacklevel=2,
        )
    rows, draws, rounds = time_architectures(space, table, samples, seed, warmup, repeats, progress, rounds)
    if len(rows) < 2:
        raise NasError(f"{table.path}: fewer than 2 of {draws} sampled architectures can run per the table")
    pm, mm = (np.array([r[k] for r in rows]) for k in ("predicted_ms", "measured_ms"))
    pb, mb = (np.array([r[k] for r in rows]) for k in ("predicted_mb", "measured_mb"))
    return {
        "space": space.name,
        "table": str(table.path),
        "samples": len(rows),
        # drawn but left out: the table says they cannot run (an op out of memory or unsupported)
        "skipped": draws - len(rows),
        "probe_ms": table.meta.get("probe_ms") if device.type == "cpu" else None,
        "rounds": rounds,
        **accuracy(pm, mm),
        **noise([r["spread"] for r in rows]),
        **accuracy(pb, mb, "memory_"),
        "machine": fingerprint(device.type),
        "architectures": rows,
    }


def time_architectures(
    space: SearchSpace,
    table: CostTable,
    samples: int,
    seed: int,
    warmup: int,
    repeats: int,
    progress: bool = True,
    rounds: int = ROUNDS,
    desc: str = "check",
) -> tuple[list[dict[str, Any]], int, int]:
    """``samples`` random architectures (``space.sample(seed)``, ``seed + 1``, ... that the table says can run)
    timed end to end in the table's protocol and probe scale, beside the table's predictions.

    Returns one row per architecture (predicted and measured ms and MB, the rounds' times and their spread),
    how many architectures were drawn, and how many rounds ran."""
    device = torch.device(table.meta.get("torch_device", "cpu"))
    dtype = DTYPES[table.meta["precision"]]
    cost = CostModel(space, table)
    v = space.video
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, v.latent_channels, v.frames, v.latent_height, v.latent_width, generator=generator)
    text = torch.randn(1, space.text_tokens, space.cross_attention_dim, generator=generator)
    sample, text = sample.to(device, dtype), text.to(device, dtype)
    timestep = torch.tensor([500.0], device=device)
    # Measured in the table's probe-relative scale when it has one (see nas.profile.timing).
    probe_ms = table.meta.get("probe_ms") if device.type == "cpu" else None
    probe = timing.SpeedProbe() if probe_ms else None
    if device.type == "cpu":
        timing.keep_freed_memory()  # as the profiler's worker does
    built, draws = [], 0
    while len(built) < samples and draws < MAX_DRAWS * samples:
        architecture = space.sample(seed + draws)
        draws += 1
        prediction = cost.predict(architecture, passes=1)
        if prediction.runs:  # else the table says it cannot run here: nothing to compare
            built.append((architecture, prediction))
    # Every model is timed in rounds, one call of each model per round, so that each sees the same
    # mix of machine speed: on a shared VM a full-size forward varies by +-10% from one call to the
    # next, and calls of one model back to back would all land in the same fast or slow spell.
    # Small models get ``rounds`` rounds, re-warmed each; large ones one round per repeat (at most
    # ``rounds``), warmed once, and as many kept at once as fit in half the free memory (the others
    # wait for the next group).
    if sum(p.weights_mb for _, p in built) < ROUND_ROBIN_MB:
        per_round, rewarm = max(3, repeats // rounds), min(1, warmup)
    else:
        rounds = min(repeats, rounds)
        per_round, rewarm = max(1, repeats // rounds), 0
    rows: list[dict[str, Any]] = []
    round_p50: dict[int, list[float]] = {i: [] for i in range(len(built))}
    bar = tqdm(total=rounds * len(built), desc=desc, unit="run", disable=not progress)
    for group in memory_groups([p.weights_mb + p.activation_mb for _, p in built]):
        models: dict[int, torch.nn.Module] = {}
        for round_index in range(rounds):
            for i in group:
                architecture, prediction = built[i]
                if i not in models:
                    torch.manual_seed(seed + i)
                    model = VideoUNet.from_space(space, architecture).to(device).eval()
                    models[i] = model.to(dtype) if dtype != torch.float32 else model
                model = models[i]

                def run(model=model):
                    return model(sample, timestep, text, return_dict=False)

                if round_index == 0:  # the memory measurement doubles as the first warm-up call
                    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
                    rows.append(
                        {
                            "arch_id": architecture.id,
                            "predicted_ms": prediction.unet_ms,
                            "measured_ms": None,
                            "predicted_mb": prediction.weights_mb + prediction.activation_mb,
                            "measured_mb": weights_mb + timing.working_set_mb(run),
                            "coverage": prediction.coverage,
                        }
                    )
                measured = timing.time_call(
                    run,
                    max(0, warmup - 1) if round_index == 0 else rewarm,
                    per_round,
                    time_limit_s=math.inf,
                    sync=timing.device_sync(device),
                    probe=probe,
                    probe_ms=probe_ms,
                    evict=timing.evict_caches if device.type == "cpu" else None,
                )
                round_p50[i].append(measured.p50_ms)
                bar.update()
        del models
    bar.close()
    for i, row in enumerate(rows):
        row["measured_ms"] = float(np.median(round_p50[i]))
        row["rounds_ms"] = [round(t, 3) for t in round_p50[i]]
        row["spread"] = spread(round_p50[i])
    return rows, draws, rounds
