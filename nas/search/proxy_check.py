"""Moved to :mod:`nas.quality.proxy_check`; this path keeps working for one release."""

from nas.options import moved_module

moved_module(__name__, "nas.quality.proxy_check")
