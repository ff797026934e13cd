"""The hot paths' database budget, counted as the database receives it (SQLite's statement trace; SQLAlchemy's
cursor events on PostgreSQL).

A refresh is at most 3 statements in one transaction (PostgreSQL: one statement, its own transaction); an
authenticated request with a warm cache is none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from sessionward import prepared, sqlite
from sessionward.context import Context
from tests.conftest import API, Users, refresh

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0


def _engines(ctx: Context) -> list[Engine]:
    engines = {id(e.sync_engine): e.sync_engine for e in (ctx.db.writer, ctx.db.reader)}
    return list(engines.values())


@contextmanager
def counting(ctx: Context) -> Iterator[Counted]:
    """Every statement the database is sent: SQLite's own trace of each connection (the hot path runs some
    statements on the driver's connection directly), SQLAlchemy's cursor events on PostgreSQL."""
    counted = Counted()

    def seen(statement: str) -> None:  # transactions are counted by their begin event, on either backend
        if not statement.lstrip().upper().startswith(_CONTROL):
            counted.statements.append(statement)

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen(statement)

    def on_begin(_conn: Any) -> None:
        counted.transactions += 1

    traced: list[sqlite3.Connection] = []

    def trace(raw: sqlite3.Connection) -> None:
        raw.set_trace_callback(seen)
        traced.append(raw)

    def on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:  # a reader, for each read
        trace(dbapi_conn.driver_connection._conn)

    begin_immediate = sqlite.begin_immediate

    async def on_sqlite_begin(raw: sqlite3.Connection, timeout_seconds: float) -> None:
        counted.transactions += 1  # the writer, whose connection stays open between transactions
        trace(raw)
        await begin_immediate(raw, timeout_seconds)

    postgres = [("before_cursor_execute", on_execute), ("begin", on_begin)]
    listeners = [("checkout", on_checkout)] if ctx.db.is_sqlite else postgres
    on_asyncpg = prepared._on_asyncpg

    async def hot(adapted: Any, sql: str, values: list[Any], *, begin: bool = True) -> Any:  # PostgreSQL, on asyncpg
        seen(sql)
        if not begin:  # a statement that is a transaction of its own
            counted.transactions += 1
        return await on_asyncpg(adapted, sql, values, begin=begin)

    engines = _engines(ctx)
    for engine in engines:
        for name, listener in listeners:
            event.listen(engine, name, listener)
    prepared._on_asyncpg = hot  # type: ignore[assignment]
    sqlite.begin_immediate = on_sqlite_begin  # type: ignore[assignment]
    try:
        yield counted
    finally:
        prepared._on_asyncpg = on_asyncpg  # type: ignore[assignment]
        sqlite.begin_immediate = begin_immediate  # type: ignore[assignment]
        for engine in engines:
            for name, listener in listeners:
                event.remove(engine, name, listener)
        for raw in traced:
            raw.set_trace_callback(None)


async def test_a_refresh_is_three_statements_in_one_transaction(
    ctx: Context, client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    token = login.refresh
    for _ in range(3):  # the first rotation and later ones alike
        with counting(ctx) as counted:
            response = await refresh(client, token, login.session_id)
        assert response.status_code == 200, response.text
        token = response.json()["data"]["refresh"]["token"]
        assert len(counted.statements) == (3 if ctx.db.is_sqlite else 1), counted.statements
        assert counted.transactions == 1


async def test_a_retry_within_grace_stays_in_one_transaction(
    ctx: Context, client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200
    with counting(ctx) as counted:
        response = await refresh(client, login.refresh, login.session_id)
    assert response.status_code == 200
    if ctx.db.is_sqlite:
        assert counted.transactions == 1
        assert len(counted.statements) <= 4, counted.statements  # the lost compare-and-set, then the successor's row
    else:  # the one statement that changes nothing (the token is not live), then the whole way in a transaction
        assert counted.transactions == 2
        assert len(counted.statements) <= 4, counted.statements


async def test_an_authenticated_request_with_a_warm_cache_reads_nothing(
    ctx: Context, client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 200
    with counting(ctx) as counted:
        for _ in range(20):
            assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 200
    assert counted.statements == []
    assert counted.transactions == 0


async def test_the_count_sees_a_cold_cache(ctx: Context, client: httpx.AsyncClient, users: Users) -> None:
    """The counter is live: the first request of a session not yet cached reads its state."""
    login = await users.signed_in()
    with counting(ctx) as counted:
        assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 200
    assert counted.statements
