"""Races against a real server with two worker processes on the suite's database (issue 6.4): no 5xx, never two
live successors, never more sessions than the cap, and nothing that was revoked survives.

The database is the judge after each race: it is read directly (live refresh tokens per session, active
sessions per user), and every token handed out during the race is presented again afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sessionward.db import Database
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens
from tests.conftest import API, PASSWORD
from tests.live import LiveServer
from tests.test_multiprocess import SignedIn, client_of, login, me, refresh, signed_in

pytestmark = pytest.mark.live

CAP = 3
CACHE_TTL = 1.0  # SESSION_CACHE_TTL: how long the other worker may still trust its view of a session


@pytest.fixture(scope="module")
def race_database_url(request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the module's server (the suite's backend); each test signs up users of its own."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    path = tmp_path_factory.mktemp("races") / "sessionward.db"
    shutil.copy(request.getfixturevalue("migrated_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, race_database_url: str) -> Iterator[LiveServer]:
    """Started once (two workers take seconds to start), shared by the module's tests."""
    env = {"RATE_LIMIT_ENABLED": "false", "MAX_SESSIONS_PER_USER": str(CAP)}
    folder = tmp_path_factory.mktemp("race-server")
    live = LiveServer(folder, workers=2, database_url=race_database_url, env=env).start()
    yield live
    live.stop()


@pytest.fixture
async def db(race_database_url: str) -> AsyncIterator[Database]:
    database = Database(race_database_url)
    yield database
    await database.dispose()


async def live_refresh_tokens(db: Database, session_id: str) -> int:
    now = datetime.now(UTC)
    query = select(func.count()).where(
        refresh_tokens.c.session_id == session_id,
        refresh_tokens.c.rotated_at.is_(None),
        refresh_tokens.c.revoked_at.is_(None),
        refresh_tokens.c.expires_at > now,
    )
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def active_sessions(db: Database, user_id: int) -> set[str]:
    now = datetime.now(UTC)
    query = select(sessions.c.id).where(
        sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
    )
    async with db.read() as conn:
        return set((await conn.execute(query)).scalars())


def no_server_error(answers: list[httpx.Response]) -> None:
    assert all(answer.status_code < 500 for answer in answers), [(a.status_code, a.text) for a in answers]


async def test_fifty_parallel_refreshes_of_one_token_share_one_successor(server: LiveServer, db: Database) -> None:
    async with client_of(server) as client:
        user = await signed_in(client, "fifty")
        clients = [client_of(server) for _ in range(50)]  # fifty connections, spread over both workers
        try:
            answers = await asyncio.gather(*(refresh(c, user.refresh, user.session_id) for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        no_server_error(answers)
        assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers if a.status_code != 200]
        successors = {a.json()["data"]["refresh"]["token"] for a in answers}
        assert len(successors) == 1, f"{len(successors)} different successors"
        assert await live_refresh_tokens(db, user.session_id) == 1
        (successor,) = successors
        newest = await refresh(client, successor, user.session_id)
        assert newest.status_code == 200, newest.text
        assert await live_refresh_tokens(db, user.session_id) == 1
        # The first token is now a grandparent: reuse, whatever the time.
        assert (await refresh(client, user.refresh, user.session_id)).status_code == 401
        assert await live_refresh_tokens(db, user.session_id) == 0


async def _race(server: LiveServer, user: SignedIn, ending: Any, count: int = 10) -> list[tuple[str, str]]:
    """``ending`` and ``count`` refreshes of the same token at once, each over its own connection; the
    (refresh, access) tokens anyone was handed."""
    clients = [client_of(server) for _ in range(count + 1)]
    try:
        ended, *answers = await asyncio.gather(
            ending(clients[0]), *(refresh(c, user.refresh, user.session_id) for c in clients[1:])
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    no_server_error([ended, *answers])
    assert ended.status_code == 200, ended.text
    assert {a.status_code for a in answers} <= {200, 401}
    handed = [(user.refresh, user.access)]
    for answer in answers:
        if answer.status_code == 200:
            data = answer.json()["data"]
            handed.append((data["refresh"]["token"], data["access"]["token"]))
    return handed


async def _nothing_survives(
    server: LiveServer, db: Database, raced: list[tuple[SignedIn, list[tuple[str, str]]]], ended_at: float
) -> None:
    async with client_of(server) as client:
        for user, handed in raced:
            assert await live_refresh_tokens(db, user.session_id) == 0
            for token, _ in handed:
                assert (await refresh(client, token, user.session_id)).status_code == 401
        # The worker that did not revoke may trust its cached view for SESSION_CACHE_TTL, no longer.
        await asyncio.sleep(max(0.0, ended_at + CACHE_TTL + 0.1 - asyncio.get_running_loop().time()))
        for _, handed in raced:
            for _, access in handed:
                for _ in range(4):  # over fresh requests, so both workers answer
                    assert await me(client, access) == 401


ENDINGS = ["logout", "logout everywhere", "RFC 7009 revoke", "revoked from another session", "password change"]


@pytest.mark.parametrize("ending", ENDINGS)
async def test_refreshes_racing_the_end_of_their_session_leave_nothing_alive(
    server: LiveServer, db: Database, ending: str
) -> None:
    raced = []
    async with client_of(server) as client:
        for round_ in range(3):
            user = await signed_in(client, f"race-{round_}")
            other = await login(client, user.email)

            def end(c: httpx.AsyncClient, user: SignedIn = user, other: SignedIn = other) -> Any:
                if ending == "logout":
                    return c.post(f"{API}/logout", json={}, headers=user.auth)
                if ending == "logout everywhere":
                    return c.post(f"{API}/logout", json={"logout_all": True}, headers=other.auth)
                if ending == "RFC 7009 revoke":
                    return c.post(f"{API}/revoke", data={"token": user.refresh})
                if ending == "revoked from another session":
                    return c.delete(f"{API}/sessions/{user.session_id}", headers=other.auth)
                body = {"current_password": PASSWORD, "new_password": "a brand new password"}
                return c.post(f"{API}/password", json=body, headers=other.auth)

            raced.append((user, await _race(server, user, end)))
    await _nothing_survives(server, db, raced, asyncio.get_running_loop().time())


async def test_logins_racing_at_the_session_cap_never_exceed_it(server: LiveServer, db: Database) -> None:
    async with client_of(server) as client:
        first = await signed_in(client, "cap")
        user_id = (await client.get(f"{API}/me", headers=first.auth)).json()["data"]["user"]["id"]
        for _ in range(CAP - 1):
            await login(client, first.email)
        assert len(await active_sessions(db, user_id)) == CAP
        for burst in (2, 2, 6):
            clients = [client_of(server) for _ in range(burst)]
            try:
                answers = await asyncio.gather(
                    *(c.post(f"{API}/login", json={"email": first.email, "password": PASSWORD}) for c in clients)
                )
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
            no_server_error(answers)
            assert [a.status_code for a in answers] == [200] * burst
            active = await active_sessions(db, user_id)
            assert len(active) == CAP, f"{len(active)} active sessions after {burst} simultaneous logins"
            new = {a.json()["data"]["session"]["id"] for a in answers}
            if burst <= CAP:  # the new sessions are the most recent: none of them is the one to go
                assert new <= active, "a simultaneous login evicted a session that had just been created"
            for answer in answers:
                data = answer.json()["data"]
                token, session_id = data["tokens"]["refresh"]["token"], data["session"]["id"]
                status = (await refresh(client, token, session_id)).status_code
                assert status == (200 if session_id in active else 401), session_id
