"""Browser tests: Playwright drives Debian's Chromium (never a downloaded browser) against `sessionward serve`.

Without /usr/bin/chromium these tests fail with a message saying how to install it: they never skip.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect, sync_playwright

from tests.conftest import API, PASSWORD, new_postgres_database
from tests.live import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0"
)
SERVER_ENV = {"RATE_LIMIT_ENABLED": "false"}  # the suite signs up many users from 127.0.0.1 in a minute


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install -y chromium",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[LiveServer]:
    """A server on a SQLite file of its own: for what the browser does, whatever the database."""
    server = LiveServer(tmp_path_factory.mktemp(name), env={**SERVER_ENV, **env}).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def pass_database(backend: str, name: str) -> Iterator[str | None]:
    """For a flow the suite runs on each backend: a database of its own on the pass's PostgreSQL, or ``None``
    (the server's own SQLite file) in the SQLite pass."""
    if backend != "postgres":
        yield None
        return
    database = new_postgres_database(f"sessionward_{name}")
    # Made and dropped from a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(database.__enter__).result()
    try:
        yield url
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(database.__exit__, None, None, None).result()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _server(tmp_path_factory, "web")


@pytest.fixture(scope="package")
def short_lived_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Access tokens of 2 s, so a test can let one expire for real (PyJWT's 1 s leeway included) in ~3.5 s."""
    yield from _server(tmp_path_factory, "web-short", ACCESS_TOKEN_EXPIRES_IN="2s")


@dataclass
class Api:
    """A JSON client (another device) of the same live server."""

    base_url: str
    count: int = 0

    def register(self) -> str:
        self.count += 1
        email = f"web{self.count}-{secrets.token_hex(4)}@example.com"  # one server serves every test
        response = httpx.post(f"{self.base_url}{API}/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return email

    def login(self, email: str, user_agent: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}{API}/login",
            json={"email": email, "password": PASSWORD},
            headers={"user-agent": user_agent},
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def refresh(self, login: dict[str, Any], user_agent: str) -> httpx.Response:
        body = {"refresh_token": login["tokens"]["refresh"]["token"], "session_id": login["session"]["id"]}
        return httpx.post(f"{self.base_url}{API}/refresh", json=body, headers={"user-agent": user_agent})

    def call(self, method: str, path: str, login: dict[str, Any], **kwargs: Any) -> httpx.Response:
        auth = {"authorization": f"Bearer {login['tokens']['access']['token']}"}
        return httpx.request(method, f"{self.base_url}{API}{path}", headers=auth, **kwargs)


@dataclass
class Device:
    """One browser profile (its own cookie jar) with its tabs, the /refresh calls it made and its page errors."""

    context: BrowserContext
    base_url: str
    refreshes: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def tab(self, path: str | None = None) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        if path is not None:
            page.goto(self.base_url + path)
        return page

    def sign_in(self, email: str, page: Page | None = None) -> Page:
        page = page or self.tab("/signin")
        form = page.get_by_role("region", name="Sign in")
        form.get_by_label("Email").fill(email)
        form.get_by_label("Password").fill(PASSWORD)
        form.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()
        expect(page.locator("#devices li.device").first).to_be_visible()
        return page


def _is_refresh(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith(f"{API}/refresh")


def _device_factory(chromium: Browser, base_url: str) -> Iterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(**options: Any) -> Device:
        device = Device(chromium.new_context(base_url=base_url, **options), base_url)
        device.context.on("request", lambda request: _is_refresh(request) and device.refreshes.append(request))
        made.append(device)
        return device

    yield make
    for device in made:
        device.context.close()
    assert [error for device in made for error in device.errors] == []


@pytest.fixture
def device(chromium: Browser, server: LiveServer) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, server.base_url)


@pytest.fixture
def short_lived_device(chromium: Browser, short_lived_server: LiveServer) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, short_lived_server.base_url)


@pytest.fixture
def api(server: LiveServer) -> Api:
    return Api(server.base_url)


@pytest.fixture
def short_lived_api(short_lived_server: LiveServer) -> Api:
    return Api(short_lived_server.base_url)


def on_sign_in_page(page: Page, notice: str | re.Pattern[str]) -> None:
    expect(page).to_have_url(re.compile(r"/signin(\?|$)"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#signin-notice")).to_have_text(notice)
