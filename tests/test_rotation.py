"""POST /api/v1/auth/refresh against the real app and SQLite: API.md rules 1-6."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sessionward.app import create_app
from sessionward.audit.tables import audit_events
from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens
from tests.conftest import API, CHROME_WINDOWS, FIREFOX_LINUX, Users, refresh

GRACE = timedelta(seconds=10)  # REFRESH_TOKEN_REUSE_INTERVAL's default
HOME_IP = "203.0.113.7"  # the conftest client's address
OTHER_IP = "198.51.100.9"


def tokens(response: httpx.Response) -> tuple[str, str, int]:
    """Access token, refresh token and the refresh token's ``expires_in`` of a 200 answer."""
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["access"]["token"], data["refresh"]["token"], data["refresh"]["expires_in"]


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == "fail"


async def rotated(client: httpx.AsyncClient, token: str, session_id: str, **kwargs: Any) -> str:
    return tokens(await refresh(client, token, session_id, **kwargs))[1]


async def signed_in(client: httpx.AsyncClient, access: str) -> bool:
    status = (await client.get(f"{API}/me", headers={"authorization": f"Bearer {access}"})).status_code
    assert status in (200, 401)
    return status == 200


async def chain(ctx: Context, session_id: str) -> list[Any]:
    """The session's refresh tokens, oldest generation first."""
    query = select(refresh_tokens).where(refresh_tokens.c.session_id == session_id).order_by(refresh_tokens.c.id)
    async with ctx.db.read() as conn:
        return list((await conn.execute(query)).all())


async def session_row(ctx: Context, session_id: str) -> Any:
    async with ctx.db.read() as conn:
        return (await conn.execute(select(sessions).where(sessions.c.id == session_id))).one()


async def snapshot(ctx: Context, session_id: str) -> tuple[Any, list[Any]]:
    return await session_row(ctx, session_id), await chain(ctx, session_id)


async def events(ctx: Context, user_id: int, type: str) -> list[Any]:
    query = select(audit_events).where(audit_events.c.user_id == user_id, audit_events.c.type == type)
    async with ctx.db.read() as conn:
        return list((await conn.execute(query)).all())


@asynccontextmanager
async def client_from(ctx: Context, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second client of the same app state, calling from another address."""
    transport = httpx.ASGITransport(app=create_app(ctx), client=(ip, 50001))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
    ) as other:
        yield other


# ---------------------------------------------------------------- rotation chain


async def test_each_refresh_returns_a_new_token_chained_to_its_parent(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()
    seen = [login.refresh]
    for _ in range(6):
        answer = await refresh(client, seen[-1], login.session_id)
        access, token, _ = tokens(answer)
        assert answer.json()["data"]["access"]["expires_in"] == 900
        assert token not in seen
        assert await signed_in(client, access)
        seen.append(token)

    rows = await chain(ctx, login.session_id)
    assert [row.generation for row in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [row.parent_id for row in rows] == [None, *(row.id for row in rows[:-1])]
    assert [row.rotated_at is None for row in rows] == [False] * 6 + [True]
    assert all(row.revoked_at is None for row in rows)


async def test_refresh_tokens_are_stored_only_as_hashes(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)
    stored = repr(await chain(ctx, login.session_id))
    assert login.refresh not in stored
    assert successor not in stored


# ---------------------------------------------------------------- grace (rule 3)


async def test_retry_within_grace_returns_the_same_successor_and_a_fresh_access_token(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    first_access, successor, first_expires_in = tokens(await refresh(client, login.refresh, login.session_id))
    clock.advance(timedelta(seconds=3))

    retry_access, retried, retry_expires_in = tokens(await refresh(client, login.refresh, login.session_id))

    assert retried == successor
    assert retry_access != first_access
    assert await signed_in(client, retry_access)
    assert retry_expires_in == first_expires_in - 3
    assert len(await chain(ctx, login.session_id)) == 2  # no second successor was made


async def test_successor_handed_out_in_grace_rotates_normally(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)
    clock.advance(timedelta(seconds=5))
    assert await rotated(client, login.refresh, login.session_id) == successor

    next_token = await rotated(client, successor, login.session_id)
    assert next_token not in (login.refresh, successor)
    assert await rotated(client, next_token, login.session_id)


async def test_only_the_immediate_parent_has_grace(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    child = await rotated(client, login.refresh, login.session_id)
    grandchild = await rotated(client, child, login.session_id)

    assert_refused(await refresh(client, login.refresh, login.session_id))

    assert_refused(await refresh(client, grandchild, login.session_id))
    assert (await session_row(ctx, login.session_id)).revoked_at is not None
    assert len(await events(ctx, login.user_id, "refresh_token_reused")) == 1


# ---------------------------------------------------------------- reuse detection (rule 4)


async def test_reused_refresh_token_revokes_the_session(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    witness = await users.login(login.email)  # another session of the same user
    new_access, successor, _ = tokens(await refresh(client, login.refresh, login.session_id))
    assert await signed_in(client, login.access)
    assert await signed_in(client, new_access)
    clock.advance(GRACE + timedelta(seconds=1))

    assert_refused(await refresh(client, login.refresh, login.session_id))

    assert_refused(await refresh(client, successor, login.session_id))
    assert not await signed_in(client, login.access)
    assert not await signed_in(client, new_access)
    assert all(row.revoked_at is not None for row in await chain(ctx, login.session_id))
    listed = await client.get(f"{API}/events", headers=witness.auth)
    reused = [event for event in listed.json()["data"]["events"] if event["type"] == "refresh_token_reused"]
    assert [event["session_id"] for event in reused] == [login.session_id]
    assert await signed_in(client, witness.access)
    assert await rotated(client, witness.refresh, witness.session_id)


async def test_reuse_answer_does_not_reveal_why(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    await rotated(client, login.refresh, login.session_id)
    clock.advance(GRACE + timedelta(seconds=1))
    reused = await refresh(client, login.refresh, login.session_id)
    unknown = await refresh(client, "x" * 64, login.session_id)
    assert_refused(reused)
    assert reused.json() == unknown.json()


# ---------------------------------------------------------------- concurrency (rule 5)


async def test_concurrent_refreshes_of_one_token_share_one_successor(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()

    answers = await asyncio.gather(*(refresh(client, login.refresh, login.session_id) for _ in range(16)))

    assert [answer.status_code for answer in answers] == [200] * 16, [answer.text for answer in answers]
    pairs = [tokens(answer) for answer in answers]
    assert len({refresh_token for _, refresh_token, _ in pairs}) == 1
    assert len({access for access, _, _ in pairs}) == 16
    successor = pairs[0][1]
    rows = await chain(ctx, login.session_id)
    assert [row.generation for row in rows] == [1, 2]

    next_token = await rotated(client, successor, login.session_id)
    assert next_token != successor
    assert [row.generation for row in await chain(ctx, login.session_id)] == [1, 2, 3]


async def test_concurrent_refreshes_of_the_successor_still_share_one_successor(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)
    answers = await asyncio.gather(*(refresh(client, successor, login.session_id) for _ in range(16)))
    assert len({tokens(answer)[1] for answer in answers}) == 1
    assert len(await chain(ctx, login.session_id)) == 3


# ---------------------------------------------------------------- binding and invalid tokens (rule 1)


async def test_refresh_token_presented_with_another_session_is_refused_and_harms_neither(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    first = await users.signed_in()
    second = await users.login(first.email)
    clock.advance(timedelta(minutes=1))
    before = [await snapshot(ctx, first.session_id), await snapshot(ctx, second.session_id)]

    assert_refused(await refresh(client, first.refresh, second.session_id))

    assert [await snapshot(ctx, first.session_id), await snapshot(ctx, second.session_id)] == before
    assert await rotated(client, first.refresh, first.session_id)
    assert await rotated(client, second.refresh, second.session_id)


async def test_refresh_token_of_another_user_is_refused(client: httpx.AsyncClient, users: Users) -> None:
    mine = await users.signed_in()
    theirs = await users.signed_in()
    assert_refused(await refresh(client, theirs.refresh, mine.session_id))
    assert await rotated(client, theirs.refresh, theirs.session_id)
    assert await rotated(client, mine.refresh, mine.session_id)


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("A" * 64, id="unknown"),
        pytest.param("%% not a token, just garbage %%", id="garbage"),
    ],
)
async def test_unknown_or_garbage_token_is_refused_without_state_change(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock, presented: str
) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=1))  # a committed refresh would move last_activity
    before = await snapshot(ctx, login.session_id)

    assert_refused(await refresh(client, presented, login.session_id))

    assert await snapshot(ctx, login.session_id) == before
    assert await rotated(client, login.refresh, login.session_id)


async def test_unknown_session_id_is_refused(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    before = await snapshot(ctx, login.session_id)
    assert_refused(await refresh(client, login.refresh, "0" * 64))
    assert await snapshot(ctx, login.session_id) == before


async def test_token_of_a_revoked_session_is_refused(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    other = await users.login(login.email)
    revoked = await client.delete(f"{API}/sessions/{login.session_id}", headers=other.auth)
    assert revoked.status_code == 200, revoked.text
    assert_refused(await refresh(client, login.refresh, login.session_id))


# ---------------------------------------------------------------- rotation off (rule 2)


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": False}])
async def test_without_rotation_the_same_refresh_token_stays_valid(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    accesses = set()
    for _ in range(3):
        access, token, _ = tokens(await refresh(client, login.refresh, login.session_id))
        assert token == login.refresh
        assert await signed_in(client, access)
        accesses.add(access)
        clock.advance(GRACE + timedelta(seconds=1))  # long past any grace: still not reuse
    assert len(accesses) == 3
    assert len(await chain(ctx, login.session_id)) == 1
    assert await events(ctx, login.user_id, "refresh_token_reused") == []


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_rotation": False}])
async def test_without_rotation_an_unknown_token_is_still_refused(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    assert_refused(await refresh(client, "x" * 64, login.session_id))
    tokens(await refresh(client, login.refresh, login.session_id))


async def test_a_grace_retry_whose_sealed_successor_was_tampered_with_is_refused(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    from sqlalchemy import update

    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)
    async with ctx.db.transaction() as tx:
        stmt = update(refresh_tokens).where(refresh_tokens.c.rotated_at.is_not(None))
        await tx.conn.execute(stmt.values(successor_sealed=b"\x00" * 40))
    assert_refused(await refresh(client, login.refresh, login.session_id))
    # Nothing was burnt by the refused retry: the successor still rotates.
    await rotated(client, successor, login.session_id)


# ---------------------------------------------------------------- device fingerprinting (rule 5)


async def test_refresh_from_another_browser_and_os_is_refused_and_burns_nothing(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in(user_agent=FIREFOX_LINUX)
    clock.advance(timedelta(minutes=1))
    before = await snapshot(ctx, login.session_id)

    assert_refused(await refresh(client, login.refresh, login.session_id, headers={"user-agent": CHROME_WINDOWS}))

    assert await snapshot(ctx, login.session_id) == before
    [mismatch] = await events(ctx, login.user_id, "device_mismatch")
    assert mismatch.session_id == login.session_id
    assert mismatch.details["presented"] == {"browser": "Chrome", "os": "Windows"}
    assert await rotated(client, login.refresh, login.session_id, headers={"user-agent": FIREFOX_LINUX})


async def test_in_grace_token_from_another_device_is_refused_but_not_treated_as_reuse(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)

    assert_refused(await refresh(client, login.refresh, login.session_id, headers={"user-agent": CHROME_WINDOWS}))

    assert len(await events(ctx, login.user_id, "device_mismatch")) == 1
    assert await events(ctx, login.user_id, "refresh_token_reused") == []
    assert await rotated(client, login.refresh, login.session_id) == successor


async def test_rotated_token_replayed_after_grace_from_another_device_is_reuse(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    successor = await rotated(client, login.refresh, login.session_id)
    clock.advance(GRACE + timedelta(seconds=1))

    assert_refused(await refresh(client, login.refresh, login.session_id, headers={"user-agent": CHROME_WINDOWS}))

    assert len(await events(ctx, login.user_id, "refresh_token_reused")) == 1
    assert (await session_row(ctx, login.session_id)).revoked_at is not None
    assert_refused(await refresh(client, successor, login.session_id))


@pytest.mark.parametrize("settings_overrides", [{"device_fingerprinting": False}])
async def test_without_fingerprinting_another_browser_may_refresh(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in(user_agent=FIREFOX_LINUX)
    assert await rotated(client, login.refresh, login.session_id, headers={"user-agent": CHROME_WINDOWS})
    assert await events(ctx, login.user_id, "device_mismatch") == []


# ---------------------------------------------------------------- IP validation


async def test_ip_change_on_refresh_is_accepted_and_audited_by_default(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()
    async with client_from(ctx, OTHER_IP) as elsewhere:
        access = tokens(await refresh(elsewhere, login.refresh, login.session_id))[0]

    [changed] = await events(ctx, login.user_id, "ip_changed")
    assert changed.details == {"from": HOME_IP, "to": OTHER_IP}
    assert (await session_row(ctx, login.session_id)).ip_address == OTHER_IP
    listed = await client.get(f"{API}/sessions", headers={"authorization": f"Bearer {access}"})
    assert listed.json()["data"]["current_session"]["ip_address"] == OTHER_IP


@pytest.mark.parametrize("settings_overrides", [{"session_ip_validation": "strict"}])
async def test_strict_ip_validation_refuses_an_ip_change_and_burns_nothing(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=1))
    before = await snapshot(ctx, login.session_id)

    async with client_from(ctx, OTHER_IP) as elsewhere:
        assert_refused(await refresh(elsewhere, login.refresh, login.session_id))

    assert await snapshot(ctx, login.session_id) == before
    assert await rotated(client, login.refresh, login.session_id)


@pytest.mark.parametrize("settings_overrides", [{"session_ip_validation": "false"}])
async def test_ip_validation_off_ignores_an_ip_change(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    async with client_from(ctx, OTHER_IP) as elsewhere:
        assert await rotated(elsewhere, login.refresh, login.session_id)
    assert await events(ctx, login.user_id, "ip_changed") == []
    assert (await session_row(ctx, login.session_id)).ip_address == HOME_IP


# ---------------------------------------------------------------- activity (rule 6) and rate limit


async def test_every_refresh_records_session_activity(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    token = login.refresh
    for seconds in (5, 5, 30):  # far below the coalescing interval of ordinary requests
        clock.advance(timedelta(seconds=seconds))
        token = await rotated(client, token, login.session_id)
        assert (await session_row(ctx, login.session_id)).last_activity == clock.now()


@pytest.mark.parametrize("settings_overrides", [{"refresh_rate_limit": "3/minute"}])
async def test_refresh_is_rate_limited_per_session(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    other = await users.login(login.email)
    token = login.refresh
    for _ in range(3):
        token = await rotated(client, token, login.session_id)

    limited = await refresh(client, token, login.session_id)

    assert limited.status_code == 429, limited.text
    assert int(limited.headers["retry-after"]) >= 1
    assert await rotated(client, other.refresh, other.session_id)
