"""Accounts as API.md describes them: register, login, password change, the event log, erasure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Table, func, select

from sessionward.audit.tables import audit_events
from sessionward.context import Context
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens, token_blacklist
from sessionward.users.service import create as create_user
from sessionward.users.tables import users as users_table
from tests.conftest import API, PASSWORD, Login, Users, dead, me_status, refresh_status, works

NEW_PASSWORD = "a brand new passphrase"
EVENT_FIELDS = {"id", "type", "at", "session_id", "ip_address", "device_info", "details"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Rate limits have their own tests; here they would only get in the way of many sign-ups.
    return {"rate_limit_enabled": False}


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/register", json={"email": email, "password": password})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/login", json={"email": email, "password": password})


async def change_password(client: httpx.AsyncClient, login: Login, current: str, new: str) -> httpx.Response:
    body = {"current_password": current, "new_password": new}
    return await client.post(f"{API}/password", json=body, headers=login.auth)


async def delete_account(client: httpx.AsyncClient, login: Login, password: str) -> httpx.Response:
    return await client.request("DELETE", f"{API}/me", json={"password": password}, headers=login.auth)


async def events(client: httpx.AsyncClient, login: Login, **params: Any) -> httpx.Response:
    return await client.get(f"{API}/events", params=params, headers=login.auth)


async def event_list(client: httpx.AsyncClient, login: Login, **params: Any) -> list[dict[str, Any]]:
    response = await events(client, login, **params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]["events"]
    return found


async def rows_of(ctx: Context, table: Table, user_id: int) -> int:
    async with ctx.db.read() as conn:
        count = select(func.count()).select_from(table).where(table.c.user_id == user_id)
        return int((await conn.execute(count)).scalar_one())


# ---------------------------------------------------------------- register


async def test_register_normalises_the_email_and_answers_the_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/register", json={"email": "  Alice.Smith@Example.COM ", "password": PASSWORD, "name": "Alice"}
    )

    assert response.status_code == 201, response.text
    user = response.json()["data"]["user"]
    assert set(user) == {"id", "email", "name", "role", "email_verified_at", "created_at"}
    assert user["email"] == "alice.smith@example.com"
    assert user["name"] == "Alice"
    assert user["role"] == "user"
    assert user["email_verified_at"] is None
    assert user["created_at"].endswith("Z")
    assert (await login(client, "alice.smith@example.com")).status_code == 200
    assert (await login(client, " ALICE.smith@example.com")).status_code == 200


@pytest.mark.parametrize("again", ["bob@example.com", "BOB@Example.com", "  bob@example.COM  "])
async def test_registering_an_existing_email_in_any_case_is_a_conflict(client: httpx.AsyncClient, again: str) -> None:
    assert (await register(client, "bob@example.com")).status_code == 201

    response = await register(client, again, password="another password")

    assert response.status_code == 409, response.text
    assert response.json()["status"] == "fail"
    assert (await login(client, "bob@example.com")).status_code == 200
    assert (await login(client, "bob@example.com", "another password")).status_code == 401


@pytest.mark.parametrize("password", ["x" * 7, "x" * 129, ""], ids=["7-chars", "129-chars", "empty"])
async def test_register_refuses_a_password_outside_the_policy(client: httpx.AsyncClient, password: str) -> None:
    response = await register(client, "carol@example.com", password)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "fail"
    assert [e["field"] for e in body["errors"]] == ["password"]
    assert (await login(client, "carol@example.com", password)).status_code in (400, 401)
    assert (await register(client, "carol@example.com")).status_code == 201  # nothing was created


@pytest.mark.parametrize("password", ["x" * 8, "x" * 128], ids=["8-chars", "128-chars"])
async def test_register_accepts_a_password_at_the_policy_bounds(client: httpx.AsyncClient, password: str) -> None:
    assert (await register(client, "dave@example.com", password)).status_code == 201
    assert (await login(client, "dave@example.com", password)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_enabled": False, "password_min_length": 12}])
async def test_the_minimum_password_length_is_configurable(client: httpx.AsyncClient) -> None:
    short = await register(client, "erin@example.com", "x" * 11)
    long_enough = await register(client, "erin@example.com", "x" * 12)

    assert short.status_code == 400
    assert short.json()["errors"][0]["field"] == "password"
    assert long_enough.status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_enabled": False, "registration_enabled": False}])
async def test_register_is_forbidden_when_registration_is_disabled(client: httpx.AsyncClient) -> None:
    response = await register(client, "frank@example.com")

    assert response.status_code == 403
    assert response.json()["status"] == "fail"
    assert (await login(client, "frank@example.com")).status_code == 401


async def test_register_refuses_an_invalid_email(client: httpx.AsyncClient) -> None:
    response = await register(client, "not-an-email")

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["email"]


# ---------------------------------------------------------------- login


async def test_login_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()

    wrong_password = await login(client, email, "not the password")
    unknown_email = await login(client, "nobody@example.com")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["status"] == "fail"
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


async def test_login_answers_tokens_and_a_new_session(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()

    first = await users.login(email)
    second = await users.login(email)

    tokens = first.body["tokens"]
    assert tokens["access"]["expires_in"] == 900
    assert tokens["access"]["type"] == "Bearer"
    assert tokens["refresh"]["expires_in"] == 2592000
    assert first.session_id != second.session_id
    assert first.body["session"]["expires_at"].endswith("Z")


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_enabled": False, "require_email_verification": True}])
async def test_login_of_an_unverified_account_is_forbidden_when_verification_is_required(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    await create_user(ctx, email="unverified@example.com", password=PASSWORD, name=None)
    await create_user(ctx, email="verified@example.com", password=PASSWORD, name=None, verified=True)

    unverified = await login(client, "unverified@example.com")
    verified = await login(client, "verified@example.com")
    wrong_password = await login(client, "unverified@example.com", "not the password")

    assert unverified.status_code == 403
    assert unverified.json()["status"] == "fail"
    assert verified.status_code == 200
    assert wrong_password.status_code == 401  # the password is checked before verification is revealed


# ---------------------------------------------------------------- POST /password


async def test_wrong_current_password_is_forbidden_and_changes_nothing(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)

    response = await change_password(client, here, "not the password", NEW_PASSWORD)

    assert response.status_code == 403  # not 401: the token is fine
    assert response.json()["status"] == "fail"
    assert await works(client, here)
    assert await works(client, other)
    assert (await login(client, email)).status_code == 200
    assert (await login(client, email, NEW_PASSWORD)).status_code == 401


async def test_weak_new_password_is_a_validation_error_and_changes_nothing(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)

    response = await change_password(client, here, PASSWORD, "short")

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["new_password"]
    assert await works(client, other)
    assert (await login(client, email)).status_code == 200


async def test_password_change_signs_out_every_other_session(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    others = [await users.login(email), await users.login(email)]
    stranger = await users.signed_in()
    for other in others:
        assert await me_status(client, other) == 200  # warm: their states are cached

    response = await change_password(client, here, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    for other in others:
        assert await dead(client, other)
    assert await works(client, here)
    assert await works(client, stranger)
    assert (await login(client, email)).status_code == 401
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200
    changed = [e for e in await event_list(client, here) if e["type"] == "password_changed"]
    assert len(changed) == 1
    assert changed[0]["session_id"] == here.session_id
    assert changed[0]["details"]["sessions_revoked"] == 2


async def test_password_change_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 401


# ---------------------------------------------------------------- GET /events


async def test_events_are_the_callers_own_newest_first(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    assert (await login(client, email, "not the password")).status_code == 401
    here = await users.login(email)
    other = await users.login(email)
    gone = await users.login(email)
    assert (await client.delete(f"{API}/sessions/{other.session_id}", headers=here.auth)).status_code == 200
    assert (await client.post(f"{API}/logout", json={}, headers=gone.auth)).status_code == 200
    extra = await users.login(email)
    assert (await client.delete(f"{API}/sessions", headers=here.auth)).status_code == 200
    stranger = await users.signed_in()
    assert (await login(client, stranger.email, "not the password")).status_code == 401

    found = await event_list(client, here)

    assert all(set(e) == EVENT_FIELDS for e in found)
    ids = [e["id"] for e in found]
    assert ids == sorted(ids, reverse=True)
    assert all(e["at"].endswith("Z") for e in found)
    types = [e["type"] for e in found]
    assert types[:5] == ["sessions_revoked", "login_succeeded", "logout", "session_revoked", "login_succeeded"]
    assert types.count("login_failed") == 1
    assert types.count("login_succeeded") == 4
    assert {e["session_id"] for e in found if e["type"] == "login_succeeded"} == {
        here.session_id,
        other.session_id,
        gone.session_id,
        extra.session_id,
    }
    assert stranger.session_id not in {e["session_id"] for e in found}
    revoked = next(e for e in found if e["type"] == "session_revoked")
    assert revoked["session_id"] == other.session_id
    assert next(e for e in found if e["type"] == "sessions_revoked")["details"] == {"revoked": 1}
    login_event = next(e for e in found if e["type"] == "login_succeeded")
    assert login_event["ip_address"] == "203.0.113.7"
    assert login_event["device_info"]["browser"] == "Firefox"


async def test_events_paginate_with_limit_and_before(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    for _ in range(4):
        await users.login(email)
    here = await users.login(email)
    everything = await event_list(client, here, limit=100)
    assert len(everything) >= 6  # registered + five logins

    first_page = await event_list(client, here, limit=2)
    second_page = await event_list(client, here, limit=2, before=first_page[-1]["id"])
    rest = await event_list(client, here, limit=100, before=second_page[-1]["id"])

    assert len(first_page) == len(second_page) == 2
    assert [e["id"] for e in first_page + second_page + rest] == [e["id"] for e in everything]


async def test_events_default_to_at_most_a_page(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    for _ in range(25):
        assert (await login(client, email, "not the password")).status_code == 401
    here = await users.login(email)

    found = await event_list(client, here)

    assert 1 <= len(found) <= 100
    assert len(found) < 27  # not everything: a default page, not the whole log


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"before": 0}, {"before": "x"}],
    ids=["limit-0", "limit-101", "limit-not-a-number", "before-0", "before-not-a-number"],
)
async def test_events_refuse_an_out_of_range_query(
    client: httpx.AsyncClient, users: Users, params: dict[str, Any]
) -> None:
    here = await users.signed_in()

    response = await events(client, here, **params)

    assert response.status_code == 400, response.text
    assert response.json()["status"] == "fail"


@pytest.mark.parametrize("limit", [1, 100])
async def test_events_accept_the_limit_bounds(client: httpx.AsyncClient, users: Users, limit: int) -> None:
    here = await users.signed_in()

    found = await event_list(client, here, limit=limit)

    assert 1 <= len(found) <= limit


# ---------------------------------------------------------------- DELETE /me


async def test_deleting_the_account_with_a_wrong_password_is_forbidden(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)

    response = await delete_account(client, here, "not the password")

    assert response.status_code == 403
    assert response.json()["status"] == "fail"
    assert await works(client, here)
    assert (await login(client, email)).status_code == 200


async def test_deleting_the_account_erases_it_and_ends_every_session(
    client: httpx.AsyncClient, ctx: Context, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)
    assert await refresh_status(client, other) == 200  # a rotated token: more rows to erase
    assert await me_status(client, other) == 200  # warm: its state is cached
    await client.post(f"{API}/logout", json={}, headers=(await users.login(email)).auth)  # a blacklisted jti
    stranger = await users.signed_in()
    user_id = here.user_id
    tables = (sessions, refresh_tokens, audit_events, token_blacklist)
    assert all([await rows_of(ctx, table, user_id) > 0 for table in tables])

    response = await delete_account(client, here, PASSWORD)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    assert await dead(client, here)
    assert await dead(client, other)
    assert (await login(client, email)).status_code == 401
    for table in tables:
        assert await rows_of(ctx, table, user_id) == 0, table.name
    async with ctx.db.read() as conn:
        assert (await conn.execute(select(users_table.c.id).where(users_table.c.id == user_id))).first() is None
    assert await works(client, stranger)
    assert await rows_of(ctx, sessions, stranger.user_id) == 1


async def test_a_deleted_email_can_register_again_as_a_new_account(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    assert (await delete_account(client, here, PASSWORD)).status_code == 200

    again = await register(client, email)

    assert again.status_code == 201
    assert again.json()["data"]["user"]["id"] != here.user_id
    assert await me_status(client, here) == 401


async def test_deleting_the_account_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.request("DELETE", f"{API}/me", json={"password": PASSWORD})
    assert response.status_code == 401


async def test_addresses_on_test_domains_register(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/register", json={"email": "bench1@example.test", "password": PASSWORD})
    assert response.status_code == 201, response.text


async def test_an_invalid_email_is_explained_in_one_plain_sentence(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/register", json={"email": "not-an-address", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "email", "message": "Email: Email is not a valid email address"}]
