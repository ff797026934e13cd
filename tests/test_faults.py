"""Faults (issue 6.5): a server killed under load, a database failing in the middle of a write, a full disk.

What must hold through each: every rotation a client saw acknowledged still works and no older token does; a
failed write answers ``503`` with ``Retry-After`` and leaves nothing half-written (the whole transaction or
nothing); a full disk gives clean answers, no corruption, and the same process serves again once there is room.
A locked database and a PostgreSQL that stops are covered in tests/test_ops.py and tests/test_postgres_faults.py.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from sessionward import prepared, sqlite
from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.config import load_settings
from sessionward.context import Context
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.tables import refresh_tokens
from tests.conftest import API, FIREFOX_LINUX, PASSWORD, Users, refresh
from tests.live import LiveServer
from tests.test_ops import assert_unavailable, row_counts
from tests.test_rotation import OTHER_IP, client_from

# --------------------------------------------------------------------------- SIGKILL under load


@dataclass
class Chain:
    """Every refresh token one client was handed, in order, and the access token of the last answer."""

    session_id: str
    tokens: list[str]
    access: str
    answers: int = 0


async def _refresh_until_killed(client: httpx.AsyncClient, chain: Chain) -> None:
    for _ in range(100_000):  # bounded; ends when the server is killed
        try:
            response = await refresh(client, chain.tokens[-1], chain.session_id)
        except httpx.TransportError:
            return
        assert response.status_code == 200, response.text
        chain.tokens.append(response.json()["data"]["refresh"]["token"])
        chain.access = response.json()["data"]["access"]["token"]
        chain.answers += 1


@pytest.mark.live
async def test_after_a_sigkill_acknowledged_rotations_work_and_every_older_token_is_reuse(
    tmp_path: Path, database_url: str
) -> None:
    # A grace longer than a restart, so "acknowledged" does not depend on how fast the server comes back.
    env = {"RATE_LIMIT_ENABLED": "false", "REFRESH_TOKEN_REUSE_INTERVAL": "60s"}
    server = LiveServer(tmp_path, database_url=database_url, env=env).start()
    chains: list[Chain] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers={"user-agent": FIREFOX_LINUX}) as client:
            for i in range(9):
                email = f"killed{i}@example.com"
                await client.post(f"{API}/register", json={"email": email, "password": PASSWORD})
                data = (await client.post(f"{API}/login", json={"email": email, "password": PASSWORD})).json()["data"]
                token, access = data["tokens"]["refresh"]["token"], data["tokens"]["access"]["token"]
                chains.append(Chain(data["session"]["id"], [token], access))
            loops = [asyncio.create_task(_refresh_until_killed(client, chain)) for chain in chains]
            for _ in range(600):  # until every client has rotated a few times (30 s at most)
                if min(chain.answers for chain in chains) >= 3:
                    break
                await asyncio.sleep(0.05)
            server.stop(signal.SIGKILL)
            await asyncio.gather(*loops)
        server.start()
        async with httpx.AsyncClient(base_url=server.base_url, headers={"user-agent": FIREFOX_LINUX}) as client:
            newest: dict[str, tuple[str, str]] = {}
            for chain in chains:
                # The last acknowledged token works: it is live, or the parent of a rotation that committed
                # but whose answer was lost (then the grace hands out that same successor).
                first = await refresh(client, chain.tokens[-1], chain.session_id)
                assert first.status_code == 200, first.text
                successor = first.json()["data"]["refresh"]["token"]
                assert successor not in chain.tokens
                second = await refresh(client, successor, chain.session_id)
                assert second.status_code == 200, second.text
                newest[chain.session_id] = (
                    second.json()["data"]["refresh"]["token"],
                    second.json()["data"]["access"]["token"],
                )
            # Nothing else works: any older token is now at least a grandparent of the live one, so presenting it
            # is reuse, whatever the time: 401, and its whole session ends (the newest tokens die too).
            for i, chain in enumerate(chains):
                older = [chain.tokens[-1], chain.tokens[0], chain.tokens[len(chain.tokens) // 2]][i % 3]
                assert (await refresh(client, older, chain.session_id)).status_code == 401
                token, access = newest[chain.session_id]
                assert (await refresh(client, token, chain.session_id)).status_code == 401
                assert (await client.get(f"{API}/me", headers={"authorization": f"Bearer {access}"})).status_code == 401
    finally:
        server.stop()


# --------------------------------------------------------------------------- a write that fails half way


@dataclass
class Fault:
    """Fails the first statement of the service's writer that starts with ``prefix`` (or its commit) the
    way the driver fails when the database goes away, after the statements before it have run."""

    ctx: Context
    prefix: str | tuple[str, ...]
    kill: bool = False
    answer_lost: bool = False
    fired: int = 0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = self.ctx.db.writer.sync_engine
        self.error = self.engine.dialect.loaded_dbapi.OperationalError

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement.split()[0])
        if self.fired == 0 and statement.lstrip().upper().startswith(self.prefix):
            self.fired += 1
            if self.kill:
                _terminate(self.ctx.settings.database_url, conn.connection.driver_connection.get_server_pid())
            else:
                raise self.error("disk I/O error (injected)")

    async def on_asyncpg(self, adapted: Any, sql: str, values: list[Any], *, begin: bool = True) -> Any:
        """PostgreSQL, statements run on asyncpg directly (the hot path): as ``before``; ``answer_lost``: the
        statement runs (and, alone, commits), then its answer is lost with the connection."""
        self.seen.append(sql.split()[0])
        if self.fired == 0 and sql.lstrip().upper().startswith(self.prefix):
            self.fired += 1
            if self.answer_lost:
                await self.real_on_asyncpg(adapted, sql, values, begin=begin)
            if self.kill or self.answer_lost:
                _terminate(self.ctx.settings.database_url, adapted.driver_connection.get_server_pid())
            else:
                raise DBAPIError.instance(sql, values, self.error("disk I/O error (injected)"), adapted.dbapi.Error)
        return await self.real_on_asyncpg(adapted, sql, values, begin=begin)

    def commit(self, dbapi_connection: Any) -> None:
        """The driver's COMMIT fails (after every statement of the transaction has run)."""
        if self.prefix == "COMMIT" and self.fired == 0 and {"INSERT", "UPDATE"} & set(self.seen):
            self.fired += 1
            raise self.error("disk I/O error (injected)")
        self.real_commit(dbapi_connection)

    def traced(self, statement: str) -> None:
        """SQLite, statements run on the driver's connection (the hot path): seen as SQLite starts them."""
        self.current = statement
        self.seen.append(statement.split()[0])

    def progress(self) -> int:
        """SQLite interrupts the running statement (OperationalError, as a failing disk gives) when this says so."""
        if self.prefix != "COMMIT" and self.fired == 0 and self.current.lstrip().upper().startswith(self.prefix):
            self.fired += 1
            return 1
        return 0

    async def begin(self, raw: sqlite3.Connection, timeout_seconds: float) -> None:
        """SQLite: every transaction of the writer (whose connection stays open between them), at its BEGIN;
        from there every statement is seen, whoever runs it."""
        self.current = ""
        raw.set_trace_callback(self.traced)
        raw.set_progress_handler(self.progress, 1)
        self.traced_connections.append(raw)
        await self.real_begin(raw, timeout_seconds)

    def sqlite_commit(self, raw: sqlite3.Connection) -> None:
        """SQLite: the driver's COMMIT fails, as ``commit``."""
        if self.prefix == "COMMIT" and self.fired == 0 and {"INSERT", "UPDATE"} & set(self.seen):
            self.fired += 1
            raise DBAPIError.instance("COMMIT", [], self.error("disk I/O error (injected)"), sqlite3.Error)
        self.real_sqlite_commit(raw)

    def __enter__(self) -> Fault:
        self.traced_connections: list[sqlite3.Connection] = []
        if self.engine.dialect.name == "sqlite":
            self.real_begin, self.real_sqlite_commit = sqlite.begin_immediate, sqlite.commit
            sqlite.begin_immediate, sqlite.commit = self.begin, self.sqlite_commit  # type: ignore[assignment]
        else:
            event.listen(self.engine, "before_cursor_execute", self.before)
            self.real_on_asyncpg = prepared._on_asyncpg
            prepared._on_asyncpg = self.on_asyncpg  # type: ignore[assignment]
            self.real_commit = self.engine.dialect.do_commit
            self.engine.dialect.do_commit = self.commit  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine.dialect.name == "sqlite":
            sqlite.begin_immediate, sqlite.commit = self.real_begin, self.real_sqlite_commit  # type: ignore[assignment]
        else:
            event.remove(self.engine, "before_cursor_execute", self.before)
            prepared._on_asyncpg = self.real_on_asyncpg  # type: ignore[assignment]
            self.engine.dialect.do_commit = self.real_commit  # type: ignore[method-assign]
        for raw in self.traced_connections:
            with suppress(sqlite3.ProgrammingError):  # closed: the writer discards its connection after a fault
                raw.set_trace_callback(None)
                raw.set_progress_handler(None, 1)


def _terminate(database_url: str, pid: int) -> None:
    """PostgreSQL ends the server process of that connection: the database is gone for it, for real."""

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join(10)


async def _live_tokens(ctx: Context, session_id: str) -> list[str]:
    query = select(refresh_tokens.c.token_hash).where(
        refresh_tokens.c.session_id == session_id,
        refresh_tokens.c.rotated_at.is_(None),
        refresh_tokens.c.revoked_at.is_(None),
    )
    async with ctx.db.read() as conn:
        return list((await conn.execute(query)).scalars())


# On PostgreSQL a refresh that wins is one statement (WITH presented ...), which fails whole; one from another
# address (recorded, then rotated) goes the whole way, as every refresh does on SQLite.
ONE_STATEMENT = "WITH PRESENTED"
SUCCESSOR = ("INSERT INTO REFRESH_TOKENS", ONE_STATEMENT)
WHOLE_WAY: dict[str, str | tuple[str, ...]] = {
    "touching the session": "UPDATE SESSIONS SET LAST_ACTIVITY",
    "retiring the presented token": "UPDATE REFRESH_TOKENS",
    "storing the successor": "INSERT INTO REFRESH_TOKENS",
    "committing": "COMMIT",
}
REFRESH_FAULTS: dict[str, dict[str, str | tuple[str, ...]]] = {
    "sqlite": WHOLE_WAY,
    "postgres": {"the one statement": ONE_STATEMENT} | {f"from another address, {k}": v for k, v in WHOLE_WAY.items()},
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "refresh_step" in metafunc.fixturenames:
        metafunc.parametrize("refresh_step", REFRESH_FAULTS[metafunc.config.getoption("--backend")])


async def test_a_database_failing_during_a_rotation_answers_503_and_writes_none_of_it(
    client: httpx.AsyncClient, ctx: Context, users: Users, backend: str, refresh_step: str
) -> None:
    login = await users.signed_in()
    before = await row_counts(ctx)
    async with client_from(ctx, OTHER_IP) as elsewhere:
        caller = elsewhere if refresh_step.startswith("from another address") else client
        with Fault(ctx, REFRESH_FAULTS[backend][refresh_step]) as fault:
            assert_unavailable(await refresh(caller, login.refresh, login.session_id))
    assert fault.fired == 1
    assert await row_counts(ctx) == before
    assert await _live_tokens(ctx, login.session_id) == [hash_token(login.refresh)]  # nothing rotated
    again = await refresh(client, login.refresh, login.session_id)  # the retry is a plain first rotation
    assert again.status_code == 200, again.text
    successor = again.json()["data"]["refresh"]["token"]
    assert await _live_tokens(ctx, login.session_id) == [hash_token(successor)]
    assert (await refresh(client, successor, login.session_id)).status_code == 200


async def test_a_database_connection_killed_during_a_rotation_answers_503_and_writes_none_of_it(
    client: httpx.AsyncClient, ctx: Context, users: Users, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only: a SQLite database has no server process to lose (see the disk-full test)")
    login = await users.signed_in()
    before = await row_counts(ctx)
    with Fault(ctx, SUCCESSOR, kill=True) as fault:
        assert_unavailable(await refresh(client, login.refresh, login.session_id))
    assert fault.fired == 1
    assert await row_counts(ctx) == before
    assert await _live_tokens(ctx, login.session_id) == [hash_token(login.refresh)]
    again = await refresh(client, login.refresh, login.session_id)  # a new connection: the pool recovers
    assert again.status_code == 200, again.text


async def test_a_rotation_committed_whose_answer_was_lost_is_handed_out_again_on_the_retry(
    client: httpx.AsyncClient, ctx: Context, users: Users, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only: SQLite's COMMIT runs in this process, and a failed one keeps nothing")
    login = await users.signed_in()
    with Fault(ctx, ONE_STATEMENT, answer_lost=True) as fault:
        assert_unavailable(await refresh(client, login.refresh, login.session_id))
    assert fault.fired == 1
    (rotated,) = await _live_tokens(ctx, login.session_id)
    assert rotated != hash_token(login.refresh)  # committed, never seen by the client
    again = await refresh(client, login.refresh, login.session_id)  # within the grace interval
    assert again.status_code == 200, again.text
    successor = again.json()["data"]["refresh"]["token"]
    assert hash_token(successor) == rotated
    assert (await refresh(client, successor, login.session_id)).status_code == 200


async def test_a_database_failing_during_a_login_leaves_no_session(
    client: httpx.AsyncClient, ctx: Context, users: Users
) -> None:
    email = await users.register()
    before = await row_counts(ctx)
    for prefix in ("INSERT INTO REFRESH_TOKENS", "INSERT INTO AUDIT_EVENTS", "COMMIT"):
        with Fault(ctx, prefix) as fault:
            assert_unavailable(await client.post(f"{API}/login", json={"email": email, "password": PASSWORD}))
        assert fault.fired == 1, prefix
        assert await row_counts(ctx) == before, prefix
    await users.login(email)


async def test_a_database_failing_during_a_logout_leaves_the_session_whole(
    client: httpx.AsyncClient, ctx: Context, users: Users
) -> None:
    login = await users.signed_in()
    before = await row_counts(ctx)
    for prefix in ("UPDATE REFRESH_TOKENS", "INSERT INTO TOKEN_BLACKLIST", "COMMIT"):
        with Fault(ctx, prefix) as fault:
            assert_unavailable(await client.post(f"{API}/logout", json={}, headers=login.auth))
        assert fault.fired == 1, prefix
        assert await row_counts(ctx) == before, prefix
        assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 200, prefix
    assert (await client.post(f"{API}/logout", json={}, headers=login.auth)).status_code == 200
    assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 401
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 401


# --------------------------------------------------------------------------- a full disk (SQLite)


@pytest.fixture
def small_disk(backend: str) -> Iterator[Path]:
    """A 16 MiB tmpfs of the test's own (room for SQLite's write-ahead log to grow), unmounted at the end."""
    if backend != "sqlite":
        pytest.skip("a full disk under SQLite: runs in the SQLite pass of the suite")
    folder = Path(tempfile.mkdtemp(prefix="sessionward-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        folder.rmdir()
        message = f"cannot mount a small tmpfs for the disk-full test (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def _fill(folder: Path) -> Path:
    """Writes until the disk is full: big blocks first, then smaller ones, down to single bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (256 * 1024, 16 * 1024, 1024, 64, 1):
            for _ in range(100_000):
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@asynccontextmanager
async def _service(database_url: str, data_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Context]]:
    settings = load_settings(
        database_url=database_url, data_dir=data_dir, database_timeout="1s", rate_limit_enabled=False
    )
    ctx = Context.build(settings, clock=FrozenClock())
    transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
        ) as client:
            yield client, ctx
    finally:
        await ctx.close()


def _clean(response: httpx.Response, *ok: int) -> bool:
    """An answer a client can act on: success, or 503 with Retry-After. ``True`` for success."""
    if response.status_code == 503:
        assert_unavailable(response)
        return False
    assert response.status_code in ok, response.text
    return True


async def test_a_full_disk_gives_clean_503s_no_corruption_and_the_same_process_recovers(
    small_disk: Path, migrated_template: Path, tmp_path: Path
) -> None:
    path = small_disk / "sessionward.db"
    shutil.copy(migrated_template, path)
    async with _service(f"sqlite:///{path}", tmp_path / "var") as (client, ctx):
        sessions: dict[str, str] = {}  # session id -> its live refresh token, as the client knows it
        for i in range(3):
            await client.post(f"{API}/register", json={"email": f"full{i}@example.com", "password": PASSWORD})
            data = (
                await client.post(f"{API}/login", json={"email": f"full{i}@example.com", "password": PASSWORD})
            ).json()["data"]
            sessions[data["session"]["id"]] = data["tokens"]["refresh"]["token"]
        filler = _fill(small_disk)

        refused = 0
        for attempt in range(300):  # until the full disk has refused a good number of writes
            session_id = list(sessions)[attempt % len(sessions)]
            rotated = await refresh(client, sessions[session_id], session_id)
            if _clean(rotated, 200):
                sessions[session_id] = rotated.json()["data"]["refresh"]["token"]
            else:
                refused += 1
            email = f"more{attempt}@example.com"
            if not _clean(await client.post(f"{API}/register", json={"email": email, "password": PASSWORD}), 201):
                refused += 1
            if not _clean(
                await client.post(f"{API}/login", json={"email": "full0@example.com", "password": PASSWORD}), 200
            ):
                refused += 1
            if refused >= 30:
                break
        print("DISK_FULL attempts", attempt + 1, "refused", refused)
        assert refused >= 30, "the disk never filled up"
        assert (await client.get("/healthz")).status_code == 200
        assert _integrity(path) == "ok"

        filler.unlink()  # room again: the same process, without a restart
        for session_id, token in sessions.items():
            # Each client's token is live: every refused rotation left it as it was, every accepted one stuck.
            assert await _live_tokens(ctx, session_id) == [hash_token(token)]
            rotated = await refresh(client, token, session_id)
            assert rotated.status_code == 200, rotated.text
        assert (
            await client.post(f"{API}/login", json={"email": "full1@example.com", "password": PASSWORD})
        ).status_code == 200
        registered = await client.post(f"{API}/register", json={"email": "after@example.com", "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        async with ctx.db.read() as conn:
            most = await conn.execute(
                select(func.count())
                .select_from(refresh_tokens)
                .where(refresh_tokens.c.rotated_at.is_(None), refresh_tokens.c.revoked_at.is_(None))
                .group_by(refresh_tokens.c.session_id)
                .order_by(func.count().desc())
                .limit(1)
            )
            assert most.scalar_one() == 1  # never two live tokens in a session
    assert _integrity(path) == "ok"
