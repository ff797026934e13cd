"""CORS for the listed front ends, cookie mode from them, and the cookie settings (API.md "Cross-origin front ends")."""

from __future__ import annotations

import httpx
import pytest

from sessionward.app import Pipeline, create_app
from sessionward.config import ConfigError, load_settings
from sessionward.context import Context
from tests.conftest import API, Users
from tests.test_cookies import REFRESH_COOKIE, browser_client, set_cookies, web_login, web_refresh

FRONT_END = "https://app.example.com"
LISTED = pytest.mark.parametrize(
    "settings_overrides", [{"cors_allowed_origins": f"{FRONT_END}, http://localhost:5173"}]
)
UNLISTED = [
    "https://evil.example",
    "null",
    "https://app.example.com.evil",
    "http://app.example.com",
    "https://example.com",
]
PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}


@LISTED
async def test_a_listed_origins_preflight_is_granted_with_credentials_and_a_ten_minute_cache(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(f"{API}/login", headers={"origin": FRONT_END, **PREFLIGHT})
    assert response.status_code == 204
    assert cors_headers(response) == {
        "access-control-allow-origin": FRONT_END,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
        "access-control-allow-methods": "GET, POST, PATCH, DELETE",
        "access-control-allow-headers": "authorization, content-type, x-sessionward-client, dpop",
        "access-control-max-age": "600",
    }


@LISTED
async def test_a_listed_origins_requests_get_their_origin_back_and_vary(
    client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    response = await client.get(f"{API}/me", headers={"origin": FRONT_END, **login.auth})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == "Origin"
    assert response.headers["access-control-expose-headers"] == "retry-after, www-authenticate"


@LISTED
async def test_errors_reach_a_listed_front_end_with_the_grant_too(client: httpx.AsyncClient) -> None:
    # A 401 and a 415 (the pipeline's own answer, before FastAPI): without the grant the SDK could not read them.
    refused = await client.get(f"{API}/me", headers={"origin": FRONT_END})
    wrong_type = await client.post(
        f"{API}/login", content="x", headers={"origin": FRONT_END, "content-type": "text/plain"}
    )
    for response, status in ((refused, 401), (wrong_type, 415)):
        assert response.status_code == status
        assert response.json()["status"] == "fail"
        assert response.headers["access-control-allow-origin"] == FRONT_END


@LISTED
@pytest.mark.parametrize("origin", UNLISTED)
async def test_an_unlisted_origin_gets_no_cors_header_at_all(
    client: httpx.AsyncClient, users: Users, origin: str
) -> None:
    login = await users.signed_in()
    preflight = await client.options(f"{API}/login", headers={"origin": origin, **PREFLIGHT})
    assert preflight.status_code == 405  # the API's own answer: OPTIONS is no route of it
    assert preflight.json()["status"] == "fail"
    request = await client.get(f"{API}/me", headers={"origin": origin, **login.auth})
    assert request.status_code == 200
    for response in (preflight, request):
        assert cors_headers(response) == {}


async def test_without_a_list_no_origin_is_granted_and_the_pipeline_is_not_wrapped(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    assert isinstance(create_app(ctx), Pipeline)
    response = await client.options(f"{API}/login", headers={"origin": FRONT_END, **PREFLIGHT})
    assert response.status_code == 405
    assert cors_headers(response) == {}


# ---------------------------------------------------------------- cookie mode from a listed front end


@LISTED
async def test_cookie_mode_works_from_a_listed_origin_on_a_sibling_site(ctx: Context, users: Users) -> None:
    async with browser_client(ctx, "https://auth.example.com") as browser:
        headers = {"origin": FRONT_END, "sec-fetch-site": "same-site"}
        login = await web_login(browser, users, **headers)
        assert login.status_code == 200, login.text
        assert login.headers["access-control-allow-origin"] == FRONT_END
        refreshed = await web_refresh(browser, **headers)
        assert refreshed.status_code == 200, refreshed.text
        assert REFRESH_COOKIE in set_cookies(refreshed)


@LISTED
@pytest.mark.parametrize("origin", UNLISTED)
async def test_cookie_mode_from_an_unlisted_origin_is_403(ctx: Context, users: Users, origin: str) -> None:
    async with browser_client(ctx, "https://auth.example.com") as browser:
        assert (await web_login(browser, users)).status_code == 200  # same origin: fine
        login = await web_login(browser, users, origin=origin, **{"sec-fetch-site": "cross-site"})
        refreshed = await web_refresh(browser, origin=origin, **{"sec-fetch-site": "cross-site"})
    for response in (login, refreshed):
        assert response.status_code == 403
        assert response.json() == {"status": "fail", "message": "Cross-origin request refused"}
        assert "set-cookie" not in response.headers


@LISTED
async def test_cookie_mode_without_origin_from_another_site_is_still_403(ctx: Context, users: Users) -> None:
    async with browser_client(ctx, "https://auth.example.com") as browser:
        await web_login(browser, users)
        del browser.headers["origin"]
        assert (await web_refresh(browser, **{"sec-fetch-site": "cross-site"})).status_code == 403


# ---------------------------------------------------------------- COOKIE_SAMESITE and COOKIE_DOMAIN


@pytest.mark.parametrize(
    "settings_overrides", [{"cookie_samesite": "lax", "cookie_domain": "example.com", "env": "production"}]
)
async def test_cookie_domain_and_samesite_reach_every_cookie_set_and_cleared(ctx: Context, users: Users) -> None:
    async with browser_client(ctx, "https://auth.example.com") as browser:
        login = await web_login(browser, users)
        token = login.json()["data"]["tokens"]["access"]["token"]
        logout = await browser.post(f"{API}/logout", json={}, headers={"authorization": f"Bearer {token}"})
    assert logout.status_code == 200
    for response in (login, logout):
        morsels = set_cookies(response).values()
        assert len(morsels) == 2
        for morsel in morsels:
            assert morsel["domain"] == "example.com"
            assert morsel["samesite"] == "lax"
            assert morsel["secure"] is True
    assert all(morsel["max-age"] == "0" for morsel in set_cookies(logout).values())


@pytest.mark.parametrize("settings_overrides", [{"cookie_samesite": "none", "cors_allowed_origins": FRONT_END}])
async def test_samesite_none_is_partitioned_and_secure_even_on_the_development_loopback(
    ctx: Context, users: Users
) -> None:
    async with browser_client(ctx, "http://127.0.0.1:8000") as browser:
        login = await web_login(browser, users)
    headers = login.headers.get_list("set-cookie")
    assert len(headers) == 2
    for header in headers:
        assert header.startswith("__Secure-")
        assert "; Partitioned" in header
        assert "SameSite=none" in header
        assert "; Secure" in header


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("cors_allowed_origins", "*", "'*' cannot be used with credentials"),
        ("cors_allowed_origins", "null", "expected origins such as"),
        ("cors_allowed_origins", "https://app.example.com/", "no trailing slash"),
        ("cors_allowed_origins", "https://app.example.com/path", "no path"),
        ("cors_allowed_origins", "app.example.com", "expected origins such as"),
        ("cookie_samesite", "sometimes", "COOKIE_SAMESITE"),
        ("cookie_domain", "https://example.com", "expected a domain"),
    ],
)
def test_bad_cross_origin_settings_are_refused_at_start(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid setting " + variable.upper()) as raised:
        load_settings(**{variable: value})
    assert message in str(raised.value)


def test_samesite_none_needs_https_front_ends() -> None:
    with pytest.raises(ConfigError, match="COOKIE_SAMESITE: none needs every CORS_ALLOWED_ORIGINS entry on https"):
        load_settings(cookie_samesite="none", cors_allowed_origins="http://app.example.com")


def test_origins_are_read_as_browsers_send_them() -> None:
    settings = load_settings(cors_allowed_origins=" HTTPS://App.Example.com:443 ,http://127.0.0.1:5173,, ")
    assert settings.cors_allowed_origins == {"https://app.example.com", "http://127.0.0.1:5173"}
    assert load_settings(cookie_domain=".Example.COM").cookie_domain == "example.com"
