"""Start-up time of the light `nas` commands, side by side with a bare `python -c pass`.

Each command runs ``--repeats`` times in a fresh interpreter (what a user pays per call); the
median and the spread are reported, with which heavy libraries the command imported (read
from ``python -X importtime``). Writes JSON with ``-o``.

    python benchmarks/startup.py --repeats 7 -o benchmarks/results/startup_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "optuna", "coremltools", "pandas")
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "nas --help": ["-m", "nas", "--help"],
    "nas table validate": ["-m", "nas", "table", "validate"],
    "nas space show tiny.yaml": ["-m", "nas", "space", "show", "search_spaces/tiny.yaml"],
    "nas cost tiny.yaml": ["-m", "nas", "cost", "search_spaces/tiny.yaml", "--table", "latency_tables/cpu_tiny.csv"],
}


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for name, command in COMMANDS.items():
        times = [run(command, env) for _ in range(args.repeats)]
        rows.append(
            {
                "command": name,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "imports": imported(command, env),
            }
        )
        print(
            f"{name:28s} median {rows[-1]['median_s']:6.2f} s  (min {rows[-1]['min_s']:.2f}, "
            f"max {rows[-1]['max_s']:.2f})  imports: {', '.join(rows[-1]['imports']) or '-'}",
            flush=True,
        )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
