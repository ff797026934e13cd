"""PostgreSQL's plan for the one-statement refresh where the tables have no statistics yet: a new database, until
its first autoanalyze. Every refresh of that time runs the plan made then."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from sessionward.tokens import store
from tests.conftest import new_postgres_database

# The presented token is found by its hash (the unique index) and retired by its id (the primary key).
ALLOWED = {"uq_refresh_tokens_token_hash", "pk_refresh_tokens"}

LONG_CHAIN = """
INSERT INTO users (email, password_hash, role, created_at, updated_at)
     VALUES ('chain@example.test', 'not-a-hash', 'user', now(), now());
INSERT INTO sessions (id, user_id, device_info, ip_address, user_agent, created_at, last_activity, expires_at,
                      auth_time)
     VALUES ('chained', 1, '{}', '127.0.0.1', 'test', now(), now(), now() + interval '30 days', now());
INSERT INTO refresh_tokens (session_id, user_id, token_hash, parent_id, generation, created_at, expires_at,
                            rotated_at)
     SELECT 'chained', 1, md5('t' || g) || md5('u' || g), NULLIF(g - 1, 0), g, now(), now() + interval '30 days',
            CASE WHEN g < 500 THEN now() END
       FROM generate_series(1, 500) g;
"""


@pytest.fixture
def new_database(backend: str) -> Iterator[str]:
    """A database of the test's own, migrated, with autovacuum off for its tables: they keep no statistics."""
    if backend != "postgres":
        pytest.skip("PostgreSQL only: the plan of its one-statement refresh")
    with new_postgres_database("sessionward_plan") as url:
        yield url


@pytest.fixture
async def conn(new_database: str) -> AsyncIterator[Any]:
    import asyncpg

    connection = await asyncpg.connect(new_database.replace("postgresql://", "postgres://", 1))
    try:
        for table in ("users", "sessions", "refresh_tokens"):
            await connection.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await connection.execute(LONG_CHAIN)
        yield connection
    finally:
        await connection.close()


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("Relation Name") == "refresh_tokens" and node["Node Type"] != "ModifyTable":
        yield node
    for child in node.get("Plans", ()):
        yield from _scans(child)


async def test_the_refresh_statement_reads_refresh_tokens_by_hash_and_id_only_before_any_statistics(
    conn: Any,
) -> None:
    sql, names, _binds, _converters = store._REFRESH_IN_ONE._compile(postgresql.asyncpg.dialect())
    await conn.execute(f"PREPARE refresh AS {sql}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")  # the plan every later execution reuses
    nulls = ", ".join("NULL" for _ in names)
    plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE refresh({nulls})"))[0]["Plan"]
    assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'refresh_tokens'") < 0  # none yet
    scans = [(scan["Node Type"], scan.get("Index Name")) for scan in _scans(plan)]
    assert len(scans) == 2, scans
    assert all(kind == "Index Scan" and index in ALLOWED for kind, index in scans), scans
