"""``KEY=VALUE`` options, as ``--proxy-option``, ``--reference-option`` and ``nas train --set`` take them.

One parser for all of them, so that the same text means the same value everywhere: each VALUE is
read as a YAML scalar (``40`` -> int, ``1e-3`` -> the string YAML makes of it, ``null`` -> None),
and the consumer coerces it to the type it declares.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from collections.abc import Iterable
from typing import Any

import yaml

from nas.errors import NasError, NasWarning


def key_values(items: Iterable[str], flag: str) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values are read as YAML scalars. ``flag`` names the option in errors."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NasError(f"{flag} {item}: expected KEY=VALUE")
        try:
            values[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise NasError(f"{flag} {item}: VALUE is not valid YAML") from None
    return values


def renamed_keys(values: dict[str, Any], renames: dict[str, str], where: str, noun: str = "") -> dict[str, Any]:
    """A copy of ``values`` with each deprecated key (``renames``: old -> new) under its new name.

    Old spellings keep working for one release: each one used prints one deprecation line. ``noun``
    (say ``column``) names what the keys are, in that line and in the error for both spellings given."""
    values = dict(values)
    what = f"{noun} " if noun else ""
    for old, new in renames.items():
        if old in values:
            if new in values:
                raise NasError(f"{where}: {what}{old} and {new} are the same {noun or 'option'}; give only {new}")
            warnings.warn(f"{where}: {what}{old} is deprecated; use {new}", NasWarning, stacklevel=2)
            values[new] = values.pop(old)
    return values


def renamed_kwargs(**renames: str):
    """Decorator: a function's renamed keyword arguments (``old="new"``) keep working for one release.

    An old keyword is passed on under its new name, with one deprecation line (see :func:`renamed_keys`)."""

    def wrap(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            return function(*args, **renamed_keys(kwargs, renames, f"{function.__qualname__}()"))

        call.renamed = renames  # for checkers of options by signature (nas.quality.proxies.check_options)
        return call

    return wrap


def moved_module(old: str, new: str) -> None:
    """Make module ``old`` an alias of ``new`` for one release, with one deprecation line.

    Called by a module left at an old import path: the import system hands its importer whatever
    ``sys.modules[old]`` holds once the module has run, so ``import old`` gives the new module itself
    (its classes, registries and private helpers, the same objects as under the new path)."""
    warnings.warn(f"{old} is deprecated; use {new}", NasWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
