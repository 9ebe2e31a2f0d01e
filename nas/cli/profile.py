"""``nas profile``: measure every key of a space (or of a plan) into a device table."""

from __future__ import annotations

from pathlib import Path

from nas.cli.format import status_counts
from nas.errors import NasError


def add_parser(commands) -> None:
    prof = commands.add_parser("profile", help="measure every key of a space into a device table")
    prof.add_argument("space", type=Path)
    prof.add_argument("--backend", default="torch", help="torch or coreml")
    prof.add_argument("-o", "--out", type=Path, help="table CSV (resumed if it exists)")
    prof.add_argument("--device", default="cpu", help="torch backend: cpu, cuda or mps")
    prof.add_argument("--precision", default=None, help="fp32, fp16 or bf16 (default fp32 torch, fp16 coreml)")
    prof.add_argument("--compute-units", default="CPU_AND_NE", help="coreml backend: CPU_AND_NE, CPU_AND_GPU, ...")
    prof.add_argument("--warmup", type=int, default=3)
    prof.add_argument("--repeats", type=int, default=50)
    prof.add_argument(
        "--budget",
        type=float,
        default=10.0,
        help="seconds of timing per key, its probe runs and cache sweeps included (after 3 calls)",
    )
    prof.add_argument("--time-limit", type=float, default=30.0, help="seconds one call may take before 'timeout'")
    prof.add_argument("--memory-limit", type=float, default=None, help="MB a measurement may allocate ('oom' past it)")
    prof.add_argument("--plan", type=Path, help="measure only the keys of this plan CSV")
    prof.add_argument("--export-only", type=Path, metavar="DIR", help="coreml: write packages + manifest, no timing")
    prof.set_defaults(func=cmd_profile)


def cmd_profile(args) -> None:
    if args.backend == "coreml" and args.export_only:
        from nas.profile.coreml_kit import export_packages

        manifest = export_packages(args.space, args.export_only, precision=args.precision or "fp16")
        print(f"wrote {manifest}; time it on a Mac: nas table time {args.export_only}")
        return
    if args.out is None:
        raise NasError("nas profile needs -o TABLE.csv (or --export-only DIR with --backend coreml)")
    from nas.profile.job import profile_space

    table = profile_space(
        args.space,
        args.backend,
        args.out,
        plan=args.plan,
        device=args.device,
        precision=args.precision,
        compute_units=args.compute_units,
        warmup=args.warmup,
        repeats=args.repeats,
        budget_s=args.budget,
        time_limit_s=args.time_limit,
        memory_limit_mb=args.memory_limit,
        command=args.command_line,
    )
    print(f"wrote {args.out}: {len(table.rows)} rows ({status_counts(table)})")
