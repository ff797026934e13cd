"""An app's own backend: service keys (scoped, stored hashed), trusted sign-in, accounts without a password,
RFC 7662 introspection."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from sessionward.apps import keys
from sessionward.apps.keys import Scope
from sessionward.apps.tables import service_keys
from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.users import service as users_service
from sessionward.users.models import Role
from tests.conftest import API, CHROME_WINDOWS, PASSWORD, Users

ADMIN = "/api/v1/admin"
EVERY = list(Scope)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def a_key(ctx: Context, *scopes: Scope) -> str:
    key, _ = await keys.create(ctx, name="shop backend", scopes=list(scopes))
    return key


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(ctx: Context) -> None:
    key, record = await keys.create(ctx, name="shop", scopes=[Scope.SESSIONS_ISSUE, Scope.SESSIONS_ISSUE])
    assert key.startswith("swk_")
    assert len(key) >= 4 + 43
    assert record["scopes"] == ["sessions:issue"]
    async with ctx.db.read() as conn:
        stored = (await conn.execute(select(service_keys))).one()
    assert key not in str(tuple(stored))
    assert len(stored.key_hash) == 64


async def test_trusted_sign_in_makes_a_session_like_a_login_and_names_the_key(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    email = await users.register()
    user_id = (await users.login(email)).user_id
    key = await a_key(ctx, Scope.SESSIONS_ISSUE)
    body = {"user_agent": CHROME_WINDOWS, "ip": "198.51.100.9"}
    response = await client.post(f"{ADMIN}/users/{user_id}/sessions", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["user"]["email"] == email
    assert data["session"]["device_info"]["browser"] == "Chrome"
    access = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
    assert (await client.get(f"{API}/me", headers=access)).status_code == 200
    refreshed = await client.post(
        f"{API}/refresh",
        json={"refresh_token": data["tokens"]["refresh"]["token"], "session_id": data["session"]["id"]},
        headers={"user-agent": CHROME_WINDOWS},
    )
    assert refreshed.status_code == 200
    events = (await client.get(f"{API}/events", headers=access)).json()["data"]["events"]
    issued = next(event for event in events if event["type"] == "session_issued")
    assert issued["details"]["key"] == "shop backend"
    assert issued["ip_address"] == "198.51.100.9"


async def test_trusted_sign_in_keeps_the_session_cap(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    first = await users.signed_in()
    key = await a_key(ctx, Scope.SESSIONS_ISSUE)
    for _ in range(5):
        clock.advance(timedelta(seconds=1))
        response = await client.post(f"{ADMIN}/users/{first.user_id}/sessions", json={}, headers=bearer(key))
        assert response.status_code == 200
    assert (await client.get(f"{API}/me", headers=first.auth)).status_code == 401  # evicted: least recently active


async def test_accounts_without_a_password_sign_in_only_as_their_app_says(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    key = await a_key(ctx, Scope.USERS_WRITE, Scope.SESSIONS_ISSUE)
    body = {"email": "Owned@Example.com", "name": "Owned", "email_verified": True}
    created = await client.post(f"{ADMIN}/users", json=body, headers=bearer(key))
    assert created.status_code == 201, created.text
    user = created.json()["data"]["user"]
    assert user["email"] == "owned@example.com"
    assert user["email_verified_at"] is not None
    assert (await client.post(f"{ADMIN}/users", json=body, headers=bearer(key))).status_code == 409
    for password in ("", PASSWORD, "sessionward dummy password for unknown accounts"):
        login = await client.post(f"{API}/login", json={"email": "owned@example.com", "password": password})
        assert login.status_code in (400, 401), login.text
    issued = await client.post(f"{ADMIN}/users/{user['id']}/sessions", json={}, headers=bearer(key))
    assert issued.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/1/sessions", {"ip": "not an address"}),
        ("/users/1/sessions", {"user_agent": "x", "extra": 1}),
        ("/users", {"email": "x@example.com", "name": "a\r\nb"}),
        ("/users", {"email": "x@example.com", "role": "root"}),
    ],
)
async def test_bad_bodies_are_400_and_change_nothing(
    client: httpx.AsyncClient, ctx: Context, path: str, body: dict[str, object]
) -> None:
    key = await a_key(ctx, *EVERY)
    response = await client.post(f"{ADMIN}{path}", json=body, headers=bearer(key))
    assert response.status_code == 400, response.text
    async with ctx.db.read() as conn:
        assert await users_service.find(conn, email="x@example.com") is None


async def test_a_wrong_scope_is_403_a_revoked_or_unknown_key_401_and_a_key_in_the_query_string_counts_for_nothing(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    login = await users.signed_in()
    path = f"{ADMIN}/users/{login.user_id}/sessions"
    reader = await a_key(ctx, Scope.SESSIONS_READ)
    wrong = await client.post(path, json={}, headers=bearer(reader))
    assert wrong.status_code == 403
    assert "sessions:issue" in wrong.json()["message"]
    issuer, record = await keys.create(ctx, name="gone", scopes=[Scope.SESSIONS_ISSUE])
    assert (await client.post(path, json={}, headers=bearer(issuer))).status_code == 200
    assert await keys.revoke(ctx, record["id"])
    assert not await keys.revoke(ctx, record["id"])
    revoked = await client.post(path, json={}, headers=bearer(issuer))
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith("Bearer")
    assert (await client.post(path, json={}, headers=bearer("swk_" + "A" * 43))).status_code == 401
    in_query = await client.post(f"{path}?access_token={issuer}&key={issuer}", json={})
    assert in_query.status_code == 401
    assert (await client.post(path, json={}, headers=login.auth)).status_code == 403  # a user, not an admin


async def test_an_administrator_may_act_without_a_key(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    admin_email = "admin@example.com"
    await users_service.create(ctx, email=admin_email, password=PASSWORD, name=None, role=Role.ADMIN)
    admin_login = await users.login(admin_email)
    created = await client.post(f"{ADMIN}/users", json={"email": "made@example.com"}, headers=admin_login.auth)
    assert created.status_code == 201
    assert created.json()["data"]["user"]["role"] == Role.USER


async def test_introspection_says_what_a_token_is_while_it_would_be_accepted(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    key = await a_key(ctx, Scope.TOKENS_INTROSPECT)

    async def introspect(token: str, hint: str | None = None) -> dict[str, object]:
        form = {"token": token} | ({"token_type_hint": hint} if hint else {})
        response = await client.post(f"{API}/introspect", data=form, headers=bearer(key))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        answer: dict[str, object] = response.json()
        return answer

    access = await introspect(login.access)
    assert access["active"] is True
    assert access["sub"] == str(login.user_id)
    assert access["sid"] == login.session_id
    assert access["token_type"] == "access_token"
    assert access["aal"] == "aal1"
    refresh = await introspect(login.refresh, "refresh_token")
    assert (refresh["active"], refresh["token_type"], refresh["sid"]) == (True, "refresh_token", login.session_id)
    assert await introspect("not a token at all") == {"active": False}
    assert await introspect(login.refresh, "access_token") == refresh  # the hint only orders the tries

    rotated = await client.post(f"{API}/refresh", json={"refresh_token": login.refresh, "session_id": login.session_id})
    assert (await introspect(login.refresh))["active"] is False  # replaced
    new_refresh = rotated.json()["data"]["refresh"]["token"]
    assert (await introspect(new_refresh))["active"] is True
    await client.post(f"{API}/logout", json={}, headers=login.auth)
    assert await introspect(login.access) == {"active": False}
    assert await introspect(new_refresh) == {"active": False}
    other = await users.login(login.email)
    clock.advance(timedelta(minutes=16))
    assert await introspect(other.access) == {"active": False}  # expired


async def test_introspection_needs_its_scope_and_a_form(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    issuer = await a_key(ctx, Scope.SESSIONS_ISSUE)
    form = {"token": login.access}
    assert (await client.post(f"{API}/introspect", data=form, headers=bearer(issuer))).status_code == 403
    assert (await client.post(f"{API}/introspect", data=form)).status_code == 401
    introspector = await a_key(ctx, Scope.TOKENS_INTROSPECT)
    as_json = await client.post(f"{API}/introspect", json=form, headers=bearer(introspector))
    assert as_json.status_code == 415
    empty = await client.post(f"{API}/introspect", data={"token": ""}, headers=bearer(introspector))
    assert empty.status_code == 400
