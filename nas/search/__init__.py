"""Joint latency-memory-quality search over a space (optuna); the proxies it calls live in nas.quality."""

import warnings

from nas.errors import NasWarning
from nas.search.job import search
from nas.search.study import Budgets

__all__ = ["Budgets", "search"]

MOVED = ("QualityProxy", "describe_proxies", "get_proxy", "list_proxies", "register_proxy")  # to nas.quality


def __getattr__(name: str):
    """``from nas.search import register_proxy`` (and the other proxy names) keeps working for one release."""
    if name in MOVED:
        import nas.quality

        warnings.warn(f"nas.search.{name} is deprecated; use nas.quality.{name}", NasWarning, stacklevel=2)
        return getattr(nas.quality, name)
    raise AttributeError(f"module 'nas.search' has no attribute {name!r}")
