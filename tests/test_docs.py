"""The docs run: every shell and Python block of README.md, docs/*.md and latency_tables/README.md.

The blocks and their markers are found by tests/docblocks.py (``skip: REASON`` blocks are skipped
here by file and line with their reason; the tiny recipe and the blocks after it run in
tests/test_recipe.py). Every command line of every block, run or not, is checked against what it
names: a ``nas`` line is parsed by the real ``nas`` parser (so a renamed command or flag fails here),
a ``make`` line names a target of the Makefile, a ``python SCRIPT`` line names a script that exists
and declares each of the ``--flags`` the line passes. Blocks that run do so in a fresh folder
holding links to the repository's spaces, tables and example configs, each ``nas`` line through the
in-process entry point; cheap blocks only (tiny spaces, pricing, listing).

Also here: the site's command pages link every API function the command groups call, and the
measured-figures page (docs/measured.md) is what benchmarks/figures.py makes of the results now.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from tests.conftest import ROOT
from tests.docblocks import MARKER, PAGES, blocks, check_line, command_lines

sys.path.insert(0, str(ROOT / "examples"))

import recipe  # noqa: E402  (examples/recipe.py: the lines `make demo` runs)

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

    for name in recipe.SHARED:
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


def test_the_readme_is_a_front_door_whose_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 200, "README.md is the front door: what, install, first run, where to go next"
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 10
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_api_function_a_command_group_calls_has_a_page_and_a_link():
    from docs.reference import api_calls, api_modules, command_groups, group_page

    public = set(api_modules())
    groups = command_groups()
    assert {g for g, _ in groups} >= {"search", "table", "cost", "prune", "train", "export"}
    for group, group_commands in groups:
        page = group_page(group, group_commands)
        for words, _ in group_commands:
            assert f"## `{' '.join(words)}`" in page
        for path in api_calls(group):
            module = path.rsplit(".", 1)[0]
            while module not in public:  # a method (Class.method): its class's module has the page
                assert "." in module, f"{path}: defined in no public module, so on no API page"
                module = module.rsplit(".", 1)[0]
            assert f"][{path}]" in page, (group, path)
    assert "nas.cost.report.price" in api_calls("cost")


def figures():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import figures

    return figures


def test_the_measured_figures_page_is_what_the_results_files_make_now():
    page = (ROOT / "docs" / "measured.md").read_text()
    assert page == figures().render(), "docs/measured.md is stale: run python benchmarks/figures.py"


def test_an_edited_results_file_makes_another_page_and_an_unknown_one_is_refused(tmp_path, capsys):
    import json
    import shutil

    fig = figures()
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    data = json.loads((results / "forward_cpu_16x320x512.json").read_text())
    data["ratio_latency"] = 9.99
    (results / "forward_cpu_16x320x512.json").write_text(json.dumps(data))
    page = fig.render(results)
    assert "**9.99x** faster" in page and page != (ROOT / "docs" / "measured.md").read_text()
    del data["ratio_latency"]
    (results / "forward_cpu_16x320x512.json").write_text(json.dumps(data))
    with pytest.raises(fig.FiguresError, match="forward_cpu_16x320x512.json: no value for"):
        fig.render(results)
    shutil.copy(ROOT / "benchmarks" / "results" / "forward_cpu_16x320x512.json", results)
    (results / "new_benchmark.json").write_text("{}")
    assert fig.main(["--results", str(results), "-o", str(tmp_path / "page.md")]) == 2
    assert not (tmp_path / "page.md").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "new_benchmark.json: no entry in benchmarks/figures.py FIGURES" in err
    (results / "new_benchmark.json").unlink()
    (results / "pricing.json").write_text("{")
    assert fig.main(["--results", str(results), "-o", str(tmp_path / "page.md")]) == 2
    assert "pricing.json: not JSON" in capsys.readouterr().err


def test_every_command_on_the_measured_page_is_current():
    for name, entry in figures().FIGURES.items():
        assert check_line(shlex.split(entry.command)) is None, (name, entry.command)
