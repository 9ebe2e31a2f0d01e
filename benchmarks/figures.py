"""Write the measured-numbers page (docs/measured.md) from the results files, so no figure is copied by hand.

Every ``benchmarks/results/**/*.json`` must have an entry in :data:`FIGURES`: what it measures, the
command that writes it, its headline values (each read from the file), and, for the older files that
do not record it, the date the run's notes give. The page lists, per file: the values, the date, the
machine as the file records it (a ``machine`` fingerprint or description; "not recorded" otherwise)
and the command. tests/test_docs.py fails when the page differs from what this script makes of the
results files now: after a benchmark writes a results file, run

    python benchmarks/figures.py

A results file with no entry, or an entry whose file or value is gone, ends with one line naming the
file and the problem (exit 2): the page cannot silently lose or invent a figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "measured.md"


@dataclass(frozen=True)
class Entry:
    what: str
    command: str
    values: tuple[tuple[str, Callable[[dict], str]], ...]
    date: str = ""  # where the file records no date: the one in the run's notes, said so on the page


def _models(r: dict, key: str, fmt: Callable[[Any], str]) -> str:
    return f"{fmt(r['models']['reference'][key])} vs {fmt(r['models']['animatediff'][key])}"


def _s(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def _gb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB"


def _check(r: dict) -> str:
    return (
        f"within 10% {r['within_10pct']:.2f}, MAPE {r['mape']:.1%}, mean predicted/measured {r['mean_ratio']:.3f}, "
        f"Kendall tau {r['kendall_tau']:.2f}"
    )


def _adapt(r: dict) -> str:
    a = r["adapt"]
    return (
        f"{a['form']} {', '.join(f'{k} x{v}' for k, v in a['factors'].items())} from {a['samples']} keys"
        f"{' (and ' + str(len(a['models']['architectures'])) + ' whole models)' if a.get('models') else ''} in "
        f"{a['seconds']:.0f} s; "
        f"leave-one-out error {a['loo_error']:.1%} (largest {a['loo_max']:.1%})"
    )


def _adapt_check(r: dict, run: int) -> str:
    c = r["checks"][run]
    return f"{_check(c)}; the check's own noise (median spread of a model's rounds) {c['noise_median']:.1%}"


def _adapt_models(r: dict) -> str:
    m = r["adapt"]["models"]
    verdict = "applied" if m["applied"] else "not applied"
    return (
        f"{len(m['architectures'])} whole models timed: measured/predicted x{m['fitted']} ({verdict}); leave-one-out "
        f"error {m['loo_error']:.1%} with it, {m['rows_error']:.1%} with the keys' rows alone"
    )


def _rows_only(r: dict, run: int) -> str:
    c = r["checks"][run]["rows_only"]
    return f"within 10% {c['within_10pct']:.2f}, MAPE {c['mape']:.1%}, predicted/measured {c['mean_ratio']:.2f}"


def _adapt_rows(checks: int, models: bool = False) -> tuple:
    """benchmarks/table_adapt.py's rows: the adapt, its whole models, each check and (with models) each check
    judged by the keys' rows alone."""
    label = (lambda i: f"check {i + 1}") if checks > 1 else (lambda i: "check")
    return (
        ("adapt", _adapt),
        *((("whole models", _adapt_models),) if models else ()),
        *((label(i), lambda r, i=i: _adapt_check(r, i)) for i in range(checks)),
        *((f"{label(i)}, rows only", lambda r, i=i: _rows_only(r, i)) for i in range(checks) if models),
    )


def _memory_check(r: dict) -> str:
    return f"within 10% {r['memory_within_10pct']:.2f}, MAPE {r['memory_mape']:.2%}"


def _hypervolume(r: dict, sampler: str) -> str:
    s = r["samplers"][sampler]
    return f"{s['ratio_to_exhaustive']:.1%} of the exhaustive front's (worst seed {s['worst_ratio']:.1%})"


def _proxy(r: dict, proxy: str) -> str:
    row = next(x for x in r["results"] if x["proxy"] == proxy and x["metric"] == "denoise")
    low, high = row["tau_ci90"]
    return (
        f"Spearman rho {row['spearman_rho']:.2f} (Kendall tau 90% CI {low:.2f}-{high:.2f}), "
        f"{row['relative_cost']:.1%} of the ground truth's cost"
    )


def _startup(r: dict, command: str) -> str:
    row = next(x for x in r["rows"] if x["command"] == command)
    return f"{row['median_s']:.2f} s (median of {r['repeats']})"


def _four_step(r: dict, row: str) -> str:
    x = next(x for x in r["rows"] if x["row"] == row)
    return f"FVD {x['fvd']:.1f}, KVD {x['kvd']:.1f}, motion error {x['motion_error']:.2f} ({x['passes']} passes)"


def _four_step_motion(r: dict, row: str) -> str:
    x = next(x for x in r["rows"] if x["row"] == row)
    low, high = x["direction_accuracy"]["ci90"]
    return (
        f"direction accuracy {x['direction_accuracy']['mean']:.2f} (90% CI {low:.2f}-{high:.2f}), "
        f"FVD {x['fvd']:.1f}, KVD {x['kvd']:.1f} ({x['passes']} passes)"
    )


def _four_step_rows(value: Callable[[dict, str], str], first: str) -> tuple:
    """The four rows of benchmarks/four_step.py's table (labelled as on the page) and its wall time."""
    rows = (
        (first, "(a) stage 1"),
        ("(b) stage 1 at 4 steps", "(b) stage 1"),
        ("(c) adversarial, 4 steps", "(c) adversarial"),
        ("(d) adversarial term off", "(d) adversarial, term off"),
    )
    return (
        *((label, lambda r, row=row: value(r, row)) for label, row in rows),
        ("wall", lambda r: f"{r['wall_s']:.0f} s"),
    )


def _ceiling(r: dict, metric: str) -> str:
    c = r["ceiling"][metric]
    return f"Kendall tau **{c['tau_all']:.2f}** (all 12), {c['tau_temporal']:.2f} among the temporal designs"


def _direction(r: dict, design: str) -> str:
    x = r["direction_accuracy_ci90"][design]
    low, high = x["ci90"]
    return f"{x['mean']:.2f} (90% CI {low:.2f}-{high:.2f}, {x['samples']} samples; by seed {x['by_seed']})"


# benchmarks/motion_ceiling.py's rows, on any world
CEILING_ROWS = (
    ("held-out denoising", lambda r: _ceiling(r, "denoise_loss")),
    ("direction accuracy", lambda r: _ceiling(r, "direction_accuracy")),
    ("dynamic degree", lambda r: _ceiling(r, "dynamic_degree")),
    ("`reference`, direction accuracy on held-out captions", lambda r: _direction(r, "reference / test")),
    ("all `none`, the same", lambda r: _direction(r, "all none / test")),
)


def _table_check(space: str, table: str, samples: int, extra: str = "") -> str:
    return (
        f"nas table check search_spaces/{space}.yaml --table latency_tables/{table} --samples {samples}{extra} --json"
    )


TABLE_CHECK_TINY = _table_check("tiny", "cpu_tiny.csv", 20)
FIGURES: dict[str, Entry] = {
    "forward_cpu_16x320x512.json": Entry(
        "one UNet forward (batch 1), 16 frames x 320x512: ours (`reference`) vs AnimateDiff",
        "python benchmarks/unet_forward.py --warmup 0 --repeats 1 -o benchmarks/results/forward_cpu_16x320x512.json",
        (
            ("latency, ours vs AnimateDiff", lambda r: _models(r, "latency_ms", _s)),
            ("peak memory", lambda r: _models(r, "peak_memory_mb", _gb)),
            ("ratio: latency, memory", lambda r: f"**{r['ratio_latency']}x** faster, {r['ratio_memory']}x less memory"),
        ),
        date="2026-11-25",
    ),
    "forward_cpu_8x256x256.json": Entry(
        "one UNet forward (batch 1), 8 frames x 256x256: ours vs AnimateDiff",
        "python benchmarks/unet_forward.py --warmup 0 --repeats 2 --frames 8 --height 256 --width 256 "
        "-o benchmarks/results/forward_cpu_8x256x256.json",
        (
            ("latency (median), ours vs AnimateDiff", lambda r: _models(r, "latency_ms", _s)),
            ("ratio: latency, memory", lambda r: f"**{r['ratio_latency']}x** faster, {r['ratio_memory']}x less memory"),
        ),
        date="2026-11-25",
    ),
    "generation_cpu_8x128x128.json": Entry(
        "a whole generation, 8 frames x 128x128: ours 4 steps with the light decoder (0.20 of SD's decoder FLOPs) vs "
        "AnimateDiff 25 steps + CFG with SD1.5's decoder; ours decoded with SD's decoder too, in the same run",
        "python benchmarks/generation.py --frames 8 --height 128 --width 128 "
        "-o benchmarks/results/generation_cpu_8x128x128.json",
        (
            ("UNet loop, ours vs AnimateDiff", lambda r: _models(r, "unet_s", lambda s: f"{s:.1f} s")),
            ("decode, ours (light) vs AnimateDiff (SD)", lambda r: _models(r, "vae_decode_s", lambda s: f"{s:.2f} s")),
            ("with the decode", lambda r: _models(r, "total_s", lambda s: f"{s:.1f} s")),
            (
                "ratio: UNet loop, total, total with SD's decoder on both sides, memory",
                lambda r: (
                    f"**{r['ratio_unet']}x**, **{r['ratio_total']}x**, {r['ratio_total_both_sd_decoder']}x, "
                    f"{r['ratio_memory']}x"
                ),
            ),
        ),
        date="2026-12-06 02:42 UTC",
    ),
    "generation_cpu_8x128x128_loaded.json": Entry(
        "the same generation, ours with the light decoder (0.20 of SD's decoder FLOPs), machine loaded by other jobs",
        "python benchmarks/generation.py --frames 8 --height 128 --width 128 "
        "-o benchmarks/results/generation_cpu_8x128x128_loaded.json",
        (
            ("total, ours vs AnimateDiff", lambda r: _models(r, "total_s", lambda s: f"{s:.1f} s")),
            (
                "ratio: UNet loop, total, same decoder both sides",
                lambda r: f"{r['ratio_unet']}x, **{r['ratio_total']}x**, {r['ratio_total_both_sd_decoder']}x",
            ),
        ),
        date="2026-12-05",
    ),
    "four_step.json": Entry(
        "4-step generation on the tiny world of recipe 1 (shapes; the script now makes recipe-2 worlds): stage 1 at "
        "25 steps vs the adversarial 4-step model",
        "python benchmarks/four_step.py",
        _four_step_rows(_four_step, "(a) stage 1, 25 steps, CFG 3"),
        date="2026-11-26",
    ),
    "four_step_recipe2.json": Entry(
        "the same table on the recipe-2 world (digits and shapes), with the motion metrics of nas/quality/motion.py",
        "python benchmarks/four_step.py --out benchmarks/results/four_step_recipe2.json",
        (
            ("real test clips", lambda r: _four_step_motion(r, "real test clips (reference)")),
            *_four_step_rows(_four_step_motion, "(a) stage 1, 25 steps, CFG"),
        ),
        date="2026-12-06",
    ),
    "motion_ceiling.json": Entry(
        "the ground truth against itself: two seeds on 12 architectures of the recipe-3 world (400 steps; SD1.5's noise schedule, unclipped)",
        "python benchmarks/motion_ceiling.py --world W --seeds S --part --out S.json (S = 7919, 31337), then --merge 7919.json 31337.json",
        CEILING_ROWS,
    ),
    "motion_ceiling_recipe2.json": Entry(
        "the same on the recipe-2 world (diffusers' default noise schedule: the few-step sampler clipped its x0 estimates)",
        "python benchmarks/motion_ceiling.py --world W --seeds S --part --out S.json (S = 7919, 31337), then --merge 7919.json 31337.json --out benchmarks/results/motion_ceiling_recipe2.json",
        CEILING_ROWS,
    ),
    "hypervolume.json": Entry(
        "search quality: hypervolume at 200 trials, tiny space + cpu_tiny.csv, params proxy, 5 seeds",
        "python benchmarks/hypervolume.py",
        (
            ("screened NSGA-II", lambda r: _hypervolume(r, "nsga2")),
            ("plain NSGA-II", lambda r: _hypervolume(r, "nsga2-plain")),
            ("random", lambda r: _hypervolume(r, "random")),
        ),
        date="2026-11-26",
    ),
    "hypervolume_pairwise.json": Entry(
        "the same with the pairwise proxy (not additive)",
        "python benchmarks/hypervolume.py --proxy pairwise",
        (
            ("screened NSGA-II", lambda r: _hypervolume(r, "nsga2")),
            ("plain NSGA-II", lambda r: _hypervolume(r, "nsga2-plain")),
            ("random", lambda r: _hypervolume(r, "random")),
        ),
        date="2026-11-26",
    ),
    "pricing.json": Entry(
        "vectorised pricing of random architectures (snapgen_v, iPhone table)",
        "python benchmarks/pricing.py",
        (("architectures per second", lambda r: f"{r['architectures_per_second'] / 1e6:.1f} million"),),
    ),
    "prune_sd15_cpu.json": Entry(
        "`nas prune` of SD1.5's UNet (public config, random weights) to snapgen_v's backbone",
        "python benchmarks/prune_sd15.py --work /tmp/prune_sd15",
        (
            (
                "params",
                lambda r: f"{r['report']['params_before'] / 1e6:.1f}M -> {r['report']['params_after'] / 1e6:.1f}M",
            ),
            (
                "output MSE to the source, pruned vs random",
                lambda r: f"{r['report']['function']['mse_pruned']:.3f} vs {r['report']['function']['mse_random']:.3f}",
            ),
            ("peak RSS", lambda r: _gb(r["prune"]["peak_rss_mb"])),
        ),
    ),
    "prune_vae_cpu.json": Entry(
        "`nas prune --decoder` of SD1.5's VAE (public config, random weights) to 64/128/256/256",
        "python benchmarks/prune_vae.py --work /tmp/prune_vae",
        (
            (
                "FLOPs per 320x512 frame",
                lambda r: (
                    f"{r['report']['flops_per_frame_before'] / 1e9:,.1f} -> "
                    f"{r['report']['flops_per_frame_after'] / 1e9:,.1f} G (**{r['report']['flops_ratio']}**)"
                ),
            ),
            (
                "PSNR to the source's frames, pruned vs random",
                lambda r: f"{r['report']['function']['psnr_pruned']} vs {r['report']['function']['psnr_random']} dB",
            ),
            ("peak RSS", lambda r: _gb(r["prune"]["peak_rss_mb"])),
        ),
    ),
    "pruned_backbone_cpu.json": Entry(
        "one image forward (batch 1), SD1.5's UNet vs the pruned backbone",
        "python benchmarks/pruned_backbone.py --repeats 2",
        tuple(
            (
                f"{h}x{w}, CPU",
                lambda r, i=i: (
                    f"{_s(r['shapes'][i]['sd15_cpu_ms'])} vs {_s(r['shapes'][i]['pruned_cpu_ms'])} "
                    f"(**{r['shapes'][i]['cpu_speedup']}x**)"
                ),
            )
            for i, (h, w) in enumerate([(512, 512), (320, 512)])
        ),
        date="2026-11-27",
    ),
    "startup_cpu.json": Entry(
        "start-up of fresh processes",
        "python benchmarks/startup.py --repeats 5 -o benchmarks/results/startup_cpu.json",
        tuple(
            (f"`{c}`", lambda r, c=c: _startup(r, c))
            for c in (
                "python -c pass",
                "python -c 'import torch'",
                "nas --help",
                "nas space show tiny.yaml",
                "nas cost tiny.yaml --arch reference",
                "nas cost tiny.yaml --arch reference (cold cache)",
            )
        ),
    ),
    "table_adapt_cpu_tiny.json": Entry(
        "a table of another machine adapted here (`nas table adapt`, 8 keys), then checked 3 times against 20 "
        "whole tiny models",
        "python benchmarks/table_adapt.py latency_tables/cpu_tiny.csv --samples 8 --checks 3 "
        "-o benchmarks/results/table_adapt_cpu_tiny.json",
        _adapt_rows(checks=3),
    ),
    "table_adapt_cpu_tiny_models.json": Entry(
        "the same table of another machine (OLD.csv: latency_tables/cpu_tiny.csv as of commit 35f932b, with its "
        "sidecar) adapted here from 8 keys and 6 whole models (`--models 6`), then checked 3 times against 20 whole "
        "tiny models; 'rows only': the same checks' models judged by the rows the 8 keys alone gave",
        "python benchmarks/table_adapt.py OLD.csv --samples 8 --models 6 --checks 3 "
        "-o benchmarks/results/table_adapt_cpu_tiny_models.json",
        _adapt_rows(checks=3, models=True),
    ),
    "table_adapt_cpu_tiny_models_shipped.json": Entry(
        "the shipped tiny table (as of commit ea2bc49) adapted the same way: the result is the shipped "
        "latency_tables/cpu_tiny.csv",
        "python benchmarks/table_adapt.py latency_tables/cpu_tiny.csv --samples 8 --models 6 --checks 3 "
        "-o benchmarks/results/table_adapt_cpu_tiny_models_shipped.json",
        _adapt_rows(checks=3, models=True),
    ),
    "table_adapt_cpu_snapgen_v.json": Entry(
        "the same at full size (snapgen_v, 6 keys), checked once against 6 whole models (--warmup 1 --repeats 3)",
        "python benchmarks/table_adapt.py latency_tables/cpu_snapgen_v.csv --samples 6 --checks 1 --check-samples 6 "
        "--warmup 1 --repeats 3 -o benchmarks/results/table_adapt_cpu_snapgen_v.json",
        _adapt_rows(checks=1),
    ),
    "table_adapt_cpu_snapgen_v_k14.json": Entry(
        "the same full-size table adapted from 14 keys (the size-regime form), checked once against 6 whole models: "
        "the shipped cpu_snapgen_v.csv (OLD.csv: latency_tables/cpu_snapgen_v.csv as of commit 35f932b, with its sidecar)",
        "python benchmarks/table_adapt.py OLD.csv --samples 14 --checks 1 --check-samples 6 --warmup 1 --repeats 3 "
        "-o benchmarks/results/table_adapt_cpu_snapgen_v_k14.json",
        _adapt_rows(checks=1),
    ),
    "table_check_cpu_snapgen_v.json": Entry(
        "the latency table against whole models timed here: snapgen_v (full size)",
        _table_check("snapgen_v", "cpu_snapgen_v.csv", 6, " --warmup 1 --repeats 3"),
        (("latency", _check), ("memory", _memory_check)),
        date="2026-11-27",
    ),
    "table_check_cpu_tiny_run1.json": Entry(
        "the same check on the tiny space, run 1 of 3", TABLE_CHECK_TINY, (("latency", _check),), date="2026-11-27"
    ),
    "table_check_cpu_tiny_run2.json": Entry("run 2 of 3", TABLE_CHECK_TINY, (("latency", _check),), date="2026-11-27"),
    "table_check_cpu_tiny_run3.json": Entry(
        "run 3 of 3", TABLE_CHECK_TINY, (("latency", _check), ("memory", _memory_check)), date="2026-11-27"
    ),
    "train_step_cpu.json": Entry(
        "one training step of the full-size `reference` (fp32, gradient checkpointing)",
        "python benchmarks/train_step.py --steps 2",
        (
            ("seconds per step", lambda r: f"{r['s_per_step']:.1f} s"),
            ("peak memory", lambda r: f"{_gb(r['peak_memory_mb'])} ({r['peak_memory_kind']})"),
        ),
        date="2026-11-25",
    ),
    "proxy_check/check.json": Entry(
        "quality proxies against a ground truth (12 architectures of the tiny world, 120-step training)",
        "python benchmarks/proxy_check.py",
        (
            ("recommended", lambda r: f"**{r['recommended']['proxy']}**"),
            ("gradnorm", lambda r: _proxy(r, "gradnorm")),
            ("synflow", lambda r: _proxy(r, "synflow")),
            ("params", lambda r: _proxy(r, "params")),
        ),
        date="2026-11-26",
    ),
}


class FiguresError(Exception):
    """A results file and FIGURES disagree; the message names the file."""


def machine(result: dict) -> str:
    """The machine as the file records it: a fingerprint (nas/machine.py), a description, or neither."""
    found = result.get("machine")
    if isinstance(found, str):
        return found
    if not isinstance(found, dict):
        return "not recorded"
    if "cpu" in found:  # a nas.machine fingerprint
        keys = ("cpu", "cores", "threads", "gpu", "torch")
    else:
        keys = ("processor", "cpus", "torch_threads", "threads", "device", "torch")
    return ", ".join(f"{k} {found[k]}" for k in keys if found.get(k) not in (None, ""))


def date(result: dict, entry: Entry) -> str:
    if result.get("date") or result.get("date_utc"):
        return str(result.get("date") or result["date_utc"])
    if entry.date:
        return f"{entry.date} (the run's notes; not in the file)"
    return "not recorded"


def render(results: Path = RESULTS) -> str:
    """The page, from every results file under ``results``."""
    files = {p.relative_to(results).as_posix(): p for p in sorted(results.rglob("*.json"))}
    for name in files:
        if name not in FIGURES:
            raise FiguresError(
                f"{results / name}: no entry in benchmarks/figures.py FIGURES (what it measures, its values)"
            )
    out = [
        "# Measured figures\n\n",
        "Generated by `python benchmarks/figures.py` from `benchmarks/results/`: do not edit by hand (a test ",
        "fails when this page differs from what the script makes of the results files). Each section is one ",
        "results file: what it measures, its headline values, the date, the machine as the file records it, and ",
        "the command that writes it. The conditions of each run (load, threads, protocol) are in ",
        "[Measured numbers, with their conditions](numbers.md) and [Speed against other models](benchmarks.md).\n",
    ]
    for name, entry in FIGURES.items():
        if name not in files:
            raise FiguresError(f"{results / name}: missing (FIGURES in benchmarks/figures.py names it)")
        try:
            result = json.loads(files[name].read_text())
        except json.JSONDecodeError as error:
            raise FiguresError(f"{files[name]}: not JSON ({error})") from None
        rows = []
        for label, value in entry.values:
            try:
                rows.append(f"| {label} | {value(result)} |\n")
            except (KeyError, IndexError, StopIteration, TypeError) as error:
                raise FiguresError(f"{files[name]}: no value for {label!r} ({type(error).__name__}: {error})") from None
        out += [
            f"\n## {name.removesuffix('.json').replace('/', '-')}\n\n",
            f"{entry.what[:1].upper()}{entry.what[1:]}.\n\n",
            f"- file: `benchmarks/results/{name}`\n",
            f"- date: {date(result, entry)}\n",
            f"- machine: {machine(result)}\n",
            f"- command: `{entry.command}`\n\n",
            "| figure | value |\n|---|---|\n",
            *rows,
        ]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results folder")
    parser.add_argument("-o", "--out", type=Path, default=PAGE, help="the page to write")
    args = parser.parse_args(argv)
    try:
        page = render(args.results)
    except FiguresError as error:
        print(f"figures: error: {error}", file=sys.stderr)
        return 2
    args.out.write_text(page)
    print(f"wrote {args.out} ({len(FIGURES)} results files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
