"""The ``nas`` command: a thin layer over the Python API (every command has a function).

Each command group is a module of this package holding its parser next to its handler; a
handler turns the arguments into one call of the API and prints the result, importing the
heavy libraries only when it runs (``nas --help`` stays light).

User mistakes (NasError) end as one line on stderr and exit code 2; argparse usage errors
also exit 2. Plugins (modules that register temporal ops) load with ``--plugin MODULE``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from collections.abc import Sequence

from nas import plugins
from nas.cli import (
    build,
    cost,
    data,
    export,
    generate,
    listing,
    profile,
    proxy,
    prune,
    search,
    space,
    table,
    train,
    world,
)
from nas.errors import NasError
from nas.quiet import show_warning, third_party_quiet

GROUPS = (space, listing, build, prune, table, profile, cost, search, proxy, world, export, data, train, generate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = show_warning  # before parsing: a deprecated flag warns while it is parsed
    args = parser.parse_args(argv)
    args.command_line = "nas " + " ".join(shlex.quote(str(a)) for a in argv)
    try:
        with third_party_quiet(args.verbose):
            plugins.load(args.plugin)
            return args.func(args) or 0
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # nas.errors.Interrupted says what was kept and how to resume
        print(f"nas: interrupted: {exc}" if str(exc) else "nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then each group's subcommands in help order."""
    parser = argparse.ArgumentParser(prog="nas", description="Hardware-aware NAS for mobile video diffusion.")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it may register temporal ops, proxies, profilers); repeatable",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show third-party warnings as they come (default: one line counting them)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parser(commands)
    return parser
