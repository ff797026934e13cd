"""Engines, connections and the translation of database faults into 503s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from sessionward import metrics, sqlite
from sessionward.errors import AppError, unavailable

Record: TypeAlias = Any
"""A result row of any shape, with attribute access by column name (SQLAlchemy's ``Row``, or the hot path's
named tuples: ``prepared.Prepared``)."""

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


@dataclass
class Transaction:
    """A connection in a transaction, and what to do once it has committed (e.g. update caches)."""

    conn: AsyncConnection
    after_commit: list[Callable[[], None]] = field(default_factory=list)


_FAULTS = (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError)
_POOL_SIZE = 10  # PostgreSQL connections per process


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


@asynccontextmanager
async def _connected(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection, given back in place. SQLAlchemy's own ``async with`` gives it back from a task of
    its own (so that a cancellation cannot interrupt it): every request then went once more round a busy
    event loop for the close, and the next request once more waiting for the connection it had not yet
    returned. Giving back an idle connection does not wait on anything, and this service's requests are not
    cancelled (uvicorn reports a disconnect instead)."""
    conn = await engine.connect()
    try:
        yield conn
    finally:
        await conn.close()


class Lender:
    """Connections of an engine, kept open between transactions and lent to one transaction at a time.

    Checking a pooled connection out and in again cost about 80 µs a transaction (SQLAlchemy's asyncio layer
    makes two greenlet round trips of it): more than a refresh's three statements take on SQLite. After a fault
    the connection is closed for good, and those kept idle go back to the pool, which replaces any that a lost
    database left stale (as its own disconnect handling does); the next transaction opens a fresh one.
    """

    def __init__(self, engine: AsyncEngine, size: int, timeout_seconds: float) -> None:
        self._engine = engine
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[AsyncConnection] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        if self._slots.locked():  # as the pool does: waiting longer than the timeout is a fault (TimeoutError)
            metrics.DB_WAITS.inc()
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        metrics.DB_IN_USE.inc()
        try:
            conn = self._idle.pop() if self._idle else await self._engine.connect()
            try:
                yield conn
            except Exception as exc:
                if _fault(exc) or conn.invalidated:
                    await _discard(conn)
                    await self.close()
                else:
                    self._idle.append(conn)  # refused by the service's rules: rolled back, still good
                raise
            except BaseException:  # cancelled: what state the connection was left in is unknown
                await _discard(conn)
                raise
            self._idle.append(conn)
        finally:
            metrics.DB_IN_USE.dec()
            self._slots.release()

    async def close(self) -> None:
        """The idle connections back to the pool."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(*_FAULTS):
                await conn.close()


def _fault(exc: Exception) -> bool:
    return isinstance(exc, _FAULTS) or (isinstance(exc, AppError) and exc.status >= 500)


async def _discard(conn: AsyncConnection) -> None:
    with suppress(*_FAULTS):
        await conn.invalidate()
        await conn.close()


class Database:
    """A writer for transactions and a reader for single statements; faults become ``unavailable``."""

    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._checkpoints: sqlite.Checkpoints | None = None
        self._turns: sqlite.Turns | None = None
        if self.is_sqlite:
            self._prepare_sqlite_file()
            # One writer connection per process: SQLite has one writer anyway, and queuing here is
            # cheaper than spinning on the busy timeout.
            path = make_url(self.url).database or ":memory:"
            connect = sqlite.connector(path)
            self.writer = create_async_engine(
                self.url, async_creator=connect, pool_size=1, max_overflow=0, pool_timeout=timeout_seconds
            )
            self.reader = create_async_engine(
                self.url, async_creator=connect, pool_size=4, max_overflow=0, pool_timeout=timeout_seconds
            )
            # The writer waits for the lock in sqlite.begin; a reader (WAL) rarely waits at all.
            event.listen(self.writer.sync_engine, "connect", sqlite.pragmas(busy_ms=0, writer=True))
            busy_ms = int(timeout_seconds * 1000)
            event.listen(self.reader.sync_engine, "connect", sqlite.pragmas(busy_ms=busy_ms, writer=False))
            self._checkpoints = sqlite.Checkpoints(path)
            self._turns = sqlite.Turns(path) if path != ":memory:" else None
        else:
            # A statement that waits longer than the timeout for a lock fails (and answers 503) rather
            # than holding the request: the same promise as SQLite's busy timeout.
            self.writer = create_async_engine(
                self.url,
                pool_size=_POOL_SIZE,
                max_overflow=_POOL_SIZE,
                pool_timeout=timeout_seconds,
                # No pre-ping: it costs a round trip on every checkout. A connection found dead answers
                # one 503 and SQLAlchemy then recycles the whole pool.
                connect_args={
                    "timeout": timeout_seconds,
                    "server_settings": {"lock_timeout": str(int(timeout_seconds * 1000))},
                },
            )
            self.reader = self.writer.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite: one writer connection (one writer at a time anyway); PostgreSQL: the pool's size, its overflow
        # left to the readers.
        self._lender = Lender(self.writer, 1 if self.is_sqlite else _POOL_SIZE, timeout_seconds)
        self._timeout = timeout_seconds

    def _transaction(self, conn: AsyncConnection) -> AbstractAsyncContextManager[Any]:
        return sqlite.transaction(conn, self._timeout, self._turns) if self.is_sqlite else conn.begin()

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
            async with self._lender.connection() as conn, self._transaction(conn):
                yield conn
        except _FAULTS as exc:
            _reraise_fault(exc)
        if self._checkpoints is not None:
            self._checkpoints.wrote()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a connection outside any transaction, for a statement that is a transaction of its own
        (``Prepared.first(alone=True)``): no BEGIN and COMMIT round trips."""
        try:
            async with self._lender.connection() as conn:
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
            async with _connected(self.reader) as conn:
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
        await self._lender.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        if self._turns is not None:
            self._turns.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
