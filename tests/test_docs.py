"""The docs run: every shell and Python block of README.md, docs/*.md and latency_tables/README.md.

A block runs unless the line before it is a marker comment:

- ``<!-- skip: REASON -->``: not run here (it needs a Mac, a GPU, SD1.5's weights, full-size models
  or a long run); the test that would run it is skipped with REASON, by file and line;
- ``<!-- recipe: tiny -->`` and ``<!-- after: recipe -->``: the tiny recipe and the blocks that use
  its outputs, run by tests/test_recipe.py.

Every command line of every block, run or not, is checked against what it names: a ``nas`` line
is parsed by the real ``nas`` parser (so a renamed command or flag fails here), a ``make`` line
names a target of the Makefile, a ``python SCRIPT`` line names a script that exists and declares
each of the ``--flags`` the line passes. Blocks that run do so in a fresh folder holding links to
the repository's spaces, tables and example configs, each ``nas`` line through the in-process
entry point; cheap blocks only (tiny spaces, pricing, listing): the whole module takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))

import recipe  # noqa: E402  (examples/recipe.py: the lines `make demo` runs)

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "latency_tables" / "README.md"]
SHELL = {"bash", "sh", "shell", "console"}
MARKER = re.compile(r"<!--\s*(skip|recipe|after):\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", flags=re.S | re.M)
LINKED = ("search_spaces", "latency_tables", "examples")
# commands other than nas/make/python that a block may name (none so far: add one with its check)
OTHER_COMMANDS: set[str] = set()


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
    return [[word.strip("[]") for word in argv if word.strip("[]")] for argv in argvs if argv]


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
    if argv[0] == "python":
        script = ROOT / argv[1]
        if not script.is_file():
            return f"no script {argv[1]}"
        source = script.read_text()
        flags = [w.split("=", 1)[0] for w in argv[2:] if w.startswith("--")]
        missing = [f for f in flags if f'"{f}"' not in source]
        return f"{argv[1]} declares no {missing}" if missing else None
    if argv[0] in OTHER_COMMANDS:
        return None
    return f"unknown command {argv[0]!r} (nas, make, python; add others to OTHER_COMMANDS with a check)"


ALL = blocks()
SHELL_BLOCKS = [b for b in ALL if b.lang == "shell"]
RUN_HERE = [b for b in ALL if b.marker in ("", "skip")]


def test_every_block_is_found_and_every_marker_is_known():
    assert len(ALL) >= 15 and any(b.marker == "recipe" for b in ALL)
    for page in PAGES:  # a marker must sit right above a fenced block, or it marks nothing
        for match in MARKER.finditer(page.read_text()):
            assert any(b.page == page and b.reason == match.group(2) for b in ALL), (page, match.group(0))
    assert all(b.reason for b in ALL if b.marker == "skip"), "a skip says why"


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.name)
def test_every_documented_command_line_is_current(block):
    problems = [f"{shlex.join(argv)}: {why}" for argv in command_lines(block) if (why := check_line(argv))]
    assert not problems, f"{block.name}: " + "; ".join(problems)


def test_the_recipe_is_the_same_wherever_it_is_shown():
    shown = [b for b in ALL if b.marker == "recipe"]
    assert len(shown) >= 2  # README and docs/getting-started.md
    for block in shown:
        assert [shlex.join(a) for a in command_lines(block)] == recipe.commands(), block.name


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A fresh folder with the repository's inputs linked in, the working directory of a block; the plug-in
    registries are restored after it (a block may register a user op, as the plugin page shows)."""
    from nas.ops.registry import OP_REGISTRY
    from nas.profile.base import PROFILER_REGISTRY
    from nas.quality.proxies import PROXY_REGISTRY

    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    for registry in (OP_REGISTRY, PROXY_REGISTRY, PROFILER_REGISTRY):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    return tmp_path


@pytest.mark.parametrize("block", RUN_HERE, ids=lambda b: b.name)
def test_documented_block_runs(block, scratch):
    if block.marker == "skip":
        pytest.skip(f"{block.name}: {block.reason}")
    if block.lang == "python":
        scope: dict = {}
        exec(compile(block.text, str(block.page), "exec"), scope)
        return
    from nas.cli import main

    for argv in command_lines(block):
        assert argv[0] == "nas", f"{block.name}: only nas lines run here; mark the block `skip` with why"
        assert main(argv[1:]) == 0, f"{block.name}: {shlex.join(argv)}"


def test_a_renamed_flag_or_command_is_caught():
    assert check_line(["nas", "cost", "search_spaces/tiny.yaml", "--arch", "reference", "--table", "t.csv"]) is None
    assert check_line(["nas", "price", "search_spaces/tiny.yaml"]) is not None
    assert check_line(["nas", "cost", "search_spaces/tiny.yaml", "--tabel", "t.csv"]) is not None
    assert check_line(["make", "nosuchtarget"]) is not None
    assert check_line(["python", "benchmarks/pricing.py", "--no-such-flag"]) is not None
