"""``nas search``: the joint latency-memory-quality search, written out as a Pareto set."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.aliases import deprecated_flag
from nas.errors import NasError


def add_parser(commands) -> None:
    find = commands.add_parser("search", help="joint latency-memory-quality search; writes the Pareto set")
    find.add_argument("space", type=Path)
    find.add_argument("--table", type=Path, required=True)
    find.add_argument("--latency-budget", type=float, metavar="MS", help="per generation (default: the space's)")
    find.add_argument(
        "--memory-budget",
        type=float,
        metavar="MB",
        help="predicted peak memory per generation (default: the space's budgets.peak_memory_mb)",
    )
    find.add_argument("--passes", type=int, help="UNet passes per generation (default: the space's)")
    deprecated_flag(find, "--steps", "--passes", type=int)
    find.add_argument(
        "--proxy", default="params", help="quality proxy: params, flops, gradnorm, distill (none: exhaustive only)"
    )
    find.add_argument("--trials", type=int, default=200)
    find.add_argument("--sampler", default="nsga2", help="nsga2, tpe, random or exhaustive")
    find.add_argument(
        "--proxy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of the proxy, repeatable (distill: train_steps=20, clips=8, lr=1e-3, report_every=5, "
        "data=DIR from `nas data encode`, spatial_weights=PATH)",
    )
    find.add_argument(
        "--pruner", default="median", help="stops weak runs of a training proxy: median, halving, hyperband or none"
    )
    find.add_argument(
        "--screen",
        type=int,
        metavar="N",
        help="nsga2: children bred per trial, of which the table picks one (default 64; 1: plain NSGA-II)",
    )
    find.add_argument(
        "--storage",
        help="optuna storage URL: sqlite:///F.db, journal:F.log, postgresql://..., memory (default: sqlite in --out)",
    )
    find.add_argument("--study", help="study name (default: SPACE-TABLE)")
    find.add_argument("--workers", type=int, default=1)
    find.add_argument("--seed", type=int, default=0)
    find.add_argument("--out", type=Path, default=Path("runs/search"))
    find.add_argument("--json", action="store_true")
    find.set_defaults(func=cmd_search)


def cmd_search(args) -> None:
    from nas.options import key_values
    from nas.search.job import describe, search
    from nas.search.picks import describe_picks

    summary = search(
        args.space,
        args.table,
        args.out,
        latency_budget=args.latency_budget,
        memory_budget=args.memory_budget,
        passes=args.passes,
        proxy=args.proxy,
        sampler=args.sampler,
        trials=args.trials,
        storage=args.storage,
        study=args.study,
        workers=args.workers,
        seed=args.seed,
        screen=args.screen,
        pruner=args.pruner,
        progress=not args.json,
        proxy_options=key_values(args.proxy_option, "--proxy-option"),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(describe(summary))
        written = [
            "pareto.csv",
            "architectures/",
            "picks/" if summary["picks"] else "",
            "trials.csv" if "trials" in summary else "",
            "pareto.png",
            "pareto.html",
            "summary.json",
        ]
        print(f"wrote {args.out}/: {', '.join(w for w in written if w)}")
        if summary["picks"]:
            print("picks (the next commands build and distill each):")
            print(describe_picks(summary["picks"]))
    if not summary["feasible_front"]:
        fixed, budget = summary["generation"]["fixed_ms"], summary["budgets"]["latency_ms"]
        hint = (
            f" (the text encoder and decoder alone take {fixed:,.0f} ms of the {budget:,.0f} ms: a lighter decoder in "
            "the space's generation.decoder, or a larger --latency-budget)"
            if fixed > budget / 2
            else ""
        )
        raise NasError(
            f"{args.space}: no architecture meets the budgets; the {summary['pareto']} least-violating "
            f"are in {args.out}/pareto.csv (feasible = False){hint}"
        )
