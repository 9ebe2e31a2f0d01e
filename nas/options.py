"""``KEY=VALUE`` options, as ``--proxy-option``, ``--reference-option`` and ``nas train --set`` take them.

One parser for all of them, so that the same text means the same value everywhere: each VALUE is
read as a YAML scalar (``40`` -> int, ``1e-3`` -> the string YAML makes of it, ``null`` -> None),
and the consumer coerces it to the type it declares.
"""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from nas.errors import NasError


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
