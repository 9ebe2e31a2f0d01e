"""Deprecated spellings of renamed options: they still work for one release and say the new name.

A renamed flag keeps its old spelling as a hidden option writing the same destination; using it
prints one line ``nas: warning: --steps is deprecated; use --passes`` (a NasWarning, shown by
``nas.cli.main`` like every other) and then behaves exactly like the new flag.
"""

from __future__ import annotations

import argparse
import warnings

from nas.errors import NasWarning


class _Deprecated(argparse.Action):
    def __init__(self, option_strings, dest, new: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warnings.warn(f"{option_string} is deprecated; use {self.new}", NasWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def deprecated_flag(parser: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    """Add ``old`` as a hidden alias of the option ``new`` (argparse's default dest of ``new``; pass its type)."""
    parser.add_argument(
        old,
        dest=new.lstrip("-").replace("-", "_"),
        action=_Deprecated,
        new=new,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **kwargs,
    )
