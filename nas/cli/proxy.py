"""``nas proxy check``: how well each quality proxy ranks architectures like real training does."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.aliases import deprecated_flag
from nas.cli.format import print_table


def add_parser(commands) -> None:
    proxy = commands.add_parser("proxy", help="quality proxies").add_subparsers(dest="action", required=True)
    pcheck = proxy.add_parser(
        "check",
        help="rank correlation of proxies with a ground truth on a tiny world",
        description="Kendall tau and Spearman rho (bootstrap intervals) of each proxy against "
        "the world's ground truth: long training with another seed and data order, "
        "scored on test clips no proxy sees. Writes check.json, architectures.csv, "
        "results.csv and scatter.png to --out.",
    )
    pcheck.add_argument("space", type=Path, nargs="?", help="search space (default: the world's)")
    pcheck.add_argument("--world", type=Path, help="a `nas world make` folder (needed by the ground truth)")
    pcheck.add_argument(
        "--proxy",
        action="append",
        help="proxy to check, repeatable (default: params, flops, gradnorm, "
        "synflow, naswot, tsens, distill; combo is fitted on the cheap ones)",
    )
    pcheck.add_argument("--samples", type=int, default=14, help="architectures (extremes and named ones first)")
    pcheck.add_argument(
        "--train-steps",
        default="5,10,20",
        help="optimizer steps of the distill proxy, comma-separated (its learning-curve points)",
    )
    deprecated_flag(pcheck, "--steps", "--train-steps")
    pcheck.add_argument(
        "--reference",
        default="ground-truth",
        choices=["ground-truth", "replay"],
        help="ground-truth (default) or replay: the distill proxy itself trained longer with the same "
        "seed, clips and batch order (self-referential: only says a learning curve keeps its order)",
    )
    pcheck.add_argument(
        "--reference-train-steps",
        type=int,
        help="optimizer steps of the reference (default 10x the longest proxy run; replay: 5x)",
    )
    deprecated_flag(pcheck, "--reference-steps", "--reference-train-steps", type=int)
    pcheck.add_argument(
        "--proxy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of the checked proxies, repeatable; goes to every proxy that takes KEY",
    )
    pcheck.add_argument(
        "--reference-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="of the ground truth: lr, batch, eval_timesteps, sampling_steps, samples_per_caption, "
        "guidance, whole_model (true: train the whole model, not only temporal layers)",
    )
    pcheck.add_argument("--cache", type=Path, help="score cache folder (default WORLD/check-cache; 'none': off)")
    pcheck.add_argument("--seed", type=int, default=0)
    pcheck.add_argument("--out", type=Path, default=Path("runs/proxy-check"))
    pcheck.add_argument("--json", action="store_true")
    pcheck.set_defaults(func=cmd_proxy_check)


def cmd_proxy_check(args) -> None:
    from nas.options import key_values
    from nas.quality.proxy_check import check_proxies, refusals

    report, paths = check_proxies(
        args.out,
        args.space,
        args.world,
        proxies=args.proxy,
        samples=args.samples,
        seed=args.seed,
        train_steps=args.train_steps,
        reference=args.reference,
        reference_train_steps=args.reference_train_steps,
        proxy_options=key_values(args.proxy_option, "--proxy-option"),
        reference_options=key_values(args.reference_option, "--reference-option"),
        cache=args.cache,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    ref = report["reference"]
    print(
        f"{len(report['architectures'])} architectures of {report['space']}; reference: {ref['kind']}, "
        f"{ref['train_steps']} steps, seeds {', '.join(map(str, ref['seeds']))}"
    )
    if report["independence_problems"]:
        print(f"warning: the reference is not independent of the proxy: {'; '.join(report['independence_problems'])}")
    print_table(
        ["proxy", "metric", "tau", "ceiling", "tau 90% CI", "rho", "rho 90% CI", "cost vs reference"],
        [
            [
                r["proxy"],
                r["metric"],
                r["kendall_tau"],
                r["ceiling"],
                r["tau_ci90"],
                r["spearman_rho"],
                r["rho_ci90"],
                f"{r['relative_cost']:.4f}",
            ]
            for r in report["results"]
        ],
    )
    for line in refusals(report):
        print(line)
    for metric, best in report["recommended_by_metric"].items():
        print(
            f"recommended on {metric} (<= 1/10 of the reference's cost, best tau): "
            + ("none" if best is None else f"{best['proxy']}, tau {best['kendall_tau']}")
        )
    print(f"validated on denoising and motion (tau >= 0.6 on both): {report['validated'] or 'none'}")
    print(f"outputs: {paths['json'].parent}")
