"""SQLite under asyncio: the write lock is waited for without holding the event loop, checkpoints run in a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sessionward import sqlite
from sessionward.db import Database
from sessionward.errors import AppError


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}", timeout_seconds=2.0)
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
    yield database
    await database.dispose()


def hold_write_lock(path: Path, seconds: float) -> threading.Event:
    """Another connection (as another process would) holds the write lock for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return taken


async def test_a_write_waits_for_another_writer_while_the_event_loop_goes_on(db: Database, tmp_path: Path) -> None:
    hold_write_lock(tmp_path / "x.db", 0.4)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    async with db.write() as conn:
        await conn.exec_driver_sql("INSERT INTO t VALUES (x'01')")
    waited = time.monotonic() - started
    ticker.cancel()
    assert waited >= 0.3
    assert ticks >= 10, f"the event loop ran {ticks} times in {waited:.2f} s: it was held while waiting"


async def test_a_write_lock_held_past_the_timeout_is_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'y.db'}", timeout_seconds=0.2)
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
    hold_write_lock(tmp_path / "y.db", 0.6)
    with pytest.raises(AppError) as refused:
        async with database.write() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (x'01')")
    assert refused.value.status == 503
    await database.dispose()


async def test_checkpoints_run_every_few_hundred_writes_off_the_event_loop(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY_WRITES", 3)
    main_file = tmp_path / "x.db"
    before = main_file.stat().st_size
    threads: list[str] = []
    run = sqlite.Checkpoints.run
    monkeypatch.setattr(
        sqlite.Checkpoints, "run", lambda self: (threads.append(threading.current_thread().name), run(self))
    )
    for _ in range(2):  # with the CREATE: 3 writes
        async with db.write() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (randomblob(200000))")
    await asyncio.sleep(0.2)
    assert threads, "no checkpoint ran"
    assert all(name.startswith("sqlite-checkpoint") for name in threads), threads
    assert main_file.stat().st_size >= before + 400_000  # the pages left the WAL for the database file
