"""The CLI package stays a thin layer: small modules, parsers next to handlers, no heavy import at load."""

import ast

import pytest

from tests.conftest import ROOT

CLI = ROOT / "nas" / "cli"
MODULES = sorted(CLI.glob("*.py"))
LIGHT = {
    "argparse",
    "collections.abc",
    "json",
    "os",
    "shlex",
    "sys",
    "warnings",
    "pathlib",
    "typing",
    "__future__",
    "nas",
    "nas.cli",
    "nas.cli.aliases",
    "nas.cli.format",
    "nas.errors",
    "nas.quiet",
}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_cli_module_is_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 250, f"{path.name} has {lines} lines; split the command group or move logic into the API"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_cli_modules_import_only_light_modules_at_load(path):
    tree = ast.parse(path.read_text())
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert set(names) <= LIGHT, f"{path.name} imports {sorted(set(names) - LIGHT)} at load: import inside handlers"


def test_each_command_group_has_its_parser_and_handlers():
    from nas.cli import GROUPS

    for group in GROUPS:
        source = ast.parse(open(group.__file__).read())
        functions = {node.name for node in source.body if isinstance(node, ast.FunctionDef)}
        assert "add_parser" in functions, group.__name__
        assert any(name.startswith("cmd_") for name in functions), group.__name__


def test_handlers_are_thin():
    """A handler calls into the API and prints: no error translation (try) and few API names of its own."""
    from nas.cli import GROUPS

    for group in GROUPS:
        for node in ast.parse(open(group.__file__).read()).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_")):
                continue
            where = f"{group.__name__}.{node.name}"
            assert not any(isinstance(n, ast.Try) for n in ast.walk(node)), f"{where} translates errors itself"
            api = [
                alias.name
                for n in ast.walk(node)
                if isinstance(n, ast.ImportFrom) and n.module not in ("nas.options", "nas.cli.format")
                for alias in n.names
            ]
            assert len(api) <= 3, f"{where} imports {api}: give the API one function for this command"
