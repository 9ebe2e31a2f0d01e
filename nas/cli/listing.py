"""``nas ops|proxies|profilers``: what the three plug-in registries hold (built-in, plugin or entry point)."""

from __future__ import annotations

import json
from typing import Any

from nas.cli.format import print_table


def add_parser(commands) -> None:
    for noun, func, what in (
        ("ops", cmd_ops, "temporal op types"),
        ("proxies", cmd_proxies, "quality proxies"),
        ("profilers", cmd_profilers, "profiler backends"),
    ):
        listing = commands.add_parser(noun, help=f"list the registered {what}: name, source, description")
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(func=func)


def cmd_ops(args) -> None:
    from nas.ops import describe_ops

    show("op", describe_ops(), args.json)


def cmd_proxies(args) -> None:
    from nas.quality.proxies import describe_proxies

    show("proxy", describe_proxies(), args.json)


def cmd_profilers(args) -> None:
    from nas.profile.base import describe_profilers

    show("profiler", describe_profilers(), args.json)


def show(noun: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    """A registry's rows (name, then the other columns) as JSON keyed by name, or as a table."""
    if as_json:
        print(json.dumps({row["name"]: {k: v for k, v in row.items() if k != "name"} for row in rows}, indent=2))
        return
    columns = [k for k in rows[0] if k != "name"] if rows else []
    cells = [
        [row["name"], *(v if isinstance(v, str) else json.dumps(v) for v in (row[c] for c in columns))] for row in rows
    ]
    print_table([noun, *columns], cells)
