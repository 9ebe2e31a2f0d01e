"""The fenced shell and Python blocks of README.md and the docs, and a check of each documented command line.

Shared by tests/test_docs.py (which runs the blocks and checks every command line) and
tests/test_recipe.py (which runs the tiny recipe and the blocks that use its outputs).

A block runs unless the line before it is a marker comment:

- ``<!-- skip: REASON -->``: not run here (it needs a Mac, a GPU, SD1.5's weights, full-size models
  or a long run); the test that would run it is skipped with REASON, by file and line;
- ``<!-- recipe: tiny -->`` and ``<!-- after: recipe -->``: the tiny recipe and the blocks that use
  its outputs, run by tests/test_recipe.py.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "latency_tables" / "README.md"]
SHELL = {"bash", "sh", "shell", "console"}
MARKER = re.compile(r"<!--\s*(skip|recipe|after):\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", flags=re.S | re.M)
# commands other than nas/make/python that a block may name (none so far: add one with its check)
OTHER_COMMANDS: set[str] = set()
# modules a ``python -m`` line may run
PYTHON_MODULES = {"venv", "pytest"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str
    marker: str  # "", "skip", "recipe" or "after"
    reason: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(pages=PAGES) -> list[Block]:
    """The fenced shell and Python blocks of the pages, with the marker comment on the line before each."""
    found = []
    for page in pages:
        text = page.read_text()
        for match in FENCE.finditer(text):
            lang = match.group(1)
            if lang not in SHELL and lang != "python":
                continue
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.fullmatch(before.strip())
            found.append(
                Block(
                    page,
                    text.count("\n", 0, match.start()) + 1,
                    "shell" if lang in SHELL else "python",
                    match.group(2),
                    marker.group(1) if marker else "",
                    marker.group(2) if marker else "",
                )
            )
    return found


def command_lines(block: Block) -> list[list[str]]:
    """A shell block's commands as argv lists: continuations joined, comments and blank lines dropped,
    and the ``[...]`` of optional parts (``[--freeze-spatial]``) taken as written out."""
    lines = block.text.replace("\\\n", " ").splitlines()
    argvs = [shlex.split(line, comments=True) for line in lines]
    return [[_unbracket(word) for word in argv if _unbracket(word)] for argv in argvs if argv]


def _unbracket(word: str) -> str:
    """``[--flag`` and ``VALUE]`` of an optional part as written out; a pip extra (``.[dev]``) as it is."""
    return word if ".[" in word else word.strip("[]")


def check_pip(argv: list[str]) -> str | None:
    """A ``pip install`` line: its constraints file exists, and each extra of ``-e '.[a,b]'`` is in setup.cfg."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = set(config["options.extras_require"])
    problems = []
    for flag, value in zip(argv, argv[1:]):
        if flag == "-c" and not (ROOT / value).is_file():
            problems.append(f"no constraints file {value}")
    for word in argv:
        if word.startswith(".["):
            problems += [f"no extra {e!r} in setup.cfg" for e in word[2:-1].split(",") if e not in extras]
    return "; ".join(problems) or None


def script_source(script: Path) -> str:
    """A script's text and that of the modules beside it that it imports (where its shared flags live)."""
    text = script.read_text()
    for name in re.findall(r"^\s*(?:from|import) (\w+)", text, flags=re.M):
        if (script.parent / f"{name}.py").is_file():
            text += (script.parent / f"{name}.py").read_text()
    return text


def check_line(argv: list[str]) -> str | None:
    """What is wrong with one documented command line (None: nothing)."""
    from nas.cli import build_parser

    if argv[0] == "nas":
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
                build_parser().parse_args(argv[1:])
        except SystemExit:
            return "the nas parser refuses it: " + said.getvalue().strip().splitlines()[-1]
        return None
    if argv[0] == "make":
        targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
        missing = [t for t in argv[1:] if t not in targets]
        return f"no Makefile target {missing}" if missing else None
    if argv[0].endswith("/pip") or argv[0] == "pip":
        return check_pip(argv)
    if argv[0].endswith("/nas"):  # .venv/bin/nas
        return check_line(["nas", *argv[1:]])
    if argv[0] == "python" and argv[1:2] == ["-m"]:
        if argv[2] == "nas":
            return check_line(["nas", *argv[3:]])
        return None if argv[2] in PYTHON_MODULES else f"python -m {argv[2]}: not a module the docs may name"
    if argv[0] == "python":
        script = ROOT / argv[1]
        if not script.is_file():
            return f"no script {argv[1]}"
        source = script_source(script)
        flags = [w.split("=", 1)[0] for w in argv[2:] if w.startswith("--")]
        missing = [f for f in flags if f'"{f}"' not in source]
        return f"{argv[1]} declares no {missing}" if missing else None
    if argv[0] in OTHER_COMMANDS:
        return None
    return f"unknown command {argv[0]!r} (nas, make, python, pip; add others to OTHER_COMMANDS with a check)"
