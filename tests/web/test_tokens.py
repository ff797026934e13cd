"""Token handling in a real browser: where the tokens live, single-flight refresh across tabs, revocation.

Time: the page's timers run on Playwright's clock (installed per browser context, shared by its tabs), so a test
can freeze the page while a 2-second access token really expires on the server, then let the page find out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, Response, expect

from tests.conftest import API
from tests.web.conftest import IPHONE, Api, Device, on_sign_in_page

pytestmark = pytest.mark.browser

REVOKED = re.compile(r"^Your session has ended")
SECRETS_IN_PAGE = """() => ({
    local: Object.entries(localStorage), session: Object.entries(sessionStorage), cookie: document.cookie,
})"""


def sessions_answered(response: Response) -> bool:
    return response.url.endswith(f"{API}/sessions") and response.request.method == "GET"


def freeze_until_expired(page: Page, browser: Device) -> int:
    """Stop the clock of every tab of the context, wait until the access tokens have expired on the server,
    and answer how many /refresh calls were made by then.

    The clock stops 1 s ahead (any tab may be a little ahead of the one asked); a refresh timer due within
    that second fires on the way, and that token expires during the wait like the others."""
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # a number is Unix time in seconds
    time.sleep(3.5)  # 2 s token + 1 s leeway: expired on the server; the frozen tabs have not noticed
    page.evaluate("0")  # let Playwright deliver the events of the wait
    return len(browser.refreshes)


def test_no_token_is_readable_by_the_page(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    browser = device()
    page = browser.tab("/signin")
    with page.expect_response(f"**{API}/login") as login:
        browser.sign_in(email, page)
    access = login.value.json()["data"]["tokens"]["access"]["token"]
    assert "token" not in login.value.json()["data"]["tokens"]["refresh"]
    page.reload()  # a reload refreshes through the cookie: the page now holds a second access token
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    assert len(browser.refreshes) == 1

    cookies = {cookie["name"]: cookie for cookie in browser.context.cookies()}
    assert set(cookies) == {"sessionward-refresh", "sessionward-session"}  # plain http to 127.0.0.1 (dev)
    for cookie in cookies.values():
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == f"{API}/refresh"
    refresh_token = cookies["sessionward-refresh"]["value"]

    found = page.evaluate(SECRETS_IN_PAGE)
    assert found == {"local": [], "session": [], "cookie": ""}
    # Even on the path the cookies are scoped to, HttpOnly keeps them out of document.cookie.
    page.goto(f"{API}/refresh")
    assert page.evaluate(SECRETS_IN_PAGE) == {"local": [], "session": [], "cookie": ""}
    for secret in (access, refresh_token):
        assert secret not in page.content()


def test_two_tabs_with_an_expired_access_token_make_one_refresh_and_stay_signed_in(
    short_lived_device: Callable[..., Device], short_lived_api: Api
) -> None:
    email = short_lived_api.register()
    browser = short_lived_device()
    browser.context.clock.install()
    first = browser.sign_in(email)
    second = browser.tab("/")
    expect(second.get_by_role("heading", name="Your account")).to_be_visible()
    before = freeze_until_expired(first, browser)
    with first.expect_response(sessions_answered) as one, second.expect_response(sessions_answered) as two:
        first.clock.fast_forward("00:31")  # a laptop lid opens: both tabs' timers are overdue at once
    assert one.value.status == two.value.status == 200
    assert len(browser.refreshes) - before == 1
    for page in (first, second):
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def test_two_tabs_that_get_a_401_make_one_refresh_and_retry(
    short_lived_device: Callable[..., Device], short_lived_api: Api
) -> None:
    email = short_lived_api.register()
    browser = short_lived_device()
    browser.context.clock.install()
    first = browser.sign_in(email)
    second = browser.tab("/")
    expect(second.get_by_role("heading", name="Your account")).to_be_visible()
    before = freeze_until_expired(first, browser)
    statuses: list[int] = []
    browser.context.on("response", lambda r: sessions_answered(r) and statuses.append(r.status))
    # Both tabs come back to the foreground at the same instant, with a token they still believe in.
    for page in (first, second):
        page.evaluate("setTimeout(() => document.dispatchEvent(new Event('visibilitychange')))")
    ok = [tab.expect_response(lambda r: sessions_answered(r) and r.ok) for tab in (first, second)]
    with ok[0], ok[1]:
        first.clock.run_for(1)  # fires both tabs' timers in one tick
    assert 401 in statuses  # the API refused the expired token (the other tab may already have the new one)
    assert len(browser.refreshes) - before == 1
    for page in (first, second):
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def test_new_tabs_take_the_token_of_an_open_tab_instead_of_refreshing(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    browser = device()
    browser.sign_in(email)
    for _ in range(2):
        tab = browser.tab("/")
        expect(tab.get_by_role("heading", name="Your account")).to_be_visible()
    assert browser.refreshes == []


def test_a_session_revoked_from_another_device_sends_every_tab_to_sign_in(
    device: Callable[..., Device], api: Api
) -> None:
    email = api.register()
    browser = device()
    browser.context.clock.install()
    first = browser.sign_in(email)
    second = browser.tab("/")
    expect(second.get_by_role("heading", name="Your account")).to_be_visible()

    phone: dict[str, Any] = api.login(email, IPHONE)
    listed = api.call("GET", "/sessions", phone).json()["data"]["other_sessions"]
    assert api.call("DELETE", f"/sessions/{listed[0]['id']}", phone).status_code == 200
    first.clock.fast_forward("00:31")  # the tabs' next look at the devices list
    for page in (first, second):
        on_sign_in_page(page, REVOKED)
    assert browser.context.cookies() == []  # the refused refresh cleared them


def test_signing_out_in_one_tab_signs_out_every_tab(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    browser = device()
    first = browser.sign_in(email)
    second = browser.tab("/")
    expect(second.get_by_role("heading", name="Your account")).to_be_visible()
    first.get_by_role("button", name="Sign out", exact=True).click()
    for page in (first, second):
        on_sign_in_page(page, "You have signed out.")
    assert browser.context.cookies() == []


def test_a_tab_on_the_sign_in_page_follows_a_sign_in_in_another_tab(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    browser = device()
    waiting = browser.tab("/signin")
    browser.sign_in(email)
    expect(waiting.get_by_role("heading", name="Your account")).to_be_visible()
    assert browser.refreshes == []
