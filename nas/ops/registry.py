"""The temporal op registry: op type names (as written in YAML) to TemporalOp classes.

One :class:`nas.registry.Registry`, with the rules every plug-in point shares. Users extend it
from their own code: decorate a TemporalOp subclass with ``@register_op`` before loading a space
that names it, load its module with ``nas --plugin MODULE`` (child workers import it too, see
:mod:`nas.plugins`), or expose it under the ``nas.temporal_ops`` entry-point group of an
installed package so that the ``nas`` command finds it too.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nas.registry import RegistrationError, Registry

if TYPE_CHECKING:
    from nas.ops.base import TemporalOp

ENTRY_POINT_GROUP = "nas.temporal_ops"

# The built-in ops, imported on first use, so that reading a table or listing names does not pull
# in torch and diffusers.
BUILTIN = MappingProxyType(
    {
        "none": "nas.ops.identity:NoTemporalOp",
        "conv1d": "nas.ops.conv:Conv1d",
        "conv3d": "nas.ops.conv:Conv3d",
        "attn1d": "nas.ops.attention:Attention1d",
        "attn3d": "nas.ops.attention:Attention3d",
    }
)
# Their parameters and defaults, kept here (the op classes take theirs from this) so that a table's
# keys can be checked and completed without importing an op; read-only, as the classes share them.
BUILTIN_DEFAULTS = MappingProxyType(
    {
        name: MappingProxyType(defaults)
        for name, defaults in {
            "none": {},
            "conv1d": {"kernel": 3},
            "conv3d": {"kernel": 3},
            "attn1d": {"heads": 8},
            "attn3d": {"heads": 8},
        }.items()
    }
)


def _identifier(name: str, cls: Any) -> None:
    """Op names are identifiers: they are YAML values, CSV cells and parts of package file names."""
    if not name.isidentifier():
        raise RegistrationError(f"temporal op {cls.__qualname__}: name must be an identifier, got {name!r}")


OP_REGISTRY: Registry[type[TemporalOp]] = Registry("temporal op", ENTRY_POINT_GROUP, BUILTIN, _identifier)


def register_op(cls: type[TemporalOp]) -> type[TemporalOp]:
    """Class decorator: make ``cls`` usable under ``cls.name`` in search spaces."""
    return OP_REGISTRY.register(cls)


def get_op(name: str) -> type[TemporalOp]:
    """The class registered as ``name``; UnknownName (a NasError and KeyError naming the known ops) if none."""
    return OP_REGISTRY.get(name)


def check_op_name(name: str) -> None:
    """UnknownName (naming the known ops) unless ``name`` is an op type; imports no built-in op."""
    OP_REGISTRY.check(name)


def op_defaults(name: str) -> dict:
    """A copy of the parameters of op type ``name`` with their defaults; imports no built-in op."""
    OP_REGISTRY.check(name)
    return dict(BUILTIN_DEFAULTS[name] if name in BUILTIN_DEFAULTS else get_op(name).defaults)


def list_ops() -> list[str]:
    """Names of all registered temporal op types."""
    return OP_REGISTRY.names()


def describe_ops() -> list[dict[str, Any]]:
    """``nas ops``: each op type's name, parameters with defaults, source and docstring line."""
    return OP_REGISTRY.describe(defaults=lambda cls: dict(cls.defaults))
