"""What the site's reference pages list: the public modules of ``nas`` and every ``nas`` command.

Kept apart from the build script (docs/gen_pages.py) so that the tests can ask the same questions
without mkdocs: tests/test_docs.py checks that every public function of the command groups is on
a reference page.
"""

from __future__ import annotations

import argparse
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


def cli_reference() -> str:
    """The command reference page: each command's ``--help`` as argparse prints it."""
    out = [
        "# Commands\n\n",
        "Every `nas` command with its `--help`, taken from the parser when the site is built. ",
        "Each is one call of a Python API function (see the API reference).\n",
    ]
    for words, parser in commands():
        out.append(f"\n## `{' '.join(words)}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "".join(out)
