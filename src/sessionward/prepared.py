"""The hot path's statements, compiled once and run on the driver's own connection.

SQLAlchemy spends about 0.1 ms on each execution (cache key, execution context, result object, and on asyncio
two greenlet switches); SQLite itself runs an indexed statement in about 5 µs, and asyncpg sends a statement it
has prepared before in about 30 µs. Here a statement is compiled by SQLAlchemy once, for the dialect in use, and
its parameters and results go through SQLAlchemy's own type conversions; only the execution is the driver's.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase


class Prepared:
    """A hot-path statement. ``returns``: the columns it gives back (a RETURNING, or a SELECT over data-modifying
    CTEs); ``keys``: the columns an INSERT sets."""

    def __init__(
        self,
        statement: UpdateBase | Select[Any],
        returns: Sequence[ColumnElement[Any]] = (),
        *,
        keys: Sequence[str] = (),
    ) -> None:
        self.statement = statement
        self._returns = list(returns)
        self._keys = list(keys) or None
        self._record = namedtuple("Record", [column.key for column in returns])  # type: ignore[misc]
        self._compiled: dict[str, tuple[str, list[str], list[Any], list[Any]]] = {}  # by dialect name

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any], *, alone: bool = False) -> Any:
        """The first row (attributes by column name), or ``None``. ``alone`` (PostgreSQL, a connection outside any
        transaction): the statement is a transaction of its own, with no BEGIN and COMMIT round trips."""
        rows = await self._execute(conn, params, alone=alone)
        if not rows:
            return None
        converters = self._compile(conn.dialect)[3]
        return self._record(*(f(v) if f else v for v, f in zip(rows[0], converters, strict=True)))

    async def run(self, conn: AsyncConnection, params: Mapping[str, Any]) -> None:
        await self._execute(conn, params)

    async def _execute(self, conn: AsyncConnection, params: Mapping[str, Any], *, alone: bool = False) -> Sequence[Any]:
        sql, names, binds, _ = self._compile(conn.dialect)
        values = [bind(params[name]) if bind else params[name] for name, bind in zip(names, binds, strict=True)]
        adapted = (await pooled(conn)).dbapi_connection
        if conn.dialect.name == "sqlite":
            return _on_sqlite(adapted.driver_connection._conn, sql, values)
        try:
            return await _on_asyncpg(adapted, sql, values, begin=not alone)
        except DBAPIError as exc:
            if conn.dialect.is_disconnect(cast(Any, exc.orig), adapted, None):  # as SQLAlchemy: never pooled again
                exc.connection_invalidated = True
                await conn.invalidate(exc.orig)
            raise

    def _compile(self, dialect: Dialect) -> tuple[str, list[str], list[Any], list[Any]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self._keys)
            names = list(compiled.positiontup or ())
            binds = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
            converters = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in self._returns]
            found = self._compiled[dialect.name] = (compiled.string, names, binds, converters)
        return found


async def pooled(conn: AsyncConnection) -> Any:
    """The pooled connection; read in place when it is there (``get_raw_connection`` goes through a greenlet,
    to allow for a reconnect: 10 µs each time)."""
    sync = conn.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        return sync.connection
    return await conn.get_raw_connection()


def _on_sqlite(raw: sqlite3.Connection, sql: str, values: list[Any]) -> list[Any]:
    try:
        return raw.execute(sql, values).fetchall()  # stepped to the end: the statement is done before COMMIT
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it: db.py tells a fault (503) from a bug
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc


async def _on_asyncpg(adapted: Any, sql: str, values: list[Any], *, begin: bool = True) -> Sequence[Any]:
    """On SQLAlchemy's asyncpg adapter, as its cursor does: the transaction begins with the first statement
    (SQLAlchemy's BEGIN is lazy there), asyncpg's statement cache prepares each statement once per connection,
    and a driver error is translated to the DB-API's. Not ``begin``: asyncpg runs the statement as PostgreSQL
    does outside a transaction, in one of its own."""
    dbapi = adapted.dbapi
    try:
        async with adapted._execute_mutex:
            if not begin:
                if adapted._transaction is not None:
                    raise RuntimeError("a statement meant to be alone, in a transaction")
            elif adapted._transaction is None:
                await adapted._start_transaction()
            try:
                return await adapted._connection.fetch(sql, *values)  # type: ignore[no-any-return]
            except Exception as error:
                adapted._handle_exception(error)
                raise
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, values, exc, dbapi.Error) from exc
