"""Temporal layer types and their registry (``register_op`` to add your own)."""

from nas.ops import attention, conv, identity  # noqa: F401  (registers the built-in ops)
from nas.ops.base import OpCost, TemporalOp
from nas.ops.key import OpKey
from nas.ops.registry import get_op, list_ops, register_op

__all__ = ["OpCost", "OpKey", "TemporalOp", "get_op", "list_ops", "register_op"]
