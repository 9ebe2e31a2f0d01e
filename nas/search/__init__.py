"""Joint latency-memory-quality search over a space (optuna), and quality proxies."""

from nas.search.job import search
from nas.search.proxies import QualityProxy, get_proxy, list_proxies, register_proxy
from nas.search.study import Budgets
from nas.search import zero_cost  # noqa: F401  (registers synflow, naswot, tsens)

__all__ = ["Budgets", "QualityProxy", "get_proxy", "list_proxies", "register_proxy", "search"]
