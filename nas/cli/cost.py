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


def describe_generation(p, table) -> str:
    """The whole generation's latency and peak memory as lines of text: the sum, then one line per fixed part."""
    if not p.runs:
        return "the table says this architecture cannot run on the device (see status): no latency or memory"
    parts = {f["part"]: f for f in p.fixed}
    text, decoder = parts["text_encoder"], parts["decoder"]

    def ms(f):
        if f["coverage"] == "missing":
            return f"{f['part'].replace('_', ' ')} (missing)"
        calls = f"{f['calls']} x {f['latency_ms']:,.1f} ms" if f["calls"] > 1 else f"{f['latency_ms']:,.1f} ms"
        return f"{f['part'].replace('_', ' ')} {calls}"

    total = "at least " if not p.complete else ""
    lines = [
        f"latency {total}{p.latency_ms:,.1f} ms per generation = {ms(text)} + {p.passes} x {p.unet_ms:,.1f} ms UNet"
        f" + {ms(decoder)}",
        f"peak memory {total}{p.peak_memory_mb:,.1f} MB = {p.weights_mb:,.1f} MB UNet weights + "
        f"{p.activation_mb:,.1f} MB UNet activations + {p.fixed_mb:,.1f} MB fixed parts (their weights, resident, "
        "and their working set beyond the UNet's)",
    ]
    for f in p.fixed:
        name = f"{f['part']} ({f['name']}"
        if f["coverage"] == "missing":
            lines.append(f"{name}): not in {table} (missing): the total is incomplete; measure or estimate it")
            continue
        per = f", {f['calls']} calls (one per frame)" if f["calls"] > 1 else ""
        lines.append(
            f"{name}{per}): {f['total_ms']:,.1f} ms, {f['weights_mb']:,.1f} MB weights + "
            f"{f['working_set_mb']:,.1f} MB working set, {f['coverage']}"
            + (f", {f['status']}" if f["status"] != "ok" else "")
            + (f", on {f['placement']}" if f["placement"] else "")
        )
    return "\n".join(lines)


def cmd_cost(args) -> None:
    from nas.cost.report import price

    report = price(args.space, args.table, args.arch, args.passes)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    p, meta = report.prediction, report.table.meta
    print(f"arch {report.architecture.id} on {args.table} ({meta['provenance']}, {meta['device']})")
    print(describe_generation(p, args.table))
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
