"""Sessions as API.md describes them: the device list, revocation, the per-user cap, logout, admin."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.users.models import Role
from sessionward.users.service import create as create_user
from tests.conftest import API, PASSWORD, Login, Users, dead, me_status, refresh_status, works

ADMIN = "/api/v1/admin"
SESSION_FIELDS = {
    *("id", "device_info", "ip_address", "created_at", "last_activity", "expires_at", "is_current"),
    *("aal", "amr", "auth_time"),  # how it was authenticated (API.md "Stronger sign-in")
}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
MISSING_SESSION = "ab" * 32  # 64 hex characters that name no session


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Rate limits have their own tests; here they would only get in the way of many logins.
    return {"rate_limit_enabled": False}


def bearer(login: Login, **headers: str) -> dict[str, str]:
    return {**login.auth, **headers}


async def device_list(client: httpx.AsyncClient, login: Login, **headers: str) -> dict[str, Any]:
    response = await client.get(f"{API}/sessions", headers=bearer(login, **headers))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def logout(client: httpx.AsyncClient, login: Login, body: Any = None, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{API}/logout", headers=login.auth, json=body, **kwargs)


async def events_of(client: httpx.AsyncClient, login: Login) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/events", params={"limit": 100}, headers=login.auth)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]["events"]
    return events


async def make_admin(ctx: Context, users: Users) -> Login:
    await create_user(ctx, email="admin@example.com", password=PASSWORD, name=None, role=Role.ADMIN)
    return await users.login("admin@example.com")


# ---------------------------------------------------------------- GET /sessions


async def test_device_list_marks_the_current_session_and_orders_others_by_activity(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    email = await users.register()
    first = await users.login(email)
    clock.advance(timedelta(minutes=1))
    second = await users.login(email)
    clock.advance(timedelta(minutes=1))
    third = await users.login(email)
    clock.advance(timedelta(minutes=1))
    assert await refresh_status(client, first) == 200  # first is now the most recently active

    data = await device_list(client, second)

    current = data["current_session"]
    assert current["id"] == second.session_id
    assert current["is_current"] is True
    # By activity (first was refreshed last), not by creation (which would put third first).
    assert [s["id"] for s in data["other_sessions"]] == [first.session_id, third.session_id]
    assert all(s["is_current"] is False for s in data["other_sessions"])


async def test_device_list_entries_have_exactly_the_contract_fields_with_utc_times(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    await users.login(email)

    data = await device_list(client, here)

    listed = [data["current_session"], *data["other_sessions"]]
    assert len(listed) == 2
    for entry in listed:
        assert set(entry) == SESSION_FIELDS
        for name in ("created_at", "last_activity", "expires_at"):
            assert ISO_Z.match(entry[name]), entry[name]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["id"])
        assert entry["ip_address"] == "203.0.113.7"
        assert entry["device_info"]["browser"] == "Firefox"


async def test_device_list_shows_only_active_sessions_of_the_caller(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    ended = await users.login(email)
    kept = await users.login(email)
    stranger = await users.signed_in()
    assert (await logout(client, ended, {})).status_code == 200

    data = await device_list(client, here)

    assert data["current_session"]["id"] == here.session_id
    assert [s["id"] for s in data["other_sessions"]] == [kept.session_id]
    assert stranger.session_id not in {s["id"] for s in data["other_sessions"]}


async def test_session_header_naming_another_session_of_the_caller_makes_it_current(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)

    data = await device_list(client, here, **{"x-session-id": other.session_id})

    assert data["current_session"]["id"] == other.session_id
    assert [s["id"] for s in data["other_sessions"]] == [here.session_id]


@pytest.mark.parametrize("header", ["stranger", "junk", "z" * 200], ids=["another-users-session", "junk", "long-junk"])
async def test_session_header_not_naming_a_session_of_the_caller_is_ignored(
    client: httpx.AsyncClient, users: Users, header: str
) -> None:
    here = await users.signed_in()
    stranger = await users.signed_in()
    value = stranger.session_id if header == "stranger" else header

    data = await device_list(client, here, **{"x-session-id": value})

    assert data["current_session"]["id"] == here.session_id
    assert data["other_sessions"] == []


async def test_device_list_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/sessions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# ---------------------------------------------------------------- DELETE /sessions/{id}


async def test_revoking_one_session_kills_its_refresh_and_access_tokens_at_once(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)
    assert await me_status(client, other) == 200  # warm: its state is now cached

    response = await client.delete(f"{API}/sessions/{other.session_id}", headers=here.auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "message": "Session revoked successfully"}
    assert await dead(client, other)
    assert await works(client, here)
    revoked = [e for e in await events_of(client, here) if e["type"] == "session_revoked"]
    assert [e["session_id"] for e in revoked] == [other.session_id]


async def test_revoking_another_users_session_is_not_found_and_leaves_it_alive(
    client: httpx.AsyncClient, users: Users
) -> None:
    me = await users.signed_in()
    stranger = await users.signed_in()

    response = await client.delete(f"{API}/sessions/{stranger.session_id}", headers=me.auth)

    assert response.status_code == 404
    assert response.json()["status"] == "fail"
    assert await works(client, stranger)


async def test_revoking_an_unknown_session_is_not_found_like_another_users(
    client: httpx.AsyncClient, users: Users
) -> None:
    me = await users.signed_in()
    stranger = await users.signed_in()

    unknown = await client.delete(f"{API}/sessions/{MISSING_SESSION}", headers=me.auth)
    foreign = await client.delete(f"{API}/sessions/{stranger.session_id}", headers=me.auth)

    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()


async def test_revoking_an_already_revoked_session_is_not_found(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)
    url = f"{API}/sessions/{other.session_id}"
    assert (await client.delete(url, headers=here.auth)).status_code == 200

    again = await client.delete(url, headers=here.auth)

    assert again.status_code == 404


@pytest.mark.parametrize(
    "session_id",
    ["abc", "g" * 64, "a" * 63, "a" * 65, "A" * 64 + "z"],
    ids=["short", "not-hex", "63-chars", "65-chars", "junk"],
)
async def test_revoking_a_malformed_session_id_is_a_validation_error(
    client: httpx.AsyncClient, users: Users, session_id: str
) -> None:
    me = await users.signed_in()

    response = await client.delete(f"{API}/sessions/{session_id}", headers=me.auth)

    assert response.status_code == 400, response.text
    assert response.json()["status"] == "fail"
    assert await works(client, me)


async def test_revoking_the_current_session_signs_the_caller_out(client: httpx.AsyncClient, users: Users) -> None:
    me = await users.signed_in()

    response = await client.delete(f"{API}/sessions/{me.session_id}", headers=me.auth)

    assert response.status_code == 200
    assert await dead(client, me)


# ---------------------------------------------------------------- DELETE /sessions


async def test_revoking_other_sessions_keeps_only_the_current_one(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    others = [await users.login(email), await users.login(email)]
    stranger = await users.signed_in()

    response = await client.delete(f"{API}/sessions", headers=here.auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Revoked 2 sessions successfully"
    assert body["data"] == {"revoked": 2}
    for other in others:
        assert await dead(client, other)
    assert await works(client, here)
    assert await works(client, stranger)
    data = await device_list(client, here)
    assert data["other_sessions"] == []
    event = next(e for e in await events_of(client, here) if e["type"] == "sessions_revoked")
    assert event["details"]["revoked"] == 2


async def test_revoking_other_sessions_when_there_are_none_revokes_zero(
    client: httpx.AsyncClient, users: Users
) -> None:
    me = await users.signed_in()

    response = await client.delete(f"{API}/sessions", headers=me.auth)

    assert response.json()["message"] == "Revoked 0 sessions successfully"
    assert response.json()["data"] == {"revoked": 0}
    assert await works(client, me)


# ---------------------------------------------------------------- the session cap

CAP_OF_THREE = {"rate_limit_enabled": False, "max_sessions_per_user": 3}


@pytest.mark.parametrize("settings_overrides", [CAP_OF_THREE])
async def test_login_over_the_cap_evicts_the_least_recently_active_session(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    email = await users.register()
    first = await users.login(email)
    clock.advance(timedelta(minutes=1))
    second = await users.login(email)
    clock.advance(timedelta(minutes=1))
    third = await users.login(email)
    clock.advance(timedelta(minutes=1))
    assert await refresh_status(client, first) == 200  # first is now the most recently active
    clock.advance(timedelta(minutes=1))

    fourth = await users.login(email)

    assert await dead(client, second)  # the least recently active, though not the oldest
    for survivor in (first, third, fourth):
        assert await works(client, survivor)
    evicted = [e for e in await events_of(client, fourth) if e["type"] == "session_evicted"]
    assert [e["session_id"] for e in evicted] == [second.session_id]
    listed = await device_list(client, fourth)
    assert len(listed["other_sessions"]) == 2


@pytest.mark.parametrize("settings_overrides", [CAP_OF_THREE])
async def test_on_an_activity_tie_the_cap_evicts_the_older_session(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    email = await users.register()
    older = await users.login(email)
    clock.advance(timedelta(minutes=1))
    newer = await users.login(email)
    assert await refresh_status(client, older) == 200  # same instant as newer's login: an activity tie
    clock.advance(timedelta(minutes=1))
    await users.login(email)

    await users.login(email)

    assert await dead(client, older)
    assert await works(client, newer)


@pytest.mark.parametrize("settings_overrides", [CAP_OF_THREE])
async def test_logins_up_to_the_cap_evict_nothing(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    logins = [await users.login(email) for _ in range(3)]

    for login in logins:
        assert await works(client, login)
    assert not [e for e in await events_of(client, logins[0]) if e["type"] == "session_evicted"]


# ---------------------------------------------------------------- POST /logout


async def test_logout_with_an_empty_object_ends_the_current_session_only(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)
    assert await me_status(client, here) == 200  # warm the cache first

    response = await logout(client, here, {})

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "message": "Successfully logged out"}
    assert await dead(client, here)
    assert await works(client, other)
    assert "logout" in [e["type"] for e in await events_of(client, other)]


async def test_logout_without_a_body_ends_the_current_session(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)

    response = await client.post(f"{API}/logout", headers=here.auth)

    assert response.status_code == 200, response.text
    assert await dead(client, here)
    assert await works(client, other)


async def test_logout_of_a_named_session_ends_it_and_its_refresh_tokens(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    here = await users.login(email)
    other = await users.login(email)

    response = await logout(client, here, {"session_id": other.session_id})

    assert response.status_code == 200, response.text
    assert await dead(client, other)  # the guide's TODO: its refresh token dies with it
    assert await works(client, here)


async def test_logout_of_another_users_session_is_not_found_and_leaves_it_alive(
    client: httpx.AsyncClient, users: Users
) -> None:
    me = await users.signed_in()
    stranger = await users.signed_in()

    response = await logout(client, me, {"session_id": stranger.session_id})

    assert response.status_code == 404
    assert await works(client, stranger)
    assert await works(client, me)


async def test_logout_everywhere_ends_every_session_of_the_caller_only(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    here = await users.login(email)
    others = [await users.login(email), await users.login(email)]
    stranger = await users.signed_in()

    response = await logout(client, here, {"logout_all": True})

    assert response.status_code == 200, response.text
    for login in (here, *others):
        assert await dead(client, login)
    assert await works(client, stranger)


@pytest.mark.parametrize(
    "body",
    [{"session_id": "abc123456"}, {"logout_all": "yes"}, {"logout_all": 1}, {"session_id": 12345678901}],
    ids=["short-session-id", "logout-all-string", "logout-all-number", "session-id-number"],
)
async def test_logout_with_an_invalid_body_is_a_validation_error_and_ends_nothing(
    client: httpx.AsyncClient, users: Users, body: dict[str, Any]
) -> None:
    me = await users.signed_in()

    response = await logout(client, me, body)

    assert response.status_code == 400, response.text
    assert response.json()["status"] == "fail"
    assert response.json()["errors"]
    assert await works(client, me)


async def test_logout_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/logout", json={})
    assert response.status_code == 401


# ---------------------------------------------------------------- admin


async def test_admin_lists_a_users_active_sessions(client: httpx.AsyncClient, ctx: Context, users: Users) -> None:
    admin = await make_admin(ctx, users)
    email = await users.register()
    first = await users.login(email)
    second = await users.login(email)
    gone = await users.login(email)
    assert (await logout(client, gone, {})).status_code == 200

    response = await client.get(f"{ADMIN}/users/{first.user_id}/sessions", headers=admin.auth)

    assert response.status_code == 200, response.text
    sessions = response.json()["data"]["sessions"]
    assert {s["id"] for s in sessions} == {first.session_id, second.session_id}
    assert all(set(s) == SESSION_FIELDS for s in sessions)


async def test_admin_revoking_a_users_sessions_kills_them(
    client: httpx.AsyncClient, ctx: Context, users: Users
) -> None:
    admin = await make_admin(ctx, users)
    email = await users.register()
    victims = [await users.login(email), await users.login(email)]
    bystander = await users.signed_in()

    response = await client.delete(f"{ADMIN}/users/{victims[0].user_id}/sessions", headers=admin.auth)

    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"revoked": 2}
    for victim in victims:
        assert await dead(client, victim)
    assert await works(client, bystander)
    assert await works(client, admin)
    listed = await client.get(f"{ADMIN}/users/{victims[0].user_id}/sessions", headers=admin.auth)
    assert listed.json()["data"]["sessions"] == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_admin_session_endpoints_refuse_a_non_admin(client: httpx.AsyncClient, users: Users, method: str) -> None:
    me = await users.signed_in()
    victim = await users.signed_in()

    response = await client.request(method, f"{ADMIN}/users/{victim.user_id}/sessions", headers=me.auth)

    assert response.status_code == 403
    assert response.json()["status"] == "fail"
    assert await works(client, victim)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_admin_session_endpoints_require_a_token(client: httpx.AsyncClient, users: Users, method: str) -> None:
    victim = await users.signed_in()

    response = await client.request(method, f"{ADMIN}/users/{victim.user_id}/sessions")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await works(client, victim)


async def test_admin_revoking_a_user_without_sessions_revokes_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users
) -> None:
    admin = await make_admin(ctx, users)
    email = await users.register()
    response = await client.delete(f"{ADMIN}/users/{admin.user_id + 1}/sessions", headers=admin.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"revoked": 0}
    assert email
