"""Hostile and broken requests: every one gets a 4xx in the envelope, nothing is written, nothing leaks.

Also the abuse controls that sit in front of the JSON endpoints: rate limits and the absence of
user enumeration on login.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sessionward.app import create_app
from sessionward.audit.tables import audit_events
from sessionward.context import Context
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens
from sessionward.users.tables import users as users_table
from tests.conftest import API, PASSWORD, Login, Users

TABLES = {"users": users_table, "sessions": sessions, "refresh_tokens": refresh_tokens, "audit_events": audit_events}
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "sqlite3", "SELECT ", "INSERT ", "UPDATE ", "pydantic")


async def row_counts(ctx: Context) -> dict[str, int]:
    async with ctx.db.read() as conn:
        return {
            name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for name, table in TABLES.items()
        }


def assert_fail(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A client error in the envelope of API.md; no stack trace, no SQL, no library internals."""
    assert response.status_code in statuses, (response.status_code, response.text)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "fail"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"status", "message", "errors"}
    for error in body.get("errors", []):
        assert set(error) == {"field", "message"}
        assert isinstance(error["field"], str)
        assert isinstance(error["message"], str)
    for marker in LEAK_MARKERS:
        assert marker not in response.text
    return body


def fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


# --------------------------------------------------------------------------- the JSON endpoints

# (method, path, needs an access token, a valid body)
ENDPOINTS = {
    "register": ("POST", "/register", False, {"email": "new@example.com", "password": PASSWORD}),
    "login": ("POST", "/login", False, {"email": "someone@example.com", "password": PASSWORD}),
    "refresh": ("POST", "/refresh", False, {"refresh_token": "x" * 64, "session_id": "a" * 64}),
    "logout": ("POST", "/logout", True, {"logout_all": True}),
    "password": ("POST", "/password", True, {"current_password": PASSWORD, "new_password": "another password"}),
    "delete_me": ("DELETE", "/me", True, {"password": PASSWORD}),
}

Send = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
async def signed_in(users: Users) -> Login:
    return await users.signed_in()


async def sender(client: httpx.AsyncClient, users: Users, name: str) -> Send:
    """Sends to endpoint ``name``, with the access token of a fresh account when it is protected."""
    method, path, protected, _ = ENDPOINTS[name]
    auth = (await users.signed_in()).auth if protected else {}

    async def send(**kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **auth}
        return await client.request(method, f"{API}{path}", headers=headers, **kwargs)

    return send


JSON_HEADERS = {"content-type": "application/json"}

NOT_OBJECTS = {
    "malformed": b'{"email": "a@example.com", "password": ',
    "trailing_garbage": b'{"password": "x"} {}',
    "list": b"[]",
    "list_of_object": b'[{"password": "correct horse battery"}]',
    "string": b'"correct horse battery"',
    "null": b"null",
    "number": b"42",
    "true": b"true",
    "non_utf8": b'{"password": "\xff\xfe\xfa"}',
    "utf16": '{"password": "correct horse battery"}'.encode("utf-16"),
    "utf16_without_bom": '{"password": "correct horse battery"}'.encode("utf-16-le"),
    "nul_byte": b'{"password": "correct horse\x00battery"}',
    "deeply_nested": b"[" * 20_000 + b"]" * 20_000,
    "huge_number": b'{"password": ' + b"9" * 20_000 + b"}",
}


@pytest.mark.parametrize("name", ENDPOINTS)
async def test_body_that_is_not_a_json_object_is_400_and_changes_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    for case, raw in NOT_OBJECTS.items():
        response = await send(content=raw, headers=JSON_HEADERS)
        assert response.status_code == 400, (case, response.text)
        assert_fail(response, 400)
        assert await row_counts(ctx) == before, case


WRONG_TYPES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "register": [
        ({"email": 12345, "password": PASSWORD}, "email"),
        ({"email": "n@example.com", "password": 123456789}, "password"),
        ({"email": ["n@example.com"], "password": PASSWORD}, "email"),
        ({"email": "n@example.com", "password": PASSWORD, "name": 7}, "name"),
        ({"email": "n@example.com", "password": {"$ne": ""}}, "password"),
        ({"email": "not an email", "password": PASSWORD}, "email"),
        ({"email": "n@example.com", "password": True}, "password"),
    ],
    "login": [
        ({"email": 1, "password": PASSWORD}, "email"),
        ({"email": "user1@example.com", "password": 12345678}, "password"),
        ({"email": "user1@example.com", "password": None}, "password"),
        ({"email": "user1@example.com", "password": {"$gt": ""}}, "password"),
    ],
    "refresh": [
        ({"refresh_token": 1234567890123, "session_id": "a" * 64}, "refresh_token"),
        ({"refresh_token": "x" * 64, "session_id": 10**70}, "session_id"),
        ({"refresh_token": ["x" * 64], "session_id": "a" * 64}, "refresh_token"),
        ({"refresh_token": "short", "session_id": "a" * 64}, "refresh_token"),
        ({"refresh_token": "x" * 513, "session_id": "a" * 64}, "refresh_token"),
    ],
    "logout": [
        ({"logout_all": "true"}, "logout_all"),
        ({"logout_all": 1}, "logout_all"),
        ({"session_id": 1234567890123}, "session_id"),
        ({"session_id": ["a" * 64]}, "session_id"),
    ],
    "password": [
        ({"current_password": 12345678, "new_password": "another password"}, "current_password"),
        ({"current_password": PASSWORD, "new_password": False}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
    ],
    "delete_me": [
        ({"password": 12345678}, "password"),
        ({"password": [PASSWORD]}, "password"),
        ({"password": None}, "password"),
    ],
}


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [(name, body, field) for name, cases in WRONG_TYPES.items() for body, field in cases],
)
async def test_wrong_types_are_400_naming_the_field_and_change_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str, body: dict[str, Any], field: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    response = await send(json=body)
    answer = assert_fail(response, 400)
    assert field in fields(answer), answer
    assert await row_counts(ctx) == before


MISSING = {
    "register": ({}, {"email", "password"}),
    "login": ({"email": "user1@example.com"}, {"password"}),
    "refresh": ({"session_id": "a" * 64}, {"refresh_token"}),
    "password": ({"new_password": "another password"}, {"current_password"}),
    "delete_me": ({}, {"password"}),
}


@pytest.mark.parametrize("name", MISSING)
async def test_missing_fields_are_400_with_one_error_per_field(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    body, missing = MISSING[name]
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    answer = assert_fail(await send(json=body), 400)
    assert fields(answer) == missing
    for error in answer["errors"]:
        assert error["message"].endswith("is required")
    assert await row_counts(ctx) == before


@pytest.mark.parametrize("name", MISSING)
async def test_an_empty_body_is_400_naming_the_required_fields(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    answer = assert_fail(await send(content=b"", headers=JSON_HEADERS), 400)
    assert answer["errors"]
    assert await row_counts(ctx) == before


async def test_logout_with_an_empty_body_ends_only_the_current_session(client: httpx.AsyncClient, users: Users) -> None:
    """API.md: ``{}`` ends the current session; no body at all means the same."""
    current = await users.signed_in()
    other = await users.login(current.email)
    response = await client.post(f"{API}/logout", headers=current.auth)
    assert response.status_code == 200, response.text
    assert (await client.get(f"{API}/me", headers=current.auth)).status_code == 401
    assert (await client.get(f"{API}/me", headers=other.auth)).status_code == 200


async def test_missing_refresh_token_says_refresh_token_is_required(client: httpx.AsyncClient) -> None:
    answer = assert_fail(await client.post(f"{API}/refresh", json={"session_id": "a" * 64}), 400)
    assert answer["errors"] == [{"field": "refresh_token", "message": "Refresh token is required"}]


async def test_refresh_with_empty_object_names_both_fields(client: httpx.AsyncClient) -> None:
    answer = assert_fail(await client.post(f"{API}/refresh", json={}), 400)
    assert fields(answer) == {"refresh_token", "session_id"}


HUGE = "A" * 60_000  # under the 64 KiB body limit, far over any field limit


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("register", {"email": f"{HUGE}@example.com", "password": PASSWORD}, "email"),
        ("register", {"email": "n@example.com", "password": HUGE}, "password"),
        ("register", {"email": "n@example.com", "password": PASSWORD, "name": HUGE}, "name"),
        ("login", {"email": "user1@example.com", "password": HUGE}, "password"),
        ("login", {"email": HUGE, "password": PASSWORD}, "email"),
        ("refresh", {"refresh_token": HUGE, "session_id": "a" * 64}, "refresh_token"),
        ("logout", {"session_id": HUGE}, "session_id"),
        ("password", {"current_password": PASSWORD, "new_password": HUGE}, "new_password"),
        ("delete_me", {"password": HUGE}, "password"),
    ],
)
async def test_huge_field_values_are_400_and_change_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str, body: dict[str, Any], field: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    answer = assert_fail(await send(json=body), 400)
    assert field in fields(answer)
    assert HUGE not in str(answer)  # the offending value is not echoed back
    assert await row_counts(ctx) == before


@pytest.mark.parametrize("name", ["register", "login", "refresh", "password", "delete_me"])
async def test_huge_unknown_field_does_not_stand_in_for_a_missing_one(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    answer = assert_fail(await send(json={"junk": HUGE}), 400)
    assert answer["errors"]
    assert await row_counts(ctx) == before


OVERSIZED = b'{"password": "' + b"A" * (64 * 1024) + b'"}'


@pytest.mark.parametrize("name", ENDPOINTS)
async def test_body_over_64_kib_with_content_length_is_413(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    response = await send(content=OVERSIZED, headers=JSON_HEADERS)
    assert "content-length" in response.request.headers
    assert_fail(response, 413)
    assert await row_counts(ctx) == before


async def chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    yield b'{"password": "'
    sent = 0
    while sent < total:
        yield b"A" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize("name", ENDPOINTS)
async def test_chunked_body_over_64_kib_without_content_length_is_413(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    response = await send(content=chunks(70 * 1024), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_fail(response, 413)
    assert await row_counts(ctx) == before


async def test_small_chunked_body_is_accepted(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"email": "' + email.encode() + b'", '
        yield b'"password": "' + PASSWORD.encode() + b'"}'

    response = await client.post(f"{API}/login", content=body(), headers=JSON_HEADERS)
    assert response.status_code == 200, response.text


WRONG_CONTENT_TYPES = {
    "text_plain": {"content-type": "text/plain"},
    "form": {"content-type": "application/x-www-form-urlencoded"},
    "multipart": {"content-type": "multipart/form-data; boundary=x"},
    "json_lookalike": {"content-type": "application/jsonp"},
    "missing": {},
}


@pytest.mark.parametrize("name", ENDPOINTS)
async def test_wrong_or_missing_content_type_is_415_and_changes_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users, name: str
) -> None:
    # A valid JSON body, so only the declared type is wrong.
    raw = httpx.Request("POST", "http://x", json=ENDPOINTS[name][3]).content
    send = await sender(client, users, name)
    before = await row_counts(ctx)
    for case, headers in WRONG_CONTENT_TYPES.items():
        response = await send(content=raw, headers=headers)
        assert response.request.headers.get("content-type") == headers.get("content-type")
        assert response.status_code == 415, (case, response.text)
        assert_fail(response, 415)
        assert await row_counts(ctx) == before, case


async def test_json_content_type_with_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    raw = httpx.Request("POST", "http://x", json={"email": "charset@example.com", "password": PASSWORD}).content
    response = await client.post(
        f"{API}/register", content=raw, headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 201, response.text


async def test_a_refresh_body_its_route_does_not_take_as_it_is_gets_fastapis_answer(
    client: httpx.AsyncClient, signed_in: Login
) -> None:
    """The refresh route validates a JSON body itself (``http.JSONBodyRoute``); one its check refuses goes to
    FastAPI's handler, which reads the body the request kept. A byte order mark is such a body: Python's ``json``
    (FastAPI's) takes it, pydantic's parser does not. So it rotates, as it did before the route did its own check."""
    raw = (
        b"\xef\xbb\xbf"
        + httpx.Request(
            "POST", "http://x", json={"refresh_token": signed_in.refresh, "session_id": signed_in.session_id}
        ).content
    )
    response = await client.post(f"{API}/refresh", content=raw, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["refresh"]["token"] != signed_in.refresh
    again = await client.post(f"{API}/refresh", content=b"\xef\xbb\xbf{}", headers=JSON_HEADERS)
    assert fields(assert_fail(again, 400)) == {"refresh_token", "session_id"}


async def test_logout_with_null_body_logs_nobody_out(client: httpx.AsyncClient, ctx: Context, signed_in: Login) -> None:
    """``null`` is not an object: it must not be read as the empty body ``{}`` (which ends the session)."""
    response = await client.post(f"{API}/logout", content=b"null", headers={**JSON_HEADERS, **signed_in.auth})
    assert_fail(response, 400)
    assert (await client.get(f"{API}/me", headers=signed_in.auth)).status_code == 200


# --------------------------------------------------------------------------- routes, methods, ids, queries


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1/auth/nope", "/api/v2/auth/login", "/api/v1/auth/login/extra", "/.well-known/nope"]
)
async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient, path: str) -> None:
    assert_fail(await client.get(path), 404)
    assert_fail(await client.post(path, json={}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/login"),
        ("PUT", f"{API}/register"),
        ("GET", f"{API}/refresh"),
        ("PATCH", f"{API}/me"),
        ("POST", f"{API}/sessions"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ],
)
async def test_wrong_method_is_405_envelope(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_fail(await client.request(method, path), 405)


BAD_EVENT_QUERIES = [
    "limit=0",
    "limit=101",
    "limit=-1",
    "limit=abc",
    "limit=1.5",
    "limit=" + "9" * 40,
    "before=0",
    "before=-5",
    "before=abc",
    "before=" + "9" * 40,
    "before=%00",
    "before=2147483648",  # past the id column (PostgreSQL int4): was a 500 there, found by tests/test_fuzz.py
    "before=4611686018427387903",
]


@pytest.mark.parametrize("query", BAD_EVENT_QUERIES)
async def test_bad_query_params_on_events_are_400(client: httpx.AsyncClient, signed_in: Login, query: str) -> None:
    answer = assert_fail(await client.get(f"{API}/events?{query}", headers=signed_in.auth), 400)
    assert fields(answer) & {"limit", "before"}


async def test_good_query_params_on_events_are_accepted(client: httpx.AsyncClient, signed_in: Login) -> None:
    response = await client.get(f"{API}/events?limit=100&before=1", headers=signed_in.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["events"] == []
    largest = await client.get(f"{API}/events?before=2147483647", headers=signed_in.auth)
    assert largest.status_code == 200, largest.text


TRICKY_SESSION_IDS = [
    "..",
    "../me",
    "..%2Fme",
    "%2e%2e%2fme",
    "%2E%2E%2F%2E%2E%2Fhealthz",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "0123456789ABCDEF" * 4,
    "g" * 64,
    "%61" * 64,
    "a" * 63 + "%00",
    "a" * 64 + "%0a",
    "' OR 1=1 --",
    "%20" + "a" * 64,
]


@pytest.mark.parametrize("tricky", TRICKY_SESSION_IDS)
async def test_tricky_session_ids_in_path_are_4xx_and_revoke_nothing(
    client: httpx.AsyncClient, ctx: Context, signed_in: Login, tricky: str
) -> None:
    before = await row_counts(ctx)
    response = await client.delete(f"{API}/sessions/{tricky}", headers=signed_in.auth)
    assert_fail(response, 400, 404, 405)
    assert await row_counts(ctx) == before
    assert (await client.get(f"{API}/me", headers=signed_in.auth)).status_code == 200


async def test_percent_encoded_own_session_id_is_decoded_like_the_plain_one(
    client: httpx.AsyncClient, users: Users, signed_in: Login
) -> None:
    other = await users.login(signed_in.email)
    encoded = "".join(f"%{ord(c):02x}" for c in other.session_id)
    response = await client.delete(f"{API}/sessions/{encoded}", headers=signed_in.auth)
    assert response.status_code == 200, response.text
    assert (await client.get(f"{API}/me", headers=other.auth)).status_code == 401


@pytest.mark.parametrize("user_id", ["abc", "0", "-1", "1.0", str(2**63), "1e3", "%00", "..", "0x1"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_tricky_user_ids_in_admin_path_are_4xx(
    client: httpx.AsyncClient, signed_in: Login, user_id: str, method: str
) -> None:
    response = await client.request(method, f"/api/v1/admin/users/{user_id}/sessions", headers=signed_in.auth)
    assert_fail(response, 400, 403, 404)


# --------------------------------------------------------------------------- rate limits


def at_ip(ctx: Context, ip: str) -> httpx.AsyncClient:
    """A second client of the same service, from another address."""
    transport = httpx.ASGITransport(app=create_app(ctx), client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def login_as(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/login", json={"email": email, "password": password})


def assert_rate_limited(response: httpx.Response) -> None:
    assert_fail(response, 429)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60


class TestLoginRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"login_rate_limit": "3/minute"}

    async def test_fourth_login_for_one_email_is_429_even_with_the_right_password(
        self, client: httpx.AsyncClient, ctx: Context, users: Users
    ) -> None:
        email = await users.register()
        for _ in range(3):
            assert (await login_as(client, email, "wrong password")).status_code == 401
        before = await row_counts(ctx)
        assert_rate_limited(await login_as(client, email))
        assert await row_counts(ctx) == before  # no session, no token, no event

    async def test_email_case_and_spaces_do_not_escape_the_limit(self, client: httpx.AsyncClient, users: Users) -> None:
        email = await users.register()
        for variant in (email, email.upper(), f"  {email} "):
            assert (await login_as(client, variant)).status_code == 200
        assert_rate_limited(await login_as(client, email.capitalize()))

    async def test_another_email_from_the_same_ip_is_not_limited_by_the_first(
        self, client: httpx.AsyncClient, users: Users
    ) -> None:
        first, second = await users.register(), await users.register()
        for _ in range(3):
            await login_as(client, first, "wrong password")
        assert_rate_limited(await login_as(client, first))
        assert (await login_as(client, second)).status_code == 200

    async def test_the_same_email_from_another_ip_is_not_limited_by_the_first(
        self, client: httpx.AsyncClient, ctx: Context, users: Users
    ) -> None:
        email = await users.register()
        for _ in range(3):
            await login_as(client, email, "wrong password")
        assert_rate_limited(await login_as(client, email))
        async with at_ip(ctx, "198.51.100.20") as elsewhere:
            assert (await login_as(elsewhere, email)).status_code == 200

    async def test_one_ip_gets_five_times_the_limit_across_emails(
        self, client: httpx.AsyncClient, ctx: Context, users: Users
    ) -> None:
        email = await users.register()
        for attempt in range(15):  # 5 x 3, at most 3 per email
            response = await login_as(client, f"spray{attempt // 3}@example.com", "guess")
            assert response.status_code == 401, (attempt, response.text)
        assert_rate_limited(await login_as(client, email))  # a fresh email, the right password
        async with at_ip(ctx, "198.51.100.21") as elsewhere:
            assert (await login_as(elsewhere, email)).status_code == 200


class TestRegisterRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"register_rate_limit": "2/minute"}

    async def test_third_registration_from_one_ip_is_429_and_creates_no_account(
        self, client: httpx.AsyncClient, ctx: Context, users: Users
    ) -> None:
        await users.register()
        await users.register()
        before = await row_counts(ctx)
        response = await client.post(f"{API}/register", json={"email": "third@example.com", "password": PASSWORD})
        assert_rate_limited(response)
        assert await row_counts(ctx) == before
        async with at_ip(ctx, "198.51.100.22") as elsewhere:
            response = await elsewhere.post(
                f"{API}/register", json={"email": "third@example.com", "password": PASSWORD}
            )
            assert response.status_code == 201, response.text


class TestRateLimitsDisabled:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rate_limit_enabled": False, "login_rate_limit": "1/minute", "register_rate_limit": "1/minute"}

    async def test_no_429_when_rate_limiting_is_off(self, client: httpx.AsyncClient, users: Users) -> None:
        emails = [await users.register() for _ in range(4)]
        for _ in range(6):
            assert (await login_as(client, emails[0], "wrong password")).status_code == 401
        assert (await login_as(client, emails[0])).status_code == 200


# --------------------------------------------------------------------------- no user enumeration


async def test_wrong_password_and_unknown_email_get_identical_answers(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    wrong_password = await login_as(client, email, "not the password")
    unknown_email = await login_as(client, "nobody@example.com", "not the password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.content == unknown_email.content
    assert wrong_password.headers.get("www-authenticate") == unknown_email.headers.get("www-authenticate")
    assert_fail(unknown_email, 401)


async def test_unknown_email_still_runs_a_password_verification(
    client: httpx.AsyncClient, ctx: Context, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = await users.register()
    calls: list[tuple[str | None, str]] = []
    real_verify = ctx.passwords.verify

    async def spy(password_hash: str | None, password: str) -> bool:
        calls.append((password_hash, password))
        return await real_verify(password_hash, password)

    monkeypatch.setattr(ctx.passwords, "verify", spy)

    assert (await login_as(client, "nobody@example.com", "a guess")).status_code == 401
    assert calls == [(None, "a guess")]

    assert (await login_as(client, email, "a guess")).status_code == 401
    assert len(calls) == 2
    assert calls[1][0] is not None
    assert calls[1][0].startswith("$argon2id$")


async def test_dummy_verification_never_accepts_any_password(ctx: Context) -> None:
    assert await ctx.passwords.verify(None, "sessionward dummy password for unknown accounts") is False
    assert await ctx.passwords.verify(None, "") is False
