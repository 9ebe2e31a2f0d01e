"""One registry mechanism for every plug-in point: temporal ops, quality proxies, profilers.

Like timm's ``register_model`` / ``list_models``, a name written in a config or on the command
line becomes a class without import chains, and users add their own from outside the package.
Every plug-in point follows the same rules:

- ``register`` (a class decorator) files a class under its ``name``. A name already held by a
  different object is refused in one line (re-registering the same object is fine), so a plugin
  can never silently replace a built-in or another plugin.
- Built-ins are declared as ``"module:attribute"`` strings and imported on first ``get``: a
  registry knows its built-in names (``names()``, ``check``) without importing torch.
- Before reporting a name unknown, ``get`` imports the plugins a parent process loaded
  (``nas --plugin``, passed on in ``NAS_PLUGINS``, see :mod:`nas.plugins`) and the registry's
  entry-point group of installed packages; then it raises :class:`UnknownName` listing the
  known names in one line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from nas import plugins
from nas.errors import NasError

T = TypeVar("T")

BUILT_IN = "built-in"


class UnknownName(NasError, KeyError):
    """No class is registered under a name; also a KeyError, which the registries raised before."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RegistrationError(NasError, ValueError):
    """A class cannot be registered: its name is taken or not valid there; also a ValueError, as before."""


class Registry(Generic[T]):
    """Names to classes for one plug-in point.

    ``kind`` names the plug-in point in messages ("temporal op"); ``group`` is the entry-point
    group installed packages list their classes (or modules that register them) under;
    ``builtins`` maps built-in names to ``"module:attribute"``; ``validate(name, obj)`` may refuse
    a name (raising RegistrationError) before it is registered.
    """

    def __init__(
        self, kind: str, group: str, builtins: Mapping[str, str], validate: Callable[[str, Any], None] | None = None
    ):
        self.kind = kind
        self.group = group
        self.builtins = dict(builtins)
        self._validate = validate
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}  # name -> the entry point that registered it
        self._loading: str | None = None  # the entry point being imported
        self._scanned = False  # entry points are imported once: installed packages do not change

    def register(self, obj: T | None = None, *, name: str | None = None) -> Any:
        """File ``obj`` under ``name`` (default: its ``name`` attribute); returns ``obj``, so it decorates.

        ``@registry.register(name="x")`` decorates too. RegistrationError if the name is held by a
        different object: a registered one, or a built-in (even one not imported yet).
        """
        if obj is None:
            return lambda target: self.register(target, name=name)
        name = getattr(obj, "name", "") if name is None else name
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{self.kind} {_path(obj)}: has no name to register under (set its `name`)")
        if self._validate is not None:
            self._validate(name, obj)
        held = self._entries.get(name)
        if name in self.builtins:
            holder = None if _path(obj) == self.builtins[name] else f"{BUILT_IN} {self.builtins[name]}"
        else:
            holder = None if held is None or held is obj else _path(held)
        if holder:
            raise RegistrationError(
                f"{self.kind} {name!r} is already registered by {holder}; register {_path(obj)} under another name"
            )
        if held is None and self._loading:
            self._origins[name] = self._loading
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The class registered as ``name``: a built-in is imported now, a plugin's name is looked for."""
        if name not in self._entries and name in self.builtins:
            module, attribute = self.builtins[name].split(":")
            self.register(getattr(importlib.import_module(module), attribute), name=name)
        self.check(name)
        return self._entries[name]

    def check(self, name: str) -> None:
        """UnknownName (listing the known names) unless ``name`` is known; imports no built-in."""
        if name not in self._entries and name not in self.builtins:
            self.discover()
        if name not in self._entries and name not in self.builtins:
            raise UnknownName(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        """Every name: built-ins, registered ones, inherited plugins' and installed packages'."""
        self.discover()
        return sorted(set(self._entries) | set(self.builtins))

    def discover(self) -> None:
        """Import the parent process's plugins and, once, every entry point of the group (each may register)."""
        plugins.load_inherited()
        if self._scanned:
            return
        for entry_point in entry_points(group=self.group):
            self._loading = f"entry point {entry_point.name} = {entry_point.value}"
            try:
                loaded = entry_point.load()
            except (ImportError, AttributeError) as exc:
                raise NasError(f"{self._loading} ({self.group}): cannot import ({exc})") from None
            else:
                if not isinstance(loaded, ModuleType):  # a class, not a module that registers its classes
                    self.register(loaded, name=getattr(loaded, "name", "") or entry_point.name)
            finally:
                self._loading = None
        self._scanned = True

    def source(self, name: str) -> str:
        """Where ``name`` comes from: built-in, an entry point, a --plugin module or the module that registered it."""
        if name in self.builtins:
            return BUILT_IN
        if name in self._origins:
            return self._origins[name]
        module = self.get(name).__module__
        return f"plugin {module}" if module in plugins.loaded() else f"module {module}"

    def describe(self, **columns: Callable[[T], Any]) -> list[dict[str, Any]]:
        """One row per name (imports every class): name, ``columns`` of the class, source, doc (a line)."""
        rows = []
        for name in self.names():
            obj = self.get(name)
            rows.append(
                {
                    "name": name,
                    **{column: value(obj) for column, value in columns.items()},
                    "source": self.source(name),
                    "doc": _first_line(obj),
                }
            )
        return rows


def _path(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _first_line(cls: Any) -> str:
    """The first line of the class's own docstring (not a base class's), else of its module's."""
    doc = vars(cls).get("__doc__") or getattr(sys.modules.get(cls.__module__), "__doc__", None) or ""
    return next(iter(doc.strip().splitlines()), "")
