"""SQLite under asyncio: the write lock is waited for without holding the event loop, checkpoints run in a thread."""

from __future__ import annotations

import asyncio
import fcntl
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


async def insert(db: Database) -> None:
    async with db.write() as conn:
        await conn.exec_driver_sql("INSERT INTO t VALUES (randomblob(10))")


async def raw_writer(db: Database) -> sqlite3.Connection:
    async with db.write() as conn:
        raw: sqlite3.Connection = (await conn.get_raw_connection()).driver_connection._conn
        return raw


async def test_the_writer_connection_stays_open_between_transactions(db: Database) -> None:
    first = await raw_writer(db)
    assert await raw_writer(db) is first
    assert not first.in_transaction


async def test_writes_of_one_process_take_turns_and_a_long_wait_is_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'z.db'}", timeout_seconds=0.2)
    order: list[str] = []

    async def write(name: str, hold: float) -> None:
        async with database.write() as conn:
            order.append(f"{name} in")
            await asyncio.sleep(hold)  # a transaction that yields (none of the service's does for long)
            await conn.exec_driver_sql("SELECT 1")
            order.append(f"{name} out")

    await asyncio.gather(write("a", 0.05), write("b", 0))
    assert order == ["a in", "a out", "b in", "b out"]
    results = await asyncio.gather(write("c", 0.5), write("d", 0), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], AppError)
    assert results[1].status == 503
    await database.dispose()


async def test_after_a_fault_the_next_write_opens_a_new_connection(db: Database) -> None:
    before = await raw_writer(db)
    before.set_progress_handler(lambda: 1, 1)  # SQLite interrupts the next statement (OperationalError)
    with pytest.raises(AppError) as refused:
        await insert(db)
    assert refused.value.status == 503
    after = await raw_writer(db)
    assert after is not before
    await insert(db)


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


async def test_a_wal_past_its_limit_restarts_though_readers_keep_a_passive_checkpoint_from_finishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "RESTART_AT_FRAMES", 16)  # 64 KiB
    path = tmp_path / "w.db"
    database = Database(f"sqlite:///{path}", timeout_seconds=2.0)
    checkpoints = sqlite.Checkpoints(str(path))

    async def write(statement: str = "INSERT INTO t VALUES (randomblob(100000))") -> None:
        async with database.write() as conn:
            await conn.exec_driver_sql(statement)

    await write("CREATE TABLE t (x BLOB)")
    sizes = []
    for _ in range(6):
        await write()
        # A reader in a snapshot until a moment after the checkpoint starts, as under steady load; a write
        # while it reads cannot restart the WAL, and the WAL grows by every write.
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        release = threading.Timer(0.1, reader.execute, ["COMMIT"])
        release.start()
        checkpoints.run()
        await write()
        release.join()
        reader.close()
        sizes.append((path.parent / "w.db-wal").stat().st_size)
    checkpoints.close()
    await database.dispose()
    assert max(sizes) < 300_000, sizes  # two writes at most (a write is 25 pages, 100 KiB); not twelve


async def two_writers(path: Path, timeout_seconds: float) -> tuple[Database, Database]:
    first = Database(f"sqlite:///{path}", timeout_seconds=2.0)
    second = Database(f"sqlite:///{path}", timeout_seconds=timeout_seconds)
    async with first.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
    return first, second


def turn_is_taken(path: Path) -> bool:
    with open(f"{path}-turns", "rb") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        return False


async def holding(db: Database, release: asyncio.Event) -> asyncio.Task[None]:
    """A transaction of ``db`` (as of another worker) that stays open until ``release``."""
    inside = asyncio.Event()

    async def hold() -> None:
        async with db.write() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (x'01')")
            inside.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await inside.wait()
    return task


async def test_writers_of_one_file_take_turns_and_the_one_waiting_keeps_serving(tmp_path: Path) -> None:
    first, second = await two_writers(tmp_path / "t.db", timeout_seconds=2.0)
    release = asyncio.Event()
    holder = await holding(first, release)
    assert turn_is_taken(tmp_path / "t.db")
    waiter = asyncio.create_task(insert(second))
    for _ in range(20):  # the event loop goes on (the wait is in a thread): were it held, nothing would end
        await asyncio.sleep(0.005)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), 5)
    assert not turn_is_taken(tmp_path / "t.db")
    await first.dispose()
    await second.dispose()


async def test_a_turn_waited_for_past_the_timeout_is_unavailable_and_the_next_write_takes_it_up(
    tmp_path: Path,
) -> None:
    first, second = await two_writers(tmp_path / "t.db", timeout_seconds=0.1)
    release = asyncio.Event()
    holder = await holding(first, release)
    with pytest.raises(AppError) as refused:
        await insert(second)
    assert refused.value.status == 503
    release.set()
    await holder
    for db in (second, first, second):
        await asyncio.wait_for(insert(db), 5)
    async with first.read() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 4
    assert not turn_is_taken(tmp_path / "t.db")
    await first.dispose()
    await second.dispose()


async def test_a_transaction_that_fails_gives_its_turn_back(tmp_path: Path) -> None:
    first, second = await two_writers(tmp_path / "t.db", timeout_seconds=0.5)

    async def failing() -> None:
        async with first.write() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES (x'01')")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing()
    assert not turn_is_taken(tmp_path / "t.db")
    await insert(second)
    await first.dispose()
    await second.dispose()
