"""Lifetimes on a frozen clock: idle and absolute session expiry, refresh and access token expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens
from tests.conftest import API, Users, refresh


def tokens(response: httpx.Response) -> tuple[str, str, int]:
    """Access token, refresh token and the refresh token's ``expires_in`` of a 200 answer."""
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["access"]["token"], data["refresh"]["token"], data["refresh"]["expires_in"]


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


async def signed_in(client: httpx.AsyncClient, access: str) -> bool:
    status = (await client.get(f"{API}/me", headers={"authorization": f"Bearer {access}"})).status_code
    assert status in (200, 401)
    return status == 200


async def snapshot(ctx: Context, session_id: str) -> tuple[Any, list[Any]]:
    """The session row and its refresh tokens, to prove a refused refresh changed nothing."""
    async with ctx.db.read() as conn:
        session = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).one()
        chain = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.session_id == session_id))).all()
    return session, list(chain)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# ---------------------------------------------------------------- idle timeout


@pytest.mark.parametrize("settings_overrides", [{"session_idle_timeout": "1h", "access_token_expires_in": "2h"}])
async def test_idle_session_can_neither_refresh_nor_authenticate(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    assert await signed_in(client, login.access)
    clock.advance(minutes(60) + timedelta(seconds=1))

    assert_refused(await refresh(client, login.refresh, login.session_id))
    assert not await signed_in(client, login.access)  # the access token itself is still within its 2 h


@pytest.mark.parametrize("settings_overrides", [{"session_idle_timeout": "1h", "access_token_expires_in": "3h"}])
async def test_refreshing_keeps_a_session_alive_past_the_idle_timeout(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    assert await signed_in(client, login.access)
    token = login.refresh
    for _ in range(3):  # 150 minutes in all, never 60 idle; only refreshes in between
        clock.advance(minutes(50))
        access, token, _ = tokens(await refresh(client, token, login.session_id))
    assert await signed_in(client, access)
    assert await signed_in(client, login.access)  # every access token of the session lives with it


# ---------------------------------------------------------------- absolute lifetime


@pytest.mark.parametrize("settings_overrides", [{"session_expires_in": "2h", "access_token_expires_in": "1h"}])
async def test_absolute_expiry_ends_the_session_despite_activity(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    token = login.refresh
    for _ in range(2):
        clock.advance(minutes(50))
        access, token, _ = tokens(await refresh(client, token, login.session_id))
    assert await signed_in(client, access)
    clock.advance(minutes(21))  # 121 minutes after login; the last access token has 39 minutes left

    assert_refused(await refresh(client, token, login.session_id))
    assert not await signed_in(client, access)


@pytest.mark.parametrize("settings_overrides", [{"session_expires_in": "2h"}])
async def test_refresh_token_never_outlives_its_session(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    assert login.body["tokens"]["refresh"]["expires_in"] == 2 * 3600
    clock.advance(minutes(30))

    expires_in = tokens(await refresh(client, login.refresh, login.session_id))[2]

    assert expires_in == 90 * 60  # capped at the session's remaining life, not the 30 d default
    session, chain = await snapshot(ctx, login.session_id)
    assert max(row.expires_at for row in chain) == session.expires_at


# ---------------------------------------------------------------- refresh token lifetime


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_expires_in": "1h"}])
async def test_each_rotation_starts_a_fresh_refresh_lifetime(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    assert login.body["tokens"]["refresh"]["expires_in"] == 3600
    token = login.refresh
    for _ in range(3):  # 150 minutes in all: far past the first token's hour
        clock.advance(minutes(50))
        _, token, expires_in = tokens(await refresh(client, token, login.session_id))
        assert expires_in == 3600


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_expires_in": "1h"}])
async def test_expired_refresh_token_is_refused_without_state_change(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    clock.advance(minutes(60))
    before = await snapshot(ctx, login.session_id)

    assert_refused(await refresh(client, login.refresh, login.session_id))

    assert await snapshot(ctx, login.session_id) == before


@pytest.mark.parametrize("settings_overrides", [{"refresh_token_expires_in": "1h"}])
async def test_expired_rotated_token_is_refused_without_revoking_the_session(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    clock.advance(minutes(30))
    successor = tokens(await refresh(client, login.refresh, login.session_id))[1]
    clock.advance(minutes(31))  # the parent's own hour is over: it is merely expired, not reused

    assert_refused(await refresh(client, login.refresh, login.session_id))
    assert tokens(await refresh(client, successor, login.session_id))


# ---------------------------------------------------------------- access token lifetime


async def test_access_token_expires_after_its_lifetime_with_at_most_one_second_leeway(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    claims = jwt.decode(login.access, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert login.body["tokens"]["access"]["expires_in"] == 900

    clock.advance(datetime.fromtimestamp(claims["exp"], UTC) - clock.now())
    assert await signed_in(client, login.access)

    clock.advance(timedelta(seconds=2))
    assert not await signed_in(client, login.access)
    _, _, expires_in = tokens(await refresh(client, login.refresh, login.session_id))  # the session lives on
    assert expires_in > 0


@pytest.mark.parametrize("settings_overrides", [{"access_token_expires_in": "10s"}])
async def test_access_token_lifetime_follows_the_setting(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    assert login.body["tokens"]["access"]["expires_in"] == 10
    clock.advance(timedelta(seconds=9))
    assert await signed_in(client, login.access)
    clock.advance(timedelta(seconds=3))
    assert not await signed_in(client, login.access)
