"""Quality: proxies that score an architecture cheaply, and the ground truth they are checked against.

The proxies (``params``, ``flops``, ``gradnorm``, ``distill`` and the zero-cost ones) share one
registry with user proxies (:func:`register_proxy`); the search calls them through
:func:`get_proxy`. ``nas proxy check`` (:mod:`nas.quality.proxy_check`) ranks them against long
training on the tiny world (:mod:`nas.quality.ground_truth`).
"""

from nas.quality.proxies import QualityProxy, describe_proxies, get_proxy, list_proxies, register_proxy

__all__ = ["QualityProxy", "describe_proxies", "get_proxy", "list_proxies", "register_proxy"]
