"""Two-step verification in the pages, in Chromium: turning it on (QR code, key, first code, recovery codes), the
"confirm it's you" dialog before sensitive actions, the code step of a sign-in, a recovery code, turning it off.
The server asks for a sign-in newer than 2 s, so each stale case is one short wait."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.live import LiveServer
from tests.web.conftest import IPHONE, SERVER_ENV, Api, Device, _device_factory, on_sign_in_page, pass_database

pytestmark = pytest.mark.browser

STALE = 2.5  # seconds: past STEP_UP_MAX_AGE


@pytest.fixture(scope="module")
def step_up_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """On the pass's backend: two-step verification runs on SQLite and on PostgreSQL."""
    with pass_database(backend, "web_mfa") as database_url:
        env = {**SERVER_ENV, "STEP_UP_MAX_AGE": "2s"}
        server = LiveServer(tmp_path_factory.mktemp("web-mfa"), database_url=database_url, env=env).start()
        yield server
        server.stop()


@pytest.fixture
def mfa_device(chromium: Browser, step_up_server: LiveServer) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, step_up_server.base_url)


@pytest.fixture
def mfa_api(step_up_server: LiveServer) -> Api:
    return Api(step_up_server.base_url)


def confirm_it_is_you(page: Page, label: str, value: str) -> None:
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label(label)).to_be_focused()
    dialog.get_by_label(label).fill(value)
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog).to_be_hidden()


def test_two_step_verification_from_turning_it_on_to_turning_it_off(
    mfa_device: Callable[..., Device], mfa_api: Api
) -> None:
    email = mfa_api.register()
    mfa_api.login(email, IPHONE)  # another device, to sign out later
    browser = mfa_device()
    page = browser.sign_in(email)
    card = page.get_by_role("region", name="Two-step verification")
    expect(card.locator("#mfa-state")).to_have_text("Off")

    time.sleep(STALE)
    card.get_by_role("button", name="Turn on").click()
    confirm_it_is_you(page, "Password", PASSWORD)  # the sign-in is stale: the password first
    qr = card.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    qr.element_handle().wait_for_element_state("visible")
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=qr.element_handle())  # rendered
    secret = card.locator("#mfa-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    card.get_by_label("Code from the app").fill(totp.now())
    card.get_by_role("button", name="Turn on").click()
    codes = card.locator("#mfa-code-list li")
    expect(codes).to_have_count(10)
    recovery = codes.all_inner_texts()
    card.get_by_role("button", name="Done").click()
    expect(card.locator("#mfa-state")).to_have_text("On")
    expect(card.locator("#mfa-left")).to_have_text("10 recovery codes left.")
    expect(page.locator("#devices li.current .device-strength")).to_have_text("Password and code")
    expect(page.locator("#events li[data-type=mfa_enrolled]")).to_contain_text("Two-step verification turned on")

    time.sleep(STALE)
    page.get_by_role("button", name="Sign out of all other devices").click()
    confirm_it_is_you(page, "Authentication code or recovery code", totp.at(time.time() + 30))  # the next code
    expect(page.locator("#account-notice")).to_have_text("Signed out of 1 other device.")

    page.get_by_role("button", name="Sign out", exact=True).click()
    on_sign_in_page(page, "You have signed out.")
    signin = page.get_by_role("region", name="Sign in")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    expect(signin.get_by_label("Authentication code")).to_be_focused()
    signin.get_by_label("Authentication code").fill("000000")
    signin.get_by_role("button", name="Verify").click()
    expect(signin.get_by_role("alert")).to_have_text("Invalid code")
    signin.get_by_role("button", name="Use a recovery code instead").click()
    signin.get_by_label("Recovery code").fill(recovery[0])
    signin.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#events li[data-type=recovery_code_used]")).to_contain_text("(9 left)")
    expect(page.locator("#events li[data-type=mfa_failed]")).to_contain_text("Wrong two-step verification code")

    time.sleep(STALE)
    card.get_by_role("button", name="Turn off").click()
    confirm_it_is_you(page, "Authentication code or recovery code", recovery[1])
    expect(page.locator("#account-notice")).to_have_text(
        "Two-step verification is off. Signing in now takes only your password."
    )
    expect(card.locator("#mfa-state")).to_have_text("Off")


def test_cancelling_confirm_it_is_you_changes_nothing(mfa_device: Callable[..., Device], mfa_api: Api) -> None:
    email = mfa_api.register()
    other = mfa_api.login(email, IPHONE)
    page = mfa_device().sign_in(email)
    time.sleep(STALE)
    page.get_by_role("button", name="Sign out of all other devices").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    dialog.get_by_label("Password").fill("not my password")
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog.get_by_role("alert")).to_have_text("Password is incorrect")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#account-notice")).to_have_text("Not confirmed: nothing was changed.")
    assert mfa_api.refresh(other, IPHONE).status_code == 200
