"""A front end on another origin (js/examples/web, served by Node on its own port) using sessionward-js in cookie
mode against a live server that lists that origin in CORS_ALLOWED_ORIGINS; and one on an unlisted origin."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import API, PASSWORD
from tests.live import LiveServer, free_port
from tests.web.conftest import SERVER_ENV, Api, Device, _device_factory

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "js" / "examples" / "web" / "serve.mjs"
BUILD = ROOT / "js" / "dist" / "sessionward.js"
TOKEN_S = 4  # the access tokens' lifetime: long enough to finish a test's clicks after a refresh on a busy machine


class FrontEnd:
    """`node js/examples/web/serve.mjs` on a port of 127.0.0.1: another origin than the service's."""

    def __init__(self, api_url: str, port: int) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("the cross-origin tests need Node 20+: apt-get install -y nodejs npm", pytrace=False)
        if not BUILD.exists():
            pytest.fail(f"{BUILD} is missing: `make js-test` (part of `make test`) builds it", pytrace=False)
        self.url = f"http://127.0.0.1:{port}"
        command = [node, str(EXAMPLE), "--port", str(port), "--api", api_url]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90  # a hang guard: a loaded machine starts processes slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the example front end did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def listed_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory, listed_port: int) -> Iterator[LiveServer]:
    env = {
        **SERVER_ENV,
        "ACCESS_TOKEN_EXPIRES_IN": f"{TOKEN_S}s",
        "CORS_ALLOWED_ORIGINS": f"http://127.0.0.1:{listed_port}",
    }
    server = LiveServer(tmp_path_factory.mktemp("web-cors"), env=env).start()
    yield server
    server.stop()


def _front_end(server: LiveServer, port: int) -> Iterator[FrontEnd]:
    front = FrontEnd(server.base_url, port)
    yield front
    front.stop()


@pytest.fixture(scope="module")
def front_end(cors_server: LiveServer, listed_port: int) -> Iterator[FrontEnd]:
    yield from _front_end(cors_server, listed_port)


@pytest.fixture(scope="module")
def unlisted_front_end(cors_server: LiveServer) -> Iterator[FrontEnd]:
    yield from _front_end(cors_server, free_port())


@pytest.fixture
def device(chromium: Browser, front_end: FrontEnd) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, front_end.url)


@pytest.fixture
def api(cors_server: LiveServer) -> Api:
    return Api(cors_server.base_url)


def sign_in(page: Page, email: str) -> None:
    form = page.locator("#signin")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#email")).to_have_text(email)
    expect(page.locator("#devices li").first).to_be_visible()


def signed_in(page: Page, email: str) -> None:
    expect(page.locator("#account")).to_be_visible()
    expect(page.locator("#email")).to_have_text(email)


def test_a_front_end_on_another_origin_signs_in_lists_devices_and_calls_the_api(
    device: Callable[..., Device], api: Api, cors_server: LiveServer
) -> None:
    email = api.register()
    browser = device()
    page = browser.tab("/")
    expect(page.locator("#signin")).to_be_visible()
    sign_in(page, email)
    expect(page.locator("#devices li")).to_have_text([re.compile(r"Chrome on Linux \(this device\)$")])
    cookies = browser.context.cookies()
    assert {cookie["name"] for cookie in cookies} == {"sessionward-refresh", "sessionward-session"}
    assert all(c["domain"] == "127.0.0.1" and c["path"] == f"{API}/refresh" and c["httpOnly"] for c in cookies)
    before = len(browser.refreshes)  # (2 s tokens: the page may have refreshed on its own already)
    page.reload()  # a new visit: the session comes back through the refresh cookie, across origins
    signed_in(page, email)
    assert len(browser.refreshes) > before


def test_after_expiry_three_tabs_make_one_refresh_and_a_tab_opened_meanwhile_none(
    device: Callable[..., Device], api: Api, cors_server: LiveServer
) -> None:
    email = api.register()
    browser = device()
    browser.context.clock.install()
    first = browser.tab("/")
    sign_in(first, email)
    tabs = [first, browser.tab("/"), browser.tab("/")]
    for tab in tabs:
        signed_in(tab, email)
    # The tabs' clocks stop (their timers with them) while the access tokens expire on the server for real.
    first.clock.pause_at(first.evaluate("Date.now()") / 1000 + 1)
    time.sleep(TOKEN_S + 1.5)  # the token's life and the server's 1 s leeway
    before = len(browser.refreshes)
    first.clock.fast_forward("00:31")  # every tab's refresh timer is overdue at once
    late = browser.tab("/")  # opened while that refresh may still be in flight
    for tab in [*tabs, late]:
        tab.get_by_role("button", name="Reload").click()
        signed_in(tab, email)
        expect(tab.locator("#status")).to_have_text("")
    assert len(browser.refreshes) - before == 1
    login = api.login(email, "sessionward-tests")
    types = [event["type"] for event in api.call("GET", "/events?limit=100", login).json()["data"]["events"]]
    assert "refresh_token_reused" not in types


def test_sign_out_everywhere_reaches_every_tab_and_the_other_devices(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    laptop, phone = device(), device()
    first = laptop.tab("/")
    sign_in(first, email)
    second = laptop.tab("/")
    signed_in(second, email)
    other = phone.tab("/")
    sign_in(other, email)
    first.get_by_role("button", name="Sign out everywhere").click()
    for tab in (first, second):
        expect(tab.locator("#signin")).to_be_visible()
        expect(tab.locator("#status")).to_have_text("Signed out (signed_out).")
    other.get_by_role("button", name="Reload").click()  # its next call: refused, refresh refused, signed out
    expect(other.locator("#status")).to_have_text("Signed out (revoked).")
    assert laptop.context.cookies() == []


def test_an_unlisted_origin_can_neither_sign_in_nor_call_the_api(
    chromium: Browser, unlisted_front_end: FrontEnd, cors_server: LiveServer, api: Api
) -> None:
    email = api.register()
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(unlisted_front_end.url + "/")
        sign = page.locator("#signin")
        sign.get_by_label("Email").fill(email)
        sign.get_by_label("Password").fill(PASSWORD)
        sign.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.locator("#status")).to_have_text("Error: Failed to fetch")
        assert context.cookies() == []
        read = f"fetch('{cors_server.base_url}{API}/me').then(r => r.status, e => e.message)"
        assert page.evaluate(read) == "Failed to fetch"  # no grant: the page may not read even a 401
    finally:
        context.close()
    login = api.login(email, "sessionward-tests")
    listed = api.call("GET", "/sessions", login).json()["data"]
    assert listed["other_sessions"] == []  # the refused preflight stopped the login: no session was made
