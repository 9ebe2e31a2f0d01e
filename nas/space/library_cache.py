"""Facts about diffusers and transformers classes that loading a space needs, kept on disk once found.

Loading a space counts its backbone's parameters (building the diffusers UNet on the meta
device: a bad config fails there) and fills its fixed parts' configs with the constructor
defaults of AutoencoderKL and CLIPTextConfig. Both need torch and diffusers (~3 s to import),
so every ``nas space show`` and ``nas cost`` would pay for those imports, while the answers
depend only on the config and the library's version. Each answer is written to a small JSON file
named after the question, the config and the version, in ``$NAS_CACHE_DIR`` (default:
``$XDG_CACHE_HOME/snapgen-nas``, else ``~/.cache/snapgen-nas``); the next load asks the file and
imports neither. A config answered once was a valid one, so the checks at load stand. A file that
is absent, unreadable or of another question is answered again; deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ENV = "NAS_CACHE_DIR"


def cache_dir() -> Path:
    """``$NAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/snapgen-nas``, else ``~/.cache/snapgen-nas``."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snapgen-nas"


def kept(question: str, package: str, config: str, answer: Callable[[], Any]) -> Any:
    """``answer()`` (JSON-able) for ``question`` about ``config`` (JSON text) under the installed ``package``'s
    version: read from the cache file, else answered and written there."""
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = None
    record = {"question": question, package: version, "config": config}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / question / f"{digest}.json"
    try:
        found = json.loads(path.read_text())
        if {k: found[k] for k in record} == record:
            return found["answer"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = answer()
    _write(path, {**record, "answer": value})
    return value


def _write(path: Path, record: dict[str, Any]) -> None:
    """Whole or not at all (a temporary file renamed over it); a cache that cannot be written is no error."""
    try:
        text = json.dumps(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
    except (OSError, TypeError, ValueError):  # not writable, or an answer JSON cannot hold
        pass
