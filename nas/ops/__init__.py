"""Temporal layer types and their registry (``register_op`` to add your own).

The built-in ops and the ``TemporalOp`` base (torch modules) load on first use, so that the
registry's names, ``OpKey`` and the ops' specs (:mod:`nas.ops.spec`) serve table and space tools
without importing torch.
"""

from __future__ import annotations

import importlib

from nas.ops.key import OpKey
from nas.ops.registry import check_op_name, describe_ops, get_op, list_ops, op_defaults, register_op
from nas.ops.spec import OpCost, op_spec

__all__ = [
    "OpCost",
    "OpKey",
    "TemporalOp",
    "check_op_name",
    "describe_ops",
    "get_op",
    "list_ops",
    "op_defaults",
    "op_spec",
    "register_op",
]


def __getattr__(name: str):
    if name == "TemporalOp":
        return getattr(importlib.import_module("nas.ops.base"), name)
    raise AttributeError(f"module 'nas.ops' has no attribute {name!r}")
