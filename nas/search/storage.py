"""Optuna storage from a URL: in-memory, SQLite/PostgreSQL (RDB URLs) or a JournalFile."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc

from nas.errors import NasError

JOURNAL_PREFIX = "journal:"
SCHEMA_RACE_RETRIES = 5


def open_storage(url: str | None):
    """``None``/``memory`` -> in memory; ``journal:PATH`` -> JournalFile; anything else -> RDB URL."""
    if url in (None, "", "memory"):
        return optuna.storages.InMemoryStorage()
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :].removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(
            str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))
        )
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite:///"):
        _new_sqlite_file(Path(url[len("sqlite:///") :]))
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in practice
                storage = optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
            if url.startswith("sqlite"):
                sqlalchemy.event.listen(storage.engine, "connect", _sync_normal_in_wal)
                storage.engine.dispose()  # the connections opened so far: the next ones take the setting
            return storage
        except Exception as exc:  # sqlalchemy raises many types for bad URLs and unreachable servers
            if not lost_schema_race(exc):
                raise NasError(f"--storage {url}: cannot open ({str(exc).splitlines()[0]})") from None
            if attempt == SCHEMA_RACE_RETRIES:
                raise NasError(f"--storage {url}: cannot open (another process keeps creating its schema)") from None
            time.sleep(0.2 * (attempt + 1))


def _new_sqlite_file(path: Path) -> None:
    """Make the folder, and start a new SQLite database in write-ahead-log mode (an existing file keeps its mode).

    optuna commits each attribute, parameter and state of a trial on its own (~30 commits a trial). In
    SQLite's default rollback-journal mode, with full sync, each commit writes, syncs and deletes a
    journal file: with a cheap proxy that was most of a search's time. In WAL mode with ``synchronous
    = NORMAL`` (:func:`_sync_normal_in_wal`) a commit appends to ``study.db-wal``, synced at
    checkpoints: a tiny search runs ~1.5x faster, and readers (optuna-dashboard, a poll) do not block
    the writer. A killed search loses no committed trial; a power cut can lose the last ones, which
    a re-run runs again. The log is folded into ``study.db`` when the last connection closes: copy a
    study while nothing runs on it. A file system without the shared memory WAL needs answers the
    pragma with the old mode, which stays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass  # optuna opens it next, and names the problem if it cannot use it


def _sync_normal_in_wal(connection, _record) -> None:
    """A connection to a WAL database syncs at checkpoints (SQLite's advice for WAL); any other keeps full sync."""
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def lost_schema_race(exc: Exception) -> bool:
    """Whether opening failed because another process was creating the same fresh database's schema.

    Processes that open one new database at once (``--workers K``, a reader polling a starting search)
    each create its tables and insert its schema version; the losers see a table that already exists,
    a duplicate version row or a locked SQLite file. The schema is (being) made, so opening again works.
    """
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    message = str(exc)
    return isinstance(exc, sqlalchemy.exc.OperationalError) and ("already exists" in message or "locked" in message)


def is_shared(url: str | None) -> bool:
    """Whether several processes can work on one study in this storage."""
    return url not in (None, "", "memory")
