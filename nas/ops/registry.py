"""The temporal op registry: op type names (as written in YAML) to TemporalOp classes.

Like timm's model registry, a name in a config becomes a class without import chains, and
users extend it from their own code: decorate a TemporalOp subclass with ``@register_op``
before loading a space that names it, load its module with ``nas --plugin MODULE`` (spawned
workers import it too, see :mod:`nas.plugins`), or expose it under the ``nas.temporal_ops``
entry-point group of an installed package so that the ``nas`` command finds it too.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from nas.plugins import load_inherited

if TYPE_CHECKING:
    from nas.ops.base import TemporalOp

ENTRY_POINT_GROUP = "nas.temporal_ops"

_REGISTRY: dict[str, type[TemporalOp]] = {}

# The built-in ops, by the module that registers them: imported on first use, so that reading a
# table or listing names does not pull in torch and diffusers.
BUILTIN = {"none": "nas.ops.identity", "conv1d": "nas.ops.conv", "conv3d": "nas.ops.conv",
           "attn1d": "nas.ops.attention", "attn3d": "nas.ops.attention"}
# Their parameters and defaults, kept here (the op classes take theirs from this) so that a table's
# keys can be checked and completed without importing an op.
BUILTIN_DEFAULTS = {"none": {}, "conv1d": {"kernel": 3}, "conv3d": {"kernel": 3}, "attn1d": {"heads": 8},
                    "attn3d": {"heads": 8}}


def register_op(cls: type[TemporalOp]) -> type[TemporalOp]:
    """Class decorator: make ``cls`` usable under ``cls.name`` in search spaces."""
    name = getattr(cls, "name", "")
    if not name or not name.isidentifier():
        raise ValueError(f"{cls.__qualname__}.name must be an identifier, got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"temporal op {name!r} is already registered by {_REGISTRY[name].__qualname__}")
    _REGISTRY[name] = cls
    return cls


@functools.cache
def _load_entry_points() -> None:
    """Import plugin packages once; each entry point's import registers its ops."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def get_op(name: str) -> type[TemporalOp]:
    """The class registered as ``name``; KeyError (naming the known ops) if there is none."""
    check_op_name(name)
    if name not in _REGISTRY:
        importlib.import_module(BUILTIN[name])
    return _REGISTRY[name]


def check_op_name(name: str) -> None:
    """KeyError (naming the known ops) unless ``name`` is an op type; imports no built-in op."""
    if name not in _REGISTRY and name not in BUILTIN:
        _load_entry_points()
        load_inherited()  # a spawned worker: the parent's --plugin modules
    if name not in _REGISTRY and name not in BUILTIN:
        raise KeyError(f"unknown temporal op {name!r} (known: {', '.join(list_ops())})")


def op_defaults(name: str) -> dict:
    """The parameters of op type ``name`` with their defaults; KeyError if there is no such op."""
    check_op_name(name)
    if name in _REGISTRY:
        return dict(_REGISTRY[name].defaults)
    return dict(BUILTIN_DEFAULTS[name])


def list_ops() -> list[str]:
    """Names of all registered temporal op types."""
    _load_entry_points()
    load_inherited()
    return sorted(set(_REGISTRY) | set(BUILTIN))
