"""What the site's reference pages list: the public modules of ``nas`` and every ``nas`` command.

Kept apart from the build script (docs/gen_pages.py) so that the tests can ask the same questions
without mkdocs: tests/test_docs.py checks that every public function the command groups call is
defined in a public module (so it has an API page) and linked from its group's page.
"""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def api_modules(package: str = "nas") -> list[str]:
    """Every public module and package under ``package``, by path (nothing is imported).

    A name with a leading underscore anywhere in its dotted path is private (``__main__``, ``_x``).
    """
    base = ROOT / package
    names = []
    for path in sorted(base.rglob("*.py")):
        parts = (package, *path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return names


def commands(parser: argparse.ArgumentParser | None = None, prefix: tuple[str, ...] = ("nas",)):
    """(words, parser) of every command and subcommand of the ``nas`` parser, in help order."""
    if parser is None:
        from nas.cli import build_parser

        parser = build_parser()
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub.prog.split()[-1] == name:  # aliases share a parser: list it once, under its name
                    yield from commands(sub, (*prefix, name))


def command_groups() -> list[tuple[str, list[tuple[tuple[str, ...], argparse.ArgumentParser]]]]:
    """(group module's short name, its commands) for each module of ``nas.cli.GROUPS``, in help order."""
    from nas.cli import GROUPS

    groups = []
    for group in GROUPS:
        parser = argparse.ArgumentParser(prog="nas")
        group.add_parser(parser.add_subparsers())
        groups.append((group.__name__.rsplit(".", 1)[-1], list(commands(parser))[1:]))
    return groups


def api_calls(group: str) -> list[str]:
    """The public ``nas`` functions and classes a command group's module calls, by their defining path.

    Read from its imports (the commands import their API lazily, inside the functions), each resolved
    to the module that defines it, where its API page is; modules and the error types are left out."""
    tree = ast.parse((ROOT / "nas" / "cli" / f"{group}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nas.")):
            continue
        if node.module.startswith(("nas.cli", "nas.errors")):
            continue
        for alias in node.names:
            obj = getattr(importlib.import_module(node.module), alias.name)
            if alias.name.startswith("_") or not callable(obj):
                continue
            path = f"{obj.__module__}.{obj.__qualname__}"
            if path not in found:
                found.append(path)
    return found


def group_page(group: str, group_commands) -> str:
    """A command group's page: each command's ``--help`` as argparse prints it, then the API it calls."""
    names = ", ".join(f"`{' '.join(words)}`" for words, _ in group_commands if len(words) == 2)
    out = [
        f"# {names}\n\n",
        f"The commands of `nas/cli/{group}.py`, each with its `--help` taken from the parser when the site ",
        "is built, and the Python functions they are a thin layer over.\n",
    ]
    from nas.cli import build_parser

    said = {}  # the one line each command has in its parent's listing (argparse's help= of add_parser)
    for words, parser in [(("nas",), build_parser()), *group_commands]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                said.update({(*words, choice.dest): choice.help for choice in action._choices_actions})
    for words, parser in group_commands:
        line = f"{said[words]}\n\n" if said.get(words) else ""
        out.append(f"\n## `{' '.join(words)}`\n\n{line}```text\n{parser.format_help().rstrip()}\n```\n")
    calls = api_calls(group)
    if calls:
        out.append("\n## Python API\n\n")
        out += [f"- [`{path.rsplit('.', 1)[-1]}`][{path}] (`{path}`)\n" for path in calls]
    return "".join(out)
