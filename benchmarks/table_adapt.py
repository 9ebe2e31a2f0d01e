"""A table moved to this machine: ``nas table adapt`` on K keys, then ``nas table check`` of the result, N times.

What issue 23 asks of a table that travels: a table measured on one machine, adapted here from a few
measured keys, must predict whole models here. This runs the public API only
(:func:`nas.profile.adapt.adapt_table`, :func:`nas.profile.check.check_table`): one adapt (its time,
its form and leave-one-out error), then ``--checks`` consecutive checks of the adapted table (each
draws the same architectures; their spread is the machine's run-to-run noise, the check's own
``noise_median`` the spread within one check). With ``--models M`` the adapt also times M whole
architectures and each check carries ``rows_only``: its own models judged by the rows the keys alone gave,
the paired control of that step. It writes JSON with the machine's fingerprint, the
load average at start and end, and the commands, e.g.

    python benchmarks/table_adapt.py latency_tables/cpu_tiny.csv --samples 8 --models 6 --checks 3 \
        -o benchmarks/results/table_adapt_cpu_tiny_models_shipped.json
    python benchmarks/table_adapt.py latency_tables/cpu_snapgen_v.csv --samples 6 --checks 1 --check-samples 6 \
        --warmup 1 --repeats 3 -o benchmarks/results/table_adapt_cpu_snapgen_v.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import run_main, write_results  # noqa: E402
from nas.cost.table import CostTable  # noqa: E402
from nas.machine import fingerprint  # noqa: E402
from nas.profile.adapt import adapt_table, space_of_table  # noqa: E402
from nas.profile.check import accuracy, check_table  # noqa: E402


def rows_only(check: dict, factor: float) -> dict[str, float]:
    """The same check's models judged by the rows fitted on the keys alone (predictions / the models' factor):
    a paired control of ``--models`` on the very same measurements."""
    predicted = np.array([a["predicted_ms"] for a in check["architectures"]]) / factor
    measured = np.array([a["measured_ms"] for a in check["architectures"]])
    return {k: v for k, v in accuracy(predicted, measured).items() if k != "kendall_tau"}


SUMMARY = ("within_10pct", "mape", "mean_ratio", "kendall_tau", "noise_median", "noise_max", "memory_within_10pct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a measured table (of another machine, or of this one)")
    parser.add_argument("--samples", type=int, default=8, help="keys the adapt measures here")
    parser.add_argument("--models", type=int, default=0, help="whole architectures the adapt times here (0: none)")
    parser.add_argument("--checks", type=int, default=3, help="consecutive checks of the adapted table")
    parser.add_argument("--check-samples", type=int, default=20, help="architectures per check")
    parser.add_argument("--warmup", type=int, default=5, help="the check's untimed calls per architecture")
    parser.add_argument("--repeats", type=int, default=100, help="the check's timed calls per architecture")
    parser.add_argument("--adapted", type=Path, help="keep the adapted table here (default: a temporary folder)")
    parser.add_argument("-o", "--out", type=Path, help="JSON results")
    args = parser.parse_args()
    parent = CostTable.load(args.table)
    space = space_of_table(parent, None)
    folder = Path(tempfile.mkdtemp(prefix="nas-adapt-"))
    adapted_path = args.adapted or folder / f"{args.table.stem}_here.csv"
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    adapted, fit = adapt_table(args.table, samples=args.samples, models=args.models, out=adapted_path, progress=False)
    adapt_s = time.perf_counter() - start
    print(f"adapt: {fit.form}, leave-one-out error {fit.loo_error:.1%} (max {fit.loo_max:.1%}), {adapt_s:.0f} s")
    models = adapted.meta["adapt"].get("models")
    if models:
        print(
            f"models: x{models['fitted']} applied {models['applied']}, {models['loo_error']:.1%} vs {models['rows_error']:.1%}"
        )
    checks = []
    for run in range(args.checks):
        result = check_table(
            space, adapted_path, samples=args.check_samples, warmup=args.warmup, repeats=args.repeats, progress=False
        )
        checks.append({k: result.get(k) for k in SUMMARY} | {"architectures": result["architectures"]})
        if models:
            checks[-1]["rows_only"] = rows_only(checks[-1], models["factor"])
        print(f"check {run + 1}: " + ", ".join(f"{k} {result.get(k)}" for k in SUMMARY))
    results = {
        "what": "nas table adapt of a table on this machine, then nas table check of the adapted table, repeated",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "machine": fingerprint(),
        "load_average_1m": {"start": load_start, "end": os.getloadavg()[0]},
        "parent": {"table": str(args.table), "machine": parent.meta.get("machine"), "date": parent.meta.get("date")},
        "adapt": {
            "samples": args.samples,
            "seconds": round(adapt_s, 1),
            "form": fit.form,
            "factors": adapted.meta["adapt"]["factors"],
            "loo_error": fit.loo_error,
            "loo_max": fit.loo_max,
            "candidates": adapted.meta["adapt"]["candidates"],
            "models": {k: v for k, v in models.items() if k != "note"} if models else None,
        },
        "check_protocol": {"samples": args.check_samples, "warmup": args.warmup, "repeats": args.repeats},
        "checks": checks,
    }
    if args.out:
        write_results(args.out, results)


if __name__ == "__main__":
    run_main(main)
