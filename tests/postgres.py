"""PostgreSQL helpers for the tests that stage locks and faults."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TABLES = ("users", "sessions", "refresh_tokens", "token_blacklist", "audit_events")


@contextmanager
def postgres_table_locks(database_url: str) -> Iterator[None]:
    """Another connection holds an exclusive lock on every table until the block ends."""
    locked, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql://", "postgres://", 1))
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            failure.append(exc)
            locked.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    locked.wait(10)
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        release.set()
        thread.join(10)
