"""Run the README's tiny recipe command by command, exactly as written there (`make demo`).

The recipe is the fenced block after the ``<!-- recipe: tiny -->`` marker in README.md; the
test suite runs the same commands (tests/test_recipe.py), so the README cannot drift from the
code. Outputs go to the working directory (``--dir``, default: the repository root):
``data/``, ``models/tiny/`` and ``runs/tiny/``.

    python examples/recipe.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- recipe: tiny -->"
SHARED = ("search_spaces", "latency_tables", "examples")  # what the recipe reads from the repository


def commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The recipe's command lines: continuation lines joined, comments and blank lines dropped."""
    text = readme.read_text()
    if MARK not in text:
        raise SystemExit(f"{readme}: no {MARK} marker")
    block = text.split(MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.join(shlex.split(line, comments=True)) for line in lines if shlex.split(line, comments=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT, help="where to run (the repository's inputs are linked in)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        if not (args.dir / name).exists():
            (args.dir / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    for command in commands():
        print(f"$ {command}", flush=True)
        subprocess.run(command, shell=True, check=True, cwd=args.dir, env=env)
    print(f"recipe done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
