"""Optuna storage from a URL: in-memory, SQLite/PostgreSQL (RDB URLs) or a JournalFile."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
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
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in practice
                return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
        except Exception as exc:  # sqlalchemy raises many types for bad URLs and unreachable servers
            if not lost_schema_race(exc):
                raise NasError(f"--storage {url}: cannot open ({str(exc).splitlines()[0]})") from None
            if attempt == SCHEMA_RACE_RETRIES:
                raise NasError(f"--storage {url}: cannot open (another process keeps creating its schema)") from None
            time.sleep(0.2 * (attempt + 1))


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
