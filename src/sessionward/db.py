"""Engines, connections and the translation of database faults into 503s."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import aiosqlite
from sqlalchemy import DateTime, MetaData, Row, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_

from sessionward.errors import unavailable

Record: TypeAlias = Row[*tuple[Any, ...]]
"""A result row of any shape (attribute access by column name)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; ``timestamptz`` on PostgreSQL, a sortable UTC string on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def async_url(url: str) -> str:
    """``sqlite:///x`` and ``postgresql://`` as the async drivers want them."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")


class _InlineSqlite(aiosqlite.Connection):
    """aiosqlite without its thread: each call runs at once on the event loop's thread.

    An indexed statement on a local file takes microseconds; handing each one to a thread and back cost
    more than the statement itself (and queued behind the GIL under load). Locks are not waited for here:
    see ``_sqlite_begin``.
    """

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _inline_sqlite(path: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    async def connect() -> aiosqlite.Connection:
        # Transactions are ours to begin (see _sqlite_begin): the driver's implicit BEGIN is off.
        return await _InlineSqlite(lambda: sqlite3.connect(path, isolation_level=None), iter_chunk_size=64)

    return connect


def _sqlite_pragmas(busy_ms: int) -> Callable[[DBAPIConnection, ConnectionPoolEntry], None]:
    def connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={busy_ms}", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return connect


def _sqlite_begin(timeout_seconds: float) -> Callable[[Any], None]:
    """Take the write lock at BEGIN, so a transaction never fails half way on a lock upgrade.

    The lock is waited for here, not in SQLite's busy handler: that one sleeps on the event loop's thread,
    longer each time (1, 2, 5, 10 ... 100 ms), while a process that is not asleep takes the lock again and
    again. Here the wait is short polls on the event loop, which goes on serving meanwhile.
    """

    def begin(conn: Any) -> None:
        raw: sqlite3.Connection = conn.connection.driver_connection._conn
        deadline = time.monotonic() + timeout_seconds
        delay = 0.0002
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise unavailable() from exc
            await_(asyncio.sleep(delay))
            delay = min(delay * 2, 0.002)

    return begin


@dataclass
class Transaction:
    """A connection in a transaction, and what to do once it has committed (e.g. update caches)."""

    conn: AsyncConnection
    after_commit: list[Callable[[], None]] = field(default_factory=list)


_FAULTS = (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError)


# PostgreSQL SQLSTATEs that mean "try again later": connection (08), resources (53), operator
# intervention and shutdown (57), lock time-out (55P03), serialization failure and deadlock (40).
_TRANSIENT_SQLSTATES = ("08", "53", "57", "55P03", "40")


def _transient(exc: sa_exc.DBAPIError) -> bool:
    if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return isinstance(code, str) and code.startswith(_TRANSIENT_SQLSTATES)


def _reraise_fault(exc: Exception) -> None:
    """A lost, locked or unreachable database is a 503; anything else (a bug, a constraint) is not."""
    if isinstance(exc, sa_exc.DBAPIError) and not _transient(exc):
        raise exc
    raise unavailable() from exc


class Database:
    """A writer for transactions and a reader for single statements; faults become ``unavailable``."""

    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self._prepare_sqlite_file()
            # One writer connection per process: SQLite has one writer anyway, and queuing here is
            # cheaper than spinning on the busy timeout.
            connect = _inline_sqlite(make_url(self.url).database or ":memory:")
            self.writer = create_async_engine(
                self.url, async_creator=connect, pool_size=1, max_overflow=0, pool_timeout=timeout_seconds
            )
            self.reader = create_async_engine(
                self.url, async_creator=connect, pool_size=4, max_overflow=0, pool_timeout=timeout_seconds
            )
            # The writer waits for the lock in _sqlite_begin; a reader (WAL) rarely waits at all.
            event.listen(self.writer.sync_engine, "connect", _sqlite_pragmas(0))
            event.listen(self.reader.sync_engine, "connect", _sqlite_pragmas(int(timeout_seconds * 1000)))
            event.listen(self.writer.sync_engine, "begin", _sqlite_begin(timeout_seconds))
        else:
            # A statement that waits longer than the timeout for a lock fails (and answers 503) rather
            # than holding the request: the same promise as SQLite's busy timeout.
            self.writer = create_async_engine(
                self.url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=timeout_seconds,
                # No pre-ping: it costs a round trip on every checkout. A connection found dead answers
                # one 503 and SQLAlchemy then recycles the whole pool.
                connect_args={
                    "timeout": timeout_seconds,
                    "server_settings": {"lock_timeout": str(int(timeout_seconds * 1000))},
                },
            )
            self.reader = self.writer.execution_options(isolation_level="AUTOCOMMIT")

    def _prepare_sqlite_file(self) -> None:
        database = make_url(self.url).database
        if database and database != ":memory:":
            # Best effort: a folder that cannot be made (a file in the way, no permission) must not stop the
            # process; connecting then fails and is answered as unavailable (503 on /readyz).
            with suppress(OSError):
                Path(database).parent.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            async with self.writer.begin() as conn:
                yield conn
        except _FAULTS as exc:
            _reraise_fault(exc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``write()`` plus callbacks run after a successful commit."""
        async with self.write() as conn:
            tx = Transaction(conn)
            yield tx
        for callback in tx.after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Reads outside a transaction (autocommit): no BEGIN/ROLLBACK round trips."""
        try:
            async with self.reader.connect() as conn:
                yield conn
        except _FAULTS as exc:
            _reraise_fault(exc)

    async def ping(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:  # noqa: BLE001 - readiness is a yes/no question
            return False
        return True

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
