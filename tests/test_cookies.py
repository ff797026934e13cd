"""Browser (cookie) mode of login, refresh, logout and account deletion; CSRF checks; body mode untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sessionward.app import create_app
from sessionward.context import Context
from tests.conftest import API, FIREFOX_LINUX, PASSWORD, Login, Users, refresh

ORIGIN = "https://auth.example"
WEB = {"x-sessionward-client": "web"}
REFRESH_COOKIE = "__Secure-sessionward-refresh"
SESSION_COOKIE = "__Secure-sessionward-session"
COOKIE_PATH = "/api/v1/auth/refresh"


def browser_client(ctx: Context, base_url: str = ORIGIN) -> httpx.AsyncClient:
    """Like the page's fetch(): its own origin, the opt-in header, and a cookie jar."""
    transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.7", 50000))
    headers = {"user-agent": FIREFOX_LINUX, "origin": base_url, "sec-fetch-site": "same-origin", **WEB}
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)


@pytest.fixture
async def browser(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_client(ctx) as c:
        yield c


def set_cookies(response: httpx.Response) -> dict[str, Any]:
    """name -> the parsed Set-Cookie morsel."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return dict(jar)


async def web_login(browser: httpx.AsyncClient, users: Users, **headers: str) -> httpx.Response:
    email = await users.register()
    return await browser.post(f"{API}/login", json={"email": email, "password": PASSWORD}, headers=headers)


async def web_refresh(browser: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await browser.post(f"{API}/refresh", headers=headers)


# ---------------------------------------------------------------- login


async def test_browser_login_puts_refresh_token_and_session_in_httponly_strict_secure_cookies(
    browser: httpx.AsyncClient, users: Users
) -> None:
    response = await web_login(browser, users)
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    assert set(cookies) == {REFRESH_COOKIE, SESSION_COOKIE}
    for morsel in cookies.values():
        assert morsel["httponly"] is True
        assert morsel["secure"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == COOKIE_PATH
        assert morsel["max-age"] == "2592000"
    data = response.json()["data"]
    assert cookies[SESSION_COOKIE].value == data["session"]["id"]
    assert len(cookies[REFRESH_COOKIE].value) == 64


async def test_browser_login_leaves_the_refresh_token_out_of_the_body(browser: httpx.AsyncClient, users: Users) -> None:
    response = await web_login(browser, users)
    tokens = response.json()["data"]["tokens"]
    assert tokens["refresh"] == {"expires_in": 2592000}
    assert tokens["access"]["token"]
    assert set_cookies(response)[REFRESH_COOKIE].value not in response.text


async def test_body_mode_login_sets_no_cookie_and_keeps_the_token_in_the_body(
    client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    assert login.body["tokens"]["refresh"]["token"] == login.refresh
    response = await client.post(f"{API}/login", json={"email": login.email, "password": PASSWORD})
    assert "set-cookie" not in response.headers


async def test_browser_login_from_another_origin_is_403_before_the_password_is_checked(
    browser: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    response = await web_login(browser, users, origin="https://evil.example")
    assert response.status_code == 403
    assert response.json()["message"] == "Cross-origin request refused"
    assert "set-cookie" not in response.headers
    async with ctx.db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar() == 0


# ---------------------------------------------------------------- refresh


async def test_browser_refresh_reads_the_cookies_rotates_and_sets_the_successor(
    browser: httpx.AsyncClient, users: Users
) -> None:
    first = set_cookies(await web_login(browser, users))[REFRESH_COOKIE].value
    response = await web_refresh(browser)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["access"]["token"]
    assert data["refresh"] == {"expires_in": 2592000}
    cookies = set_cookies(response)
    successor = cookies[REFRESH_COOKIE].value
    assert successor != first
    assert successor not in response.text
    assert cookies[REFRESH_COOKIE]["httponly"] is True
    assert cookies[SESSION_COOKIE]["path"] == COOKIE_PATH
    again = await web_refresh(browser)  # the jar now holds the successor: a rotation, not a retry
    assert again.status_code == 200
    assert set_cookies(again)[REFRESH_COOKIE].value not in (first, successor)


async def test_two_browser_refreshes_with_the_same_cookie_get_the_same_successor(
    browser: httpx.AsyncClient, users: Users
) -> None:
    login = set_cookies(await web_login(browser, users))
    jar = {REFRESH_COOKIE: login[REFRESH_COOKIE].value, SESSION_COOKIE: login[SESSION_COOKIE].value}
    browser.cookies.clear()
    header = "; ".join(f"{name}={value}" for name, value in jar.items())
    one = await web_refresh(browser, cookie=header)
    two = await web_refresh(browser, cookie=header)
    assert one.status_code == two.status_code == 200
    assert set_cookies(one)[REFRESH_COOKIE].value == set_cookies(two)[REFRESH_COOKIE].value


async def test_the_cookie_holds_the_same_token_as_body_mode_would_use(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, users: Users
) -> None:
    cookies = set_cookies(await web_login(browser, users))
    token, session_id = cookies[REFRESH_COOKIE].value, cookies[SESSION_COOKIE].value
    response = await refresh(client, token, session_id)
    assert response.status_code == 200
    assert response.json()["data"]["refresh"]["token"] != token


async def test_browser_refresh_of_a_revoked_session_is_401_and_clears_the_cookies(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, users: Users
) -> None:
    data = (await web_login(browser, users)).json()["data"]
    auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
    # Signed out from elsewhere (a JSON client holding this access token): this browser still has its cookies.
    assert (await client.post(f"{API}/logout", json={"logout_all": True}, headers=auth)).status_code == 200
    response = await web_refresh(browser)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    cleared = set_cookies(response)
    assert set(cleared) == {REFRESH_COOKIE, SESSION_COOKIE}
    assert all(morsel["max-age"] == "0" for morsel in cleared.values())


async def test_browser_refresh_without_cookies_is_401_and_clears_them(browser: httpx.AsyncClient) -> None:
    response = await web_refresh(browser)
    assert response.status_code == 401
    assert response.json() == {"status": "fail", "message": "Invalid or expired token"}
    cleared = set_cookies(response)
    assert cleared[REFRESH_COOKIE]["max-age"] == "0"
    assert cleared[REFRESH_COOKIE]["secure"] is True
    assert cleared[REFRESH_COOKIE]["path"] == COOKIE_PATH


@pytest.mark.parametrize(("token", "session_id"), [("short", "a" * 64), ("t" * 64, ""), ("t" * 513, "a" * 64)])
async def test_browser_refresh_with_malformed_cookies_is_401(
    browser: httpx.AsyncClient, token: str, session_id: str
) -> None:
    cookie = f"{REFRESH_COOKIE}={token}; {SESSION_COOKIE}={session_id}"
    assert (await web_refresh(browser, cookie=cookie)).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://auth.example"},  # another scheme is another origin
        {"origin": "https://auth.example:8443"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
async def test_cross_origin_browser_refresh_is_403_and_rotates_nothing(
    browser: httpx.AsyncClient, users: Users, headers: dict[str, str]
) -> None:
    first = set_cookies(await web_login(browser, users))[REFRESH_COOKIE].value
    refused = await web_refresh(browser, **headers)
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers
    # Had the refused request rotated, this would be the grace path and answer the same successor twice.
    one, two = await web_refresh(browser), await web_refresh(browser)
    assert one.status_code == two.status_code == 200
    assert len({first, set_cookies(one)[REFRESH_COOKIE].value, set_cookies(two)[REFRESH_COOKIE].value}) == 3


async def test_browser_refresh_without_origin_and_fetch_metadata_is_accepted(ctx: Context, users: Users) -> None:
    # Non-browser callers of browser mode send neither; the custom header is what no cross-site form can add.
    async with browser_client(ctx) as browser:
        await web_login(browser, users)
        del browser.headers["origin"]
        del browser.headers["sec-fetch-site"]
        assert (await web_refresh(browser)).status_code == 200


async def test_origin_with_upper_case_letters_matches_its_host(ctx: Context, users: Users) -> None:
    async with browser_client(ctx) as browser:
        await web_login(browser, users)
        assert (await web_refresh(browser, origin="HTTPS://Auth.Example")).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"refresh_rate_limit": "1/minute"}])
async def test_a_rate_limited_browser_refresh_is_429_and_keeps_the_cookies(
    browser: httpx.AsyncClient, users: Users
) -> None:
    await web_login(browser, users)
    assert (await web_refresh(browser)).status_code == 200
    limited = await web_refresh(browser)
    assert limited.status_code == 429
    assert "set-cookie" not in limited.headers


# ---------------------------------------------------------------- where Secure and the prefix are relaxed


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"])
async def test_plain_http_to_the_loopback_in_development_drops_secure_and_the_prefix(
    ctx: Context, users: Users, base_url: str
) -> None:
    async with browser_client(ctx, base_url) as browser:
        login = await web_login(browser, users)
        cookies = set_cookies(login)
        assert set(cookies) == {"sessionward-refresh", "sessionward-session"}
        assert all(morsel["secure"] == "" and morsel["httponly"] is True for morsel in cookies.values())
        refreshed = await web_refresh(browser)
        assert refreshed.status_code == 200, refreshed.text
        assert "sessionward-refresh" in set_cookies(refreshed)


async def test_plain_http_to_another_host_keeps_secure_and_the_prefix(ctx: Context, users: Users) -> None:
    async with browser_client(ctx, "http://auth.example") as browser:
        cookies = set_cookies(await web_login(browser, users))
    assert set(cookies) == {REFRESH_COOKIE, SESSION_COOKIE}
    assert all(morsel["secure"] is True for morsel in cookies.values())


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
async def test_production_keeps_secure_and_the_prefix_even_on_the_loopback(ctx: Context, users: Users) -> None:
    async with browser_client(ctx, "http://127.0.0.1:8000") as browser:
        cookies = set_cookies(await web_login(browser, users))
    assert set(cookies) == {REFRESH_COOKIE, SESSION_COOKIE}


# ---------------------------------------------------------------- logout and deletion


async def signed_in_browser(browser: httpx.AsyncClient, users: Users) -> dict[str, str]:
    data = (await web_login(browser, users)).json()["data"]
    return {"authorization": f"Bearer {data['tokens']['access']['token']}", "session": data["session"]["id"]}


@pytest.mark.parametrize("body", [None, {}, {"logout_all": True}, "own-session"])
async def test_browser_logout_of_this_session_clears_the_cookies(
    browser: httpx.AsyncClient, users: Users, body: Any
) -> None:
    auth = await signed_in_browser(browser, users)
    session = auth.pop("session")
    json = {"session_id": session} if body == "own-session" else body
    response = await browser.post(f"{API}/logout", json=json, headers=auth)
    assert response.status_code == 200
    cleared = set_cookies(response)
    assert set(cleared) == {REFRESH_COOKIE, SESSION_COOKIE}
    assert all(morsel["max-age"] == "0" for morsel in cleared.values())
    assert (await web_refresh(browser)).status_code == 401


async def test_browser_logout_of_another_session_keeps_this_ones_cookies(
    browser: httpx.AsyncClient, users: Users
) -> None:
    auth = await signed_in_browser(browser, users)
    auth.pop("session")
    email = (await browser.get(f"{API}/me", headers=auth)).json()["data"]["user"]["email"]
    other = await users.login(email)
    response = await browser.post(f"{API}/logout", json={"session_id": other.session_id}, headers=auth)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert (await web_refresh(browser)).status_code == 200


async def test_body_mode_logout_sets_no_cookie(client: httpx.AsyncClient, users: Users) -> None:
    login: Login = await users.signed_in()
    response = await client.post(f"{API}/logout", json={}, headers=login.auth)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


async def test_browser_account_deletion_clears_the_cookies(browser: httpx.AsyncClient, users: Users) -> None:
    auth = await signed_in_browser(browser, users)
    auth.pop("session")
    response = await browser.request("DELETE", f"{API}/me", json={"password": PASSWORD}, headers=auth)
    assert response.status_code == 200
    assert set(set_cookies(response)) == {REFRESH_COOKIE, SESSION_COOKIE}


async def test_body_mode_account_deletion_sets_no_cookie(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    response = await client.request("DELETE", f"{API}/me", json={"password": PASSWORD}, headers=login.auth)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


# ---------------------------------------------------------------- body mode is unchanged


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Body is required"),
        (b"", "Body is required"),
        (b"null", "Body: Input should be a valid dictionary or object to extract fields from"),
    ],
)
async def test_body_mode_refresh_without_a_body_is_400_as_before(
    client: httpx.AsyncClient, content: bytes | None, message: str
) -> None:
    headers = {} if content is None else {"content-type": "application/json"}
    response = await client.post(f"{API}/refresh", content=content, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"status": "fail", "message": message, "errors": [{"field": "body", "message": message}]}


async def test_body_mode_refresh_ignores_cookies(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    cookie = f"{REFRESH_COOKIE}={login.refresh}; {SESSION_COOKIE}={login.session_id}"
    response = await client.post(f"{API}/refresh", headers={"cookie": cookie})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "body", "message": "Body is required"}]


async def test_body_mode_refresh_missing_token_still_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/refresh", json={"session_id": "a" * 64})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "refresh_token", "message": "Refresh token is required"}]


@pytest.mark.parametrize("value", ["mobile", "Web", ""])
async def test_any_other_client_header_value_is_json_mode(client: httpx.AsyncClient, users: Users, value: str) -> None:
    login = await users.signed_in()
    headers = {"x-sessionward-client": value}
    cookie = f"{REFRESH_COOKIE}={login.refresh}; {SESSION_COOKIE}={login.session_id}"
    response = await client.post(f"{API}/refresh", headers=headers | {"cookie": cookie})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "body", "message": "Body is required"}]
    response = await client.post(f"{API}/login", json={"email": login.email, "password": PASSWORD}, headers=headers)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert response.json()["data"]["tokens"]["refresh"]["token"]


async def test_browser_mode_refresh_ignores_a_body(browser: httpx.AsyncClient, users: Users) -> None:
    await web_login(browser, users)
    response = await browser.post(f"{API}/refresh", json={"refresh_token": "x" * 64, "session_id": "y" * 64})
    assert response.status_code == 200
    assert REFRESH_COOKIE in set_cookies(response)


async def test_get_on_refresh_is_405_in_both_modes(browser: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    assert (await browser.get(f"{API}/refresh")).status_code == 405
    assert (await client.get(f"{API}/refresh")).status_code == 405


async def test_openapi_describes_both_modes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][f"{API}/refresh"]["post"]
    assert operation["requestBody"].get("required", False) is False
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/RefreshRequest"}
    assert document["components"]["schemas"]["RefreshRequest"]["required"] == ["refresh_token", "session_id"]
    header = next(p for p in operation["parameters"] if p["name"] == "x-sessionward-client")
    assert header["in"] == "header"
    assert header["schema"]["examples"] == ["web"]  # not an enum: any other value means JSON mode
    assert "403" in operation["responses"]
    refresh_out = document["components"]["schemas"]["RefreshOut"]
    assert refresh_out["required"] == ["expires_in"]
    assert refresh_out["properties"]["token"]["type"] == "string"
    login = document["paths"][f"{API}/login"]["post"]
    assert any(p["name"] == "x-sessionward-client" for p in login["parameters"])
