"""Passkeys in the pages, in Chromium with its virtual authenticator (the DevTools protocol's WebAuthn domain, through
Playwright's CDP session): add one on the account page, use it as the second step of a password sign-in, sign in
with it alone, rename it, remove it. WebAuthn takes no IP address as its RP id: the server is reached as localhost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.live import LiveServer
from tests.web.conftest import SERVER_ENV, Api, Device, _device_factory, on_sign_in_page, pass_database

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def passkey_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with pass_database(backend, "web_passkeys") as database_url:
        server = LiveServer(tmp_path_factory.mktemp("web-passkeys"), database_url=database_url, env={**SERVER_ENV})
        server.base_url = server.base_url.replace("127.0.0.1", "localhost")
        server.env["PUBLIC_URL"] = server.base_url  # the RP id is its host: localhost
        server.start()
        yield server
        server.stop()


@pytest.fixture
def passkey_device(chromium: Browser, passkey_server: LiveServer) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, passkey_server.base_url)


def virtual_authenticator(page: Page) -> tuple[Any, str]:
    """A platform authenticator that keeps resident keys and verifies its user, answering at once."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return cdp, added["authenticatorId"]


def test_a_passkey_from_adding_it_to_removing_it(
    passkey_device: Callable[..., Device], passkey_server: LiveServer
) -> None:
    email = Api(passkey_server.base_url).register()
    browser = passkey_device()
    page = browser.sign_in(email)
    cdp, authenticator = virtual_authenticator(page)
    card = page.get_by_role("region", name="Passkeys")
    expect(card.locator("#passkeys")).to_have_text("No passkeys yet.")

    card.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#account-notice")).to_contain_text("Added the passkey")
    expect(card.locator("li.passkey")).to_have_count(1)
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1
    assert stored[0]["isResidentCredential"] is True
    assert stored[0]["rpId"] == "localhost"
    expect(page.locator("#events li[data-type=passkey_added]")).to_contain_text("Passkey added")

    # The passkey is now the second step of a password sign-in.
    page.get_by_role("button", name="Sign out", exact=True).click()
    on_sign_in_page(page, "You have signed out.")
    signin = page.get_by_role("region", name="Sign in")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    signin.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#devices li.current .device-strength")).to_have_text("Password and passkey")

    # And it signs in alone, without the password.
    page.get_by_role("button", name="Sign out", exact=True).click()
    on_sign_in_page(page, "You have signed out.")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#devices li.current .device-strength")).to_have_text("Passkey")
    expect(page.locator("#events li[data-type=passkey_login]")).to_contain_text("New sign-in with a passkey")

    item = card.locator("li.passkey")
    item.get_by_label("Name of this passkey").fill("My laptop")
    item.get_by_role("button", name="Rename").click()
    expect(page.locator("#account-notice")).to_have_text("Passkey renamed to My laptop.")
    item.get_by_role("button", name="Remove").click()  # a fresh two-factor sign-in: no confirmation needed
    expect(page.locator("#account-notice")).to_have_text("Removed the passkey My laptop.")
    expect(card.locator("#passkeys")).to_have_text("No passkeys yet.")
