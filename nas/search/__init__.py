"""Joint latency-memory-quality search over a space (optuna), and quality proxies."""

from nas.search.job import search
from nas.search.proxies import QualityProxy, describe_proxies, get_proxy, list_proxies, register_proxy
from nas.search.study import Budgets

__all__ = ["Budgets", "QualityProxy", "describe_proxies", "get_proxy", "list_proxies", "register_proxy", "search"]
