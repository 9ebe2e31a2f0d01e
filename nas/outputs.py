"""Where a command may write: the paths it derives are claimed before any work, temporary files get fresh names.

A command writes the paths a user names (``-o TABLE.csv``, ``--out DIR``) and paths it derives from
them: a table's sidecar ``TABLE.yaml``, an export's ``NAME.json`` summary and chunk packages, the
files of a run folder, a world's ``OUT.partial`` work folder. A derived path can land on a file the
user never meant to give away: ``nas profile shift.yaml -o shift.csv`` once wrote the table's
sidecar over the space it had just read. So every command passes its derived paths, with its
inputs, to :func:`claim` before it starts, which refuses in one line:

- a derived path (or a named output) that is one of the command's inputs;
- a derived path where a file exists that ``nas`` did not write. Each :class:`Derived` says how to
  recognise ``nas``'s own file there (:func:`yaml_keys`, :func:`json_keys`, :func:`csv_columns`,
  :func:`owner_file`, or the folder's marker file through :func:`ours_if`), so re-running or
  resuming a command over its own outputs goes on as before.

A path the user names is theirs to overwrite (as ``cp`` and ``-o`` do everywhere), unless it is an
input. Temporary files (:func:`replaced`) and backups (:func:`backup_path`) get names that exist
nowhere yet, so they never land on anything.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from nas.errors import NasError

Recognise = Callable[[Path], bool]


@dataclass(frozen=True)
class Derived:
    """A path a command derives, what it holds (for the message) and how to tell nas's own file there."""

    path: Path
    what: str
    ours: Recognise

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))


def claim(
    derived: Iterable[Derived], inputs: Iterable[str | Path | None] = (), named: Iterable[str | Path | None] = ()
) -> None:
    """Refuse (NasError, one line) a derived path that is an input or a file nas did not write, or a named
    output that is an input. Call it before any work: nothing has been written when it refuses."""
    given = [Path(p) for p in inputs if p is not None]
    for path in (Path(p) for p in named if p is not None):
        if any(_same(path, i) for i in given):
            raise NasError(f"{path}: the output is also an input of the command; choose another output path")
    for item in derived:
        if any(_same(item.path, i) for i in given):
            raise NasError(
                f"{item.path}: {item.what} would be written over this input of the command; choose another output path"
            )
        if _occupied(item.path) and not item.ours(item.path):
            raise NasError(
                f"{item.path}: {item.what} would be written over this file, which nas did not write; "
                "move it away or choose another output path"
            )


def _occupied(path: Path) -> bool:
    """Something is there to lose: a file, a link, a folder with anything in it."""
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def files_of(*paths: str | Path | None) -> list[Path]:
    """The inputs behind ``paths``: a file itself, a folder (a model, a run, a kit) and everything under it."""
    found: list[Path] = []
    for path in (Path(p) for p in paths if p is not None):
        found += [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
    return found


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links and relative paths included)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# ---------------------------------------------------------------- recognising nas's own files
def yaml_keys(*keys: str) -> Recognise:
    """A YAML mapping holding every one of ``keys`` (a sidecar: device, backend, provenance; ...)."""

    def ours(path: Path) -> bool:
        data = _read(path, yaml.safe_load, yaml.YAMLError)
        return isinstance(data, dict) and all(k in data for k in keys)

    return ours


def json_keys(*keys: str) -> Recognise:
    """A JSON object holding every one of ``keys`` (a summary, a report, a manifest)."""

    def ours(path: Path) -> bool:
        data = _read(path, json.loads, ValueError)
        return isinstance(data, dict) and all(k in data for k in keys)

    return ours


def csv_columns(*columns: str) -> Recognise:
    """A CSV whose header has every one of ``columns``."""

    def ours(path: Path) -> bool:
        text = _read(path, lambda t: t.splitlines()[:1], ValueError)
        return bool(text) and set(columns) <= set(next(csv.reader(text)))

    return ours


def owner_file(name: str, recognise: Recognise | None = None) -> Recognise:
    """A folder holding the file ``name`` (that ``recognise`` accepts, if given): a work folder's owner mark."""
    return lambda path: path.is_dir() and (path / name).is_file() and (recognise is None or recognise(path / name))


def ours_if(marker: str | Path, recognise: Recognise) -> Recognise:
    """Whatever lies at the path is nas's if ``marker`` (the folder's own record: a summary, a manifest) is."""
    return lambda path: Path(marker).exists() and recognise(Path(marker))


def any_of(*recognisers: Recognise) -> Recognise:
    return lambda path: any(r(path) for r in recognisers)


def is_folder(path: Path) -> bool:
    """A folder at a path where a command writes a folder of its own files (they are claimed one by one)."""
    return path.is_dir()


def sqlite_file(path: Path) -> bool:
    """An SQLite database (an optuna study written by nas search)."""
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"
    return False


def _read(path: Path, parse, errors):
    if not path.is_file():
        return None
    try:
        return parse(path.read_text())
    except (errors, UnicodeDecodeError, OSError):
        return None


# ---------------------------------------------------------------- writing without landing on anything
@contextlib.contextmanager
def replaced(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write; on success it replaces ``path`` (atomically), on
    failure it is removed. Its name exists nowhere yet, so no one's file is overwritten on the way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary new file (mkstemp makes it private)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """``path`` written whole or not at all (through :func:`replaced`)."""
    with replaced(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def backup_path(path: str | Path, suffix: str = ".orig") -> Path:
    """The first of ``NAME.orig``, ``NAME.orig1``, ... that does not exist: a backup never replaces anything."""
    path = Path(path)
    candidate, index = path.with_name(path.name + suffix), 1
    while candidate.exists():
        candidate, index = path.with_name(f"{path.name}{suffix}{index}"), index + 1
    return candidate
