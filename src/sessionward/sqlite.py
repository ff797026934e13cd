"""SQLite under asyncio: statements on the event loop's thread, writers in turns, checkpoints in a thread.

An indexed statement on a local file takes microseconds. aiosqlite hands each one to a thread and back, which
cost more than the statement itself and, under load, queued behind the GIL; so the driver's calls run inline
here. What can take milliseconds is kept off the loop: waiting for another worker's transaction (``Turns``, a
lock file waited on in a thread), for any other writer (polled with short sleeps, see ``begin_immediate``), and
WAL checkpoints, whose writes and fsync run in a thread (``Checkpoints``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiosqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import ConnectionPoolEntry

from sessionward.errors import unavailable
from sessionward.prepared import pooled

# About 1,000 WAL pages (SQLite's own automatic checkpoint) at a few pages per write transaction.
CHECKPOINT_EVERY_WRITES = 250
# A WAL longer than this (64 MiB of 4 KiB pages) is restarted from its beginning, and cut back to this size.
RESTART_AT_FRAMES = 16384


class _InlineConnection(aiosqlite.Connection):
    """aiosqlite's interface, without its thread: each call runs at once."""

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


def connector(path: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """SQLAlchemy's ``async_creator``: transactions are ours to begin (``transaction``), the driver's implicit
    BEGIN is off."""

    async def connect() -> aiosqlite.Connection:
        return await _InlineConnection(lambda: sqlite3.connect(path, isolation_level=None), iter_chunk_size=64)

    return connect


def pragmas(*, busy_ms: int, writer: bool) -> Callable[[DBAPIConnection, ConnectionPoolEntry], None]:
    # The writer leaves checkpoints to ``Checkpoints`` (in a thread), and waits for locks in ``begin_immediate``.
    settings = ["journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={busy_ms}", "foreign_keys=ON"]
    if writer:
        settings += ["wal_autocheckpoint=0", f"journal_size_limit={RESTART_AT_FRAMES * 4096}"]

    def connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in settings:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return connect


class Turns:
    """The writers of one database file take turns through a lock file (``flock``), waited on in a thread.

    Polled, ``BEGIN IMMEDIATE`` found the write lock taken by the other worker about once in twenty refreshes
    under load, and the poll woke 3 ms later on average: the holder, on the same core, had let go long before.
    A thread waiting in ``flock`` is woken when the lock file is let go, and the event loop goes on serving
    meanwhile. Only this module's writers take the lock file; anything else that writes is still waited for by
    ``begin_immediate``. Each process lends its writer to one transaction at a time (``db.Lender``), so one
    ``Turns`` has at most one wait at a time.
    """

    def __init__(self, path: str) -> None:
        self._path = path + "-turns"
        self._fd: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._late: asyncio.Future[None] | None = None  # a wait given up on (timeout), which may yet end in a turn

    async def take(self, timeout_seconds: float) -> None:
        try:
            if self._late is None:
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-turns")
                    self._late = asyncio.get_running_loop().run_in_executor(self._pool, fcntl.flock, fd, fcntl.LOCK_EX)
            late = self._late
            try:
                await asyncio.wait_for(asyncio.shield(late), timeout_seconds)
            finally:
                if late.done():
                    self._late = None
        except TimeoutError:
            raise unavailable() from None  # the wait goes on, and is taken up by the next transaction
        except OSError as exc:  # the lock file could not be opened or locked
            raise unavailable() from exc

    def give(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._fd is not None:
            os.close(self._fd)  # (closing the file lets go of its lock)
            self._fd = None


@asynccontextmanager
async def transaction(conn: AsyncConnection, timeout_seconds: float, turns: Turns | None) -> AsyncIterator[None]:
    """A write transaction on the writer's own sqlite3 connection: BEGIN IMMEDIATE ... COMMIT (or ROLLBACK).

    SQLAlchemy's begin and commit each went through a greenlet, about a fifth of a refresh, all of it under
    the write lock. A statement run through SQLAlchemy inside the block opens only SQLAlchemy's bookkeeping
    (with ``isolation_level=None`` the driver sends no BEGIN of its own), which is closed here as well.
    """
    raw: sqlite3.Connection = (await pooled(conn)).dbapi_connection.driver_connection._conn
    deadline = time.monotonic() + timeout_seconds
    if turns is not None:
        await turns.take(timeout_seconds)
    try:
        await begin_immediate(raw, deadline - time.monotonic())
        try:
            yield
            commit(raw)
        except BaseException:
            # A failed COMMIT may have rolled back already; a broken connection is discarded.
            with suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
            if conn.in_transaction():
                with suppress(SQLAlchemyError):
                    await conn.rollback()
            raise
    finally:
        if turns is not None:
            turns.give()
    if conn.in_transaction():
        await conn.commit()  # (the driver's commit finds no transaction left: nothing is sent)


async def begin_immediate(raw: sqlite3.Connection, timeout_seconds: float) -> None:
    """Take the write lock at BEGIN, so a transaction never fails half way on a lock upgrade.

    The lock is waited for here, not in SQLite's busy handler: that one sleeps on the event loop's thread,
    longer each time (1, 2, 5, 10 ... 100 ms), while a process that is not asleep takes the lock again and
    again. Here the wait is short polls on the event loop, which goes on serving meanwhile.
    """
    deadline = time.monotonic() + timeout_seconds
    delay = 0.0002
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise unavailable() from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.002)


def commit(raw: sqlite3.Connection) -> None:
    """COMMIT; a failure is raised as SQLAlchemy raises the driver's errors (``db`` tells a fault from a bug)."""
    try:
        raw.execute("COMMIT")
    except sqlite3.Error as exc:
        raise DBAPIError.instance("COMMIT", [], exc, sqlite3.Error) from exc


class Checkpoints:
    """WAL checkpoints in a thread, every few hundred writes.

    Run inline by the writer, a checkpoint's page copies and fsync held the event loop for milliseconds.
    A PASSIVE checkpoint never waits for readers or writers; but under writes that never pause it never
    reaches the end of the WAL either, and SQLite restarts the WAL only from a finished checkpoint: the file
    grew by hundreds of MB a minute. So a WAL past ``RESTART_AT_FRAMES`` gets a RESTART checkpoint, which
    holds back new writers (they poll in ``begin_immediate``) for the few pages the PASSIVE one left.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._writes = 0
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._conn: sqlite3.Connection | None = None

    def wrote(self) -> None:
        self._writes += 1
        if self._writes < CHECKPOINT_EVERY_WRITES or (self._running is not None and not self._running.done()):
            return
        self._writes = 0
        self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._running = self._pool.submit(self.run)

    def run(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, timeout=1.0, isolation_level=None, check_same_thread=False)
        # Busy (another process checkpointing, say): the next one catches up.
        with suppress(sqlite3.Error):
            _busy, frames, _copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_AT_FRAMES:
                self._conn.execute("PRAGMA wal_checkpoint(RESTART)")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
