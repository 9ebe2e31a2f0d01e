"""``nas table plan|validate|check|time|import|adapt|estimate``: device tables and their checks."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.aliases import deprecated_flag
from nas.cli.format import status_counts


def add_parser(commands) -> None:
    table = commands.add_parser(
        "table", help="device tables: plan, validate, check, import, adapt, estimate"
    ).add_subparsers(dest="action", required=True)
    plan = table.add_parser("plan", help="every key the space can need, once")
    plan.add_argument("space", type=Path)
    plan.add_argument("-o", "--out", type=Path, help="plan CSV to write (default: print)")
    plan.set_defaults(func=cmd_table_plan)
    validate = table.add_parser("validate", help="check tables and their sidecars (default: latency_tables/*.csv)")
    validate.add_argument("tables", type=Path, nargs="*")
    validate.set_defaults(func=cmd_table_validate)
    check = table.add_parser("check", help="predicted vs measured cost of random architectures")
    check.add_argument("space", type=Path)
    check.add_argument("--table", type=Path, required=True)
    check.add_argument(
        "--samples",
        type=int,
        default=20,
        help="architectures to time, drawn at random (those the table says cannot run are skipped, more drawn)",
    )
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--warmup", type=int, default=5, help="untimed calls per architecture before timing")
    check.add_argument(
        "--repeats",
        type=int,
        default=100,
        help="timed calls per architecture, one per round across all of them (small models: at least 3 per round)",
    )
    check.add_argument(
        "--rounds",
        type=int,
        help="rounds of timing, each model once per round (default 10; large models: at most one per repeat)",
    )
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_table_check)
    time_ = table.add_parser("time", help="(macOS) time the packages of a Core ML export folder")
    time_.add_argument("export_dir", type=Path)
    time_.add_argument("--compute-units", default="CPU_AND_NE", help="CPU_AND_NE, CPU_AND_GPU, CPU_ONLY or ALL")
    time_.add_argument("--warmup", type=int, default=3, help="untimed predictions per package first")
    time_.add_argument("--repeats", type=int, default=20, help="timed predictions per package (p50, p90)")
    time_.set_defaults(func=cmd_table_time)
    imp = table.add_parser("import", help="make a table from a timed Core ML export folder")
    imp.add_argument("export_dir", type=Path)
    imp.add_argument("-o", "--out", type=Path, required=True)
    imp.set_defaults(func=cmd_table_import)
    adapt = table.add_parser(
        "adapt",
        help="rescale a table to this machine (measure a few keys) or an estimate to its device (--results)",
        description="Measure K keys of TABLE here (with the protocol and probe scale it was measured with), fit "
        "the simplest correction that predicts held-out keys (one scale; per size regime or op type only if it "
        "does better, leave one out), and write the rescaled table with the measured keys in it. With --results "
        "DIR (a kit's results.csv + results.yaml), adapt an estimated table to the keys measured on its device.",
    )
    adapt.add_argument("table", type=Path)
    adapt.add_argument(
        "--samples", type=int, help="keys to measure here (the whole-model rows first, then each op type)"
    )
    adapt.add_argument(
        "--models",
        type=int,
        default=0,
        help="also time M random whole architectures here and scale the UNet-pass rows to them if that predicts "
        "held-out models better (M >= 2)",
    )
    adapt.add_argument("--models-seed", type=int, help="first seed of the --models architectures (default 1000000)")
    adapt.add_argument("--results", type=Path, metavar="DIR", help="a kit folder whose results.csv holds measured keys")
    adapt.add_argument("--space", type=Path, help="the table's space (default: the one its sidecar's command names)")
    adapt.add_argument("-o", "--out", type=Path, help="new table (default runs/tables/NAME_adapted.csv)")
    adapt.add_argument("--warmup", type=int, default=3)
    adapt.add_argument("--repeats", type=int, default=50)
    adapt.add_argument("--budget", type=float, default=10.0, help="seconds of timing per key (after 3 calls)")
    adapt.add_argument("--time-limit", type=float, default=30.0, help="seconds one call may take before 'timeout'")
    adapt.add_argument("--memory-limit", type=float, default=None, help="MB a measurement may allocate")
    adapt.set_defaults(func=cmd_table_adapt)
    estimate = table.add_parser("estimate", help="an estimated table from published chip figures (roofline)")
    estimate.add_argument("space", type=Path)
    estimate.add_argument("--chip", default="a18-pro-ne")
    estimate.add_argument(
        "--calibrate",
        choices=["published"],
        help="published: fit the Neural Engine's efficiency and cost per op to the published on-device points "
        "(nas.cost.calibration), leave-one-out errors in the sidecar",
    )
    estimate.add_argument(
        "--calibrate-ms",
        type=float,
        default=None,
        help="instead: fit the efficiency to this published ms for a whole generation of --calibrate-arch",
    )
    estimate.add_argument(
        "--check-ms",
        type=float,
        default=None,
        help="a published ms for a whole generation of --calibrate-arch, predicted and reported (not fitted)",
    )
    estimate.add_argument("--calibrate-arch", default="reference", help="architecture of --calibrate-ms or --check-ms")
    estimate.add_argument("--passes", type=int, default=4, help="UNet passes in that published generation")
    deprecated_flag(estimate, "--steps", "--passes", type=int)
    estimate.add_argument("-o", "--out", type=Path, required=True)
    estimate.set_defaults(func=cmd_table_estimate)


def cmd_table_plan(args) -> None:
    from nas.cost.plan import space_plan

    frame = space_plan(args.space, args.out)
    if args.out:
        print(f"wrote {args.out} ({len(frame)} keys)")
    else:
        print(frame.to_csv(index=False), end="")


def cmd_table_validate(args) -> None:
    from nas.cost.validate import error_rows, validate_tables

    for path, table in validate_tables(args.tables):
        meta = table.meta
        print(
            f"ok  {path}: {len(table.rows)} rows ({status_counts(table)}), {meta['provenance']} on "
            f"{meta['device']} ({meta['backend']}, {meta['precision']})"
        )
        for key, message in error_rows(table):
            print(f"    error {key.text()}: {message or 'no message'} (measured again by the next nas profile)")


def cmd_table_check(args) -> None:
    from nas.profile.check import check_table

    report = check_table(
        args.space,
        args.table,
        args.samples,
        args.seed,
        warmup=args.warmup,
        repeats=args.repeats,
        progress=not args.json,
        **({"rounds": args.rounds} if args.rounds is not None else {}),
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    skipped = f" ({report['skipped']} drawn that the table says cannot run were skipped)" if report["skipped"] else ""
    print(f"{report['samples']} architectures of {report['space']} on {report['table']}{skipped}")
    for what, prefix in (("latency", ""), ("memory", "memory_")):
        print(
            f"{what:8s} within 10%: {report[prefix + 'within_10pct']:.0%}  MAPE: {report[prefix + 'mape']:.1%}  "
            f"Kendall tau: {report[prefix + 'kendall_tau']:.3f}  "
            f"predicted/measured: {report[prefix + 'mean_ratio']:.3f} on average"
        )
    if report["noise_median"] is None:
        print("noise    unknown: one round per model (--rounds 2 or more measures it)")
    else:
        print(
            f"noise    whole-model times moved {report['noise_median']:.1%} from round to round (median over the "
            f"models of (max - min) / median, {report['rounds']} rounds; largest {report['noise_max']:.1%}): "
            "errors below that are the machine's"
        )


def cmd_table_time(args) -> None:
    from nas.profile.coreml_kit import time_packages

    print(f"wrote {time_packages(args.export_dir, args.compute_units, warmup=args.warmup, repeats=args.repeats)}")


def cmd_table_import(args) -> None:
    from nas.profile.coreml_kit import import_results

    table = import_results(args.export_dir, args.out, command=args.command_line)
    print(f"wrote {args.out} ({len(table.rows)} rows)")


def cmd_table_adapt(args) -> None:
    from nas.profile.adapt import adapt_report, adapt_table

    table, fit = adapt_table(
        args.table,
        args.out,
        args.samples,
        models=args.models,
        models_seed=args.models_seed,
        results=args.results,
        space=args.space,
        warmup=args.warmup,
        repeats=args.repeats,
        budget_s=args.budget,
        time_limit_s=args.time_limit,
        memory_limit_mb=args.memory_limit,
        command=args.command_line,
    )
    print(adapt_report(table, fit, args.table))


def cmd_table_estimate(args) -> None:
    from nas.cost.roofline import estimate

    table = estimate(
        args.space,
        args.out,
        args.chip,
        published=args.calibrate == "published",
        calibrate_ms=args.calibrate_ms,
        check_ms=args.check_ms,
        arch=args.calibrate_arch,
        passes=args.passes,
        command=args.command_line,
    )
    calibration = table.meta["calibration"] or {}
    note = ""
    if "fitted" in calibration:
        fitted = calibration["fitted"]
        note = f", efficiency {fitted['efficiency']}, {fitted['dispatch_ms']} ms per op"
    elif "efficiency" in calibration:
        note = f", efficiency {calibration['efficiency']}"
    print(f"wrote {args.out} ({len(table.rows)} rows, estimated{note})")
    placement = table.meta["placement"]
    print(f"placement: {placement['rows_on_ne']} of {len(table.rows)} rows on the Neural Engine")
    for key, text in placement["off_ne"].items():
        print(f"  {key}: {text}")
    if "points" in calibration:
        print(
            f"leave-one-out over {len(calibration['points'])} published points: mean absolute error "
            f"{calibration['leave_one_out_mean_abs_error_pct']}% (max {calibration['leave_one_out_max_abs_error_pct']}%)"
        )
    for point in calibration.get("holdout", []):
        print(
            f"hold-out {point['point']} on {point['chip']}: predicted {point['predicted_ms']:,.1f} ms, "
            f"published {point['published_ms']:,.1f} ms ({point['error_pct']:+.1f}%)"
        )
    if "check" in calibration:
        check = calibration["check"]
        print(
            f"check {check['point']} on {check['chip']}: predicted {check['predicted_ms']:,.1f} ms for the whole "
            f"generation ({check['unet_ms']:,.1f} ms of UNet passes), published {check['published_ms']:,.1f} ms "
            f"({check['error_pct']:+.1f}%)"
        )
