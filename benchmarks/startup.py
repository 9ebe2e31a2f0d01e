"""Start-up time of the light `nas` commands, side by side with a bare `python -c pass` and `import torch`.

Each command runs ``--repeats`` times in a fresh interpreter (what a user pays per call); the
median and the spread are reported, with which heavy libraries the command imported (read
from ``python -X importtime``) and the median as a ratio to ``python -c pass`` and to
``import torch``. ``nas space show`` and ``nas cost`` read the backbone's parameter count and
the fixed parts' defaults from the cache of :mod:`nas.space.library_cache`: they run with a
cache of their own, warmed by one untimed call, and ``nas cost`` once more with an empty cache
per call (``cold``: what the first call after installing or upgrading diffusers pays). The goal
(issue 24): ``nas cost`` of the tiny space's reference, median under 1.5 s. Writes JSON with ``-o``.

    python benchmarks/startup.py --repeats 5 -o benchmarks/results/startup_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "optuna", "coremltools", "pandas")
TORCH = "python -c 'import torch'"
COST = ["-m", "nas", "cost", "search_spaces/tiny.yaml", "--arch", "reference", "--table", "latency_tables/cpu_tiny.csv"]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    TORCH: ["-c", "import torch"],
    "nas --help": ["-m", "nas", "--help"],
    "nas table validate": ["-m", "nas", "table", "validate"],
    "nas space show tiny.yaml": ["-m", "nas", "space", "show", "search_spaces/tiny.yaml"],
    "nas cost tiny.yaml --arch reference": COST,
    "nas cost tiny.yaml --arch reference (cold cache)": COST,
}
GOAL = ("nas cost tiny.yaml --arch reference", 1.5)  # issue 24: median under 1.5 s


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def imported(args: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level packages the command imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    caches = tempfile.TemporaryDirectory(prefix="nas-startup-")  # removed at exit, the cold ones inside it
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NAS_CACHE_DIR": caches.name}

    def cold() -> dict[str, str]:
        return {**env, "NAS_CACHE_DIR": tempfile.mkdtemp(dir=caches.name)}

    rows = []
    for name, command in COMMANDS.items():
        if name.endswith("(cold cache)"):
            times = [run(command, cold()) for _ in range(args.repeats)]
            heavy = imported(command, cold())
        else:
            run(command, env)  # untimed: fills the cache (and the OS's file cache) as a user's earlier call did
            times = [run(command, env) for _ in range(args.repeats)]
            heavy = imported(command, env)
        rows.append(
            {
                "command": name,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "imports": heavy,
            }
        )
        print(
            f"{name:50s} median {rows[-1]['median_s']:6.2f} s  (min {rows[-1]['min_s']:.2f}, "
            f"max {rows[-1]['max_s']:.2f})  imports: {', '.join(rows[-1]['imports']) or '-'}",
            flush=True,
        )
    medians = {row["command"]: row["median_s"] for row in rows}
    for row in rows:
        row["x_python"] = round(row["median_s"] / medians["python -c pass"], 2)
        row["x_import_torch"] = round(row["median_s"] / medians[TORCH], 2)
    goal = {"command": GOAL[0], "limit_s": GOAL[1], "median_s": medians[GOAL[0]], "met": medians[GOAL[0]] < GOAL[1]}
    print(
        f"goal: {goal['command']} median {goal['median_s']:.2f} s < {goal['limit_s']} s: {goal['met']} "
        f"({goal['median_s'] / medians[TORCH]:.2f} x import torch)"
    )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
        "goal": goal,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
