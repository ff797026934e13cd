"""The cleanup job (``sessionward.jobs.cleanup``) and its in-process schedule, on the frozen clock.

Rows are kept ``TOKEN_RETENTION`` past their end (audit events ``AUDIT_RETENTION`` past their time):
each test puts one row just inside and one just outside that boundary.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Table, func, select

from sessionward.app import create_app
from sessionward.audit.tables import audit_events
from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.jobs import scheduler
from sessionward.jobs.cleanup import cleanup
from sessionward.sessions.tables import sessions
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.tables import refresh_tokens, token_blacklist
from sessionward.users.tables import users as users_table
from tests.conftest import API, FIREFOX_LINUX, Login, Users, refresh

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
TABLES: dict[str, Table] = {
    "users": users_table,
    "sessions": sessions,
    "refresh_tokens": refresh_tokens,
    "token_blacklist": token_blacklist,
    "audit_events": audit_events,
}
NOTHING = {
    "refresh_tokens": 0,
    "sessions": 0,
    "token_blacklist": 0,
    "audit_events": 0,
    "mail_tokens": 0,
    "mfa_challenges": 0,
    "webauthn_challenges": 0,
    "outbox": 0,
    "sealed_successors_wiped": 0,
}


async def row_counts(ctx: Context) -> dict[str, int]:
    async with ctx.db.read() as conn:
        return {
            name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for name, table in TABLES.items()
        }


async def session_ids(ctx: Context) -> set[str]:
    async with ctx.db.read() as conn:
        return set((await conn.execute(select(sessions.c.id))).scalars())


async def token_hashes(ctx: Context, session_id: str | None = None) -> set[str]:
    query = select(refresh_tokens.c.token_hash)
    if session_id is not None:
        query = query.where(refresh_tokens.c.session_id == session_id)
    async with ctx.db.read() as conn:
        return set((await conn.execute(query)).scalars())


async def event_types(ctx: Context) -> list[str]:
    async with ctx.db.read() as conn:
        return list((await conn.execute(select(audit_events.c.type).order_by(audit_events.c.id))).scalars())


def expected(**counts: int) -> dict[str, int]:
    return {**NOTHING, **counts}


def access_exp(token: str) -> datetime:
    claims = jwt.decode(token, options={"verify_signature": False})
    return datetime.fromtimestamp(claims["exp"], UTC)


def set_clock(clock: FrozenClock, instant: datetime) -> None:
    clock.advance(instant - clock.now())


# --------------------------------------------------------------------------- refresh tokens


class TestExpiredRefreshTokens:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"refresh_token_expires_in": "1h"}

    async def test_tokens_expired_longer_than_retention_ago_are_deleted_younger_ones_kept(
        self, ctx: Context, clock: FrozenClock, users: Users
    ) -> None:
        old = await users.signed_in()
        clock.advance(timedelta(hours=1) + DAY - SECOND)  # old token expired 1 day - 1 s ago
        new = await users.signed_in()
        assert await cleanup(ctx) == NOTHING
        assert await token_hashes(ctx) == {hash_token(old.refresh), hash_token(new.refresh)}

        clock.advance(2 * SECOND)  # now 1 day + 1 s ago
        assert await cleanup(ctx) == expected(refresh_tokens=1)
        assert await token_hashes(ctx) == {hash_token(new.refresh)}
        assert await session_ids(ctx) == {old.session_id, new.session_id}  # sessions have their own rules


# --------------------------------------------------------------------------- sessions


async def test_sessions_revoked_longer_than_retention_ago_go_with_their_tokens(
    ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
) -> None:
    ended = await users.signed_in()
    kept = await users.signed_in()
    assert (await client.post(f"{API}/logout", json={}, headers=ended.auth)).status_code == 200

    clock.advance(DAY - SECOND)
    assert await cleanup(ctx) == expected(token_blacklist=1)  # the logged-out access token has long expired
    assert await session_ids(ctx) == {ended.session_id, kept.session_id}

    clock.advance(2 * SECOND)
    assert await cleanup(ctx) == expected(sessions=1)
    assert await session_ids(ctx) == {kept.session_id}
    assert await token_hashes(ctx, ended.session_id) == set()
    assert await token_hashes(ctx, kept.session_id) == {hash_token(kept.refresh)}
    assert (await refresh(client, kept.refresh, kept.session_id)).status_code == 200
    assert (await refresh(client, ended.refresh, ended.session_id)).status_code == 401


class TestExpiredSessions:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"session_expires_in": "1h"}

    async def test_sessions_expired_longer_than_retention_ago_are_deleted(
        self, ctx: Context, clock: FrozenClock, users: Users
    ) -> None:
        old = await users.signed_in()
        clock.advance(timedelta(hours=1) + DAY - SECOND)
        new = await users.signed_in()
        assert await cleanup(ctx) == NOTHING

        clock.advance(2 * SECOND)
        # The old token ends with its session (never past it), so it goes in the refresh token pass.
        assert await cleanup(ctx) == expected(sessions=1, refresh_tokens=1)
        assert await session_ids(ctx) == {new.session_id}
        assert await token_hashes(ctx) == {hash_token(new.refresh)}
        assert old.session_id not in await session_ids(ctx)


class TestIdleSessions:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"session_idle_timeout": "1h"}

    async def test_sessions_idle_longer_than_timeout_plus_retention_are_deleted_with_their_tokens(
        self, ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
    ) -> None:
        idle = await users.signed_in()
        busy = await users.signed_in()
        for _ in range(26):  # busy keeps refreshing well within the idle timeout
            clock.advance(timedelta(minutes=59))
            rotated = await refresh(client, busy.refresh, busy.session_id)
            assert rotated.status_code == 200, rotated.text
            busy.refresh = rotated.json()["data"]["refresh"]["token"]
        # idle was last active 25 h 34 min ago: dead for 24 h 34 min, longer than the 1 day retention.
        removed = _cleaned("sessions")
        counts = await cleanup(ctx)
        assert counts["sessions"] == 1
        assert _cleaned("sessions") == removed + 1  # /metrics: cleanup rows
        assert await session_ids(ctx) == {busy.session_id}
        assert await token_hashes(ctx, idle.session_id) == set()  # its live (unexpired) token went with it
        assert hash_token(busy.refresh) in await token_hashes(ctx, busy.session_id)
        assert (await refresh(client, busy.refresh, busy.session_id)).status_code == 200

    async def test_a_session_idle_less_than_timeout_plus_retention_is_kept(
        self, ctx: Context, clock: FrozenClock, users: Users
    ) -> None:
        idle = await users.signed_in()
        clock.advance(timedelta(hours=1) + DAY - SECOND)
        assert await cleanup(ctx) == NOTHING
        assert await session_ids(ctx) == {idle.session_id}


# --------------------------------------------------------------------------- the access-token blacklist


async def test_blacklist_entries_go_once_the_access_token_has_expired(
    ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
) -> None:
    login = await users.signed_in()
    assert (await client.post(f"{API}/logout", json={}, headers=login.auth)).status_code == 200
    exp = access_exp(login.access)

    set_clock(clock, exp - SECOND)
    assert (await cleanup(ctx))["token_blacklist"] == 0
    set_clock(clock, exp + 2 * SECOND)
    assert (await cleanup(ctx))["token_blacklist"] == 1
    assert (await row_counts(ctx))["token_blacklist"] == 0


async def fresh_process(ctx: Context, clock: FrozenClock) -> Context:
    """Another worker on the same database: nothing cached in memory."""
    return Context.build(ctx.settings, clock=clock)


async def test_a_revoked_access_token_stays_revoked_through_cleanup_within_the_exp_leeway(
    ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
) -> None:
    """Verification accepts ``exp`` with up to 1 s leeway; the blacklist entry must outlive that."""
    login = await users.signed_in()
    revoked = await client.post(
        f"{API}/revoke",
        content=f"token={login.access}&token_type_hint=access_token",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert revoked.status_code == 200
    set_clock(clock, access_exp(login.access) + timedelta(milliseconds=500))
    await cleanup(ctx)

    other = await fresh_process(ctx, clock)
    try:
        transport = httpx.ASGITransport(app=create_app(other), client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
        ) as elsewhere:
            assert (await elsewhere.get(f"{API}/me", headers=login.auth)).status_code == 401
    finally:
        await other.close()


# --------------------------------------------------------------------------- audit events


class TestAuditRetention:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"audit_retention": "2d"}

    async def test_events_older_than_audit_retention_are_deleted_younger_kept(
        self, ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
    ) -> None:
        email = await users.register()
        await users.login(email)
        clock.advance(2 * DAY - SECOND)
        assert (await client.post(f"{API}/login", json={"email": email, "password": "wrong"})).status_code == 401
        assert await cleanup(ctx) == NOTHING
        assert await event_types(ctx) == ["user_registered", "login_succeeded", "login_failed"]

        clock.advance(2 * SECOND)
        assert await cleanup(ctx) == expected(audit_events=2)
        assert await event_types(ctx) == ["login_failed"]


# --------------------------------------------------------------------------- batches


class TestBatches:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cleanup_batch_size": 2, "refresh_token_expires_in": "1h", "audit_retention": "1d"}

    async def test_small_batches_still_delete_everything_and_count_exactly(
        self, ctx: Context, clock: FrozenClock, users: Users
    ) -> None:
        email = await users.register()
        for _ in range(5):
            await users.login(email)
        clock.advance(timedelta(hours=1) + DAY + SECOND)
        progress: list[tuple[str, int]] = []

        counts = await cleanup(ctx, progress=lambda table, done: progress.append((table, done)))

        assert counts == expected(refresh_tokens=5, audit_events=6)
        assert [done for table, done in progress if table == "refresh_tokens"] == [2, 4, 5]
        assert [done for table, done in progress if table == "audit_events"] == [2, 4, 6, 6]
        remaining = await row_counts(ctx)
        assert (remaining["refresh_tokens"], remaining["audit_events"], remaining["sessions"]) == (0, 0, 5)


# --------------------------------------------------------------------------- rotation state


async def sealed_count(ctx: Context) -> int:
    query = select(func.count()).select_from(refresh_tokens).where(refresh_tokens.c.successor_sealed.is_not(None))
    async with ctx.db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def rotate(client: httpx.AsyncClient, login: Login) -> str:
    response = await refresh(client, login.refresh, login.session_id)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["refresh"]["token"])


async def test_cleanup_right_after_a_rotation_keeps_the_grace_retry_working(
    ctx: Context, client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    successor = await rotate(client, login)
    assert await sealed_count(ctx) == 1

    assert await cleanup(ctx) == NOTHING
    assert await sealed_count(ctx) == 1
    retry = await refresh(client, login.refresh, login.session_id)
    assert retry.status_code == 200, retry.text
    assert retry.json()["data"]["refresh"]["token"] == successor


async def test_sealed_successors_older_than_the_reuse_interval_are_wiped_and_a_late_retry_is_reuse(
    ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
) -> None:
    login = await users.signed_in()
    successor = await rotate(client, login)
    clock.advance(ctx.settings.refresh_token_reuse_interval + SECOND)

    assert await cleanup(ctx) == expected(sealed_successors_wiped=1)
    assert await sealed_count(ctx) == 0
    assert (await cleanup(ctx))["sealed_successors_wiped"] == 0

    late = await refresh(client, login.refresh, login.session_id)
    assert late.status_code == 401
    assert (await refresh(client, successor, login.session_id)).status_code == 401  # the session died
    assert "refresh_token_reused" in await event_types(ctx)


async def test_reuse_of_a_rotated_unexpired_token_is_still_detected_after_cleanup(
    ctx: Context, client: httpx.AsyncClient, clock: FrozenClock, users: Users
) -> None:
    login = await users.signed_in()
    successor = await rotate(client, login)
    clock.advance(timedelta(hours=2))
    counts = await cleanup(ctx)
    assert counts["refresh_tokens"] == counts["sessions"] == 0
    assert hash_token(login.refresh) in await token_hashes(ctx, login.session_id)

    assert (await refresh(client, login.refresh, login.session_id)).status_code == 401
    assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 401
    assert (await refresh(client, successor, login.session_id)).status_code == 401
    assert (await event_types(ctx)).count("refresh_token_reused") == 1


async def test_cleanup_of_an_empty_database_reports_zero_everywhere(ctx: Context) -> None:
    assert await cleanup(ctx) == NOTHING


async def test_cleanup_never_touches_users(ctx: Context, clock: FrozenClock, users: Users) -> None:
    await users.signed_in()
    clock.advance(400 * DAY)
    await cleanup(ctx)
    counts = await row_counts(ctx)
    assert counts["users"] == 1
    assert counts["sessions"] == counts["refresh_tokens"] == 0


# --------------------------------------------------------------------------- the schedule


class FakeAsyncio:
    """Stands in for ``asyncio`` inside the scheduler: sleeps return at once, the third one stops the loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) == 3:
            raise asyncio.CancelledError


class TestSchedule:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cleanup_schedule": "* * * * *", "audit_retention": "1d"}

    async def test_run_schedule_cleans_every_minute_and_survives_a_failed_run(
        self, ctx: Context, clock: FrozenClock, users: Users, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await users.register()
        clock.advance(DAY + SECOND)
        fake = FakeAsyncio()
        runs: list[dict[str, int] | Exception] = []

        async def flaky_cleanup(context: Context) -> dict[str, int]:
            if not runs:
                runs.append(RuntimeError("database went away"))
                raise RuntimeError("database went away")
            counts = await cleanup(context)
            runs.append(counts)
            return counts

        monkeypatch.setattr(scheduler, "asyncio", fake)
        monkeypatch.setattr(scheduler, "cleanup", flaky_cleanup)
        with pytest.raises(asyncio.CancelledError):
            await scheduler.run_schedule(ctx)

        assert len(runs) == 2
        assert isinstance(runs[0], RuntimeError)
        assert runs[1] == expected(audit_events=1)
        assert 0 <= fake.delays[0] <= 60
        assert 59 <= fake.delays[1] - fake.delays[0] <= 61  # the next minute, not the same one again


def _cleaned(table: str) -> float:
    return REGISTRY.get_sample_value("sessionward_cleanup_rows_total", {"table": table}) or 0.0
