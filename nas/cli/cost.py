"""``nas cost``: latency and memory of one architecture from a device table."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.aliases import deprecated_flag
from nas.cli.format import print_table


def add_parser(commands) -> None:
    cost = commands.add_parser("cost", help="latency and memory of an architecture from a device table")
    cost.add_argument("space", type=Path)
    cost.add_argument("--arch", default="reference")
    cost.add_argument("--table", type=Path, required=True)
    cost.add_argument("--passes", type=int, default=None, help="UNet passes per generation (default: the space's)")
    deprecated_flag(cost, "--steps", "--passes", type=int)
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(func=cmd_cost)


def cmd_cost(args) -> None:
    from nas.cost.report import price

    report = price(args.space, args.table, args.arch, args.passes)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    p, meta = report.prediction, report.table.meta
    print(f"arch {report.architecture.id} on {args.table} ({meta['provenance']}, {meta['device']})")
    if p.runs:
        print(
            f"latency {p.latency_ms:,.1f} ms = {p.passes} x {p.unet_ms:,.1f} ms UNet + {p.fixed_ms:,.1f} ms fixed parts"
        )
        fixed = (
            f" + {p.fixed_mb:,.1f} MB fixed parts ({', '.join(p.fixed_parts)}: weights and working set, resident)"
            if p.fixed_parts
            else " (no fixed parts in the table: VAE decoder and text encoder not counted)"
        )
        print(
            f"peak memory {p.peak_memory_mb:,.1f} MB = {p.weights_mb:,.1f} MB weights + "
            f"{p.activation_mb:,.1f} MB activations" + fixed
        )
    else:
        print("the table says this architecture cannot run on the device (see status): no latency or memory")
    print("coverage: " + ", ".join(f"{v} {k}" for k, v in p.coverage.items()))
    print("placement: " + ", ".join(f"{v} {k}" for k, v in p.placement.items()))
    print_table(
        ["slot", "choice", "latency_ms", "working_set_mb", "coverage", "status", "placement"],
        [
            [
                r["slot"],
                r["choice"],
                f"{r['latency_ms']:.2f}" if r["status"] == "ok" else "-",
                f"{r['working_set_mb']:.1f}" if r["status"] == "ok" else "-",
                r["coverage"],
                r["status"],
                r.get("placement", "-") or "-",
            ]
            for r in p.slots
        ],
    )
    for r in p.slots:
        if r["status"] == "error":
            print(
                f"{r['slot']}: {r['choice']} failed to measure: {r['message'] or 'no message'} "
                "(fix the op and re-run nas profile: error rows are measured again)"
            )
