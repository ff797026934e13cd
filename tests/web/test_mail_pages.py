"""The account-email pages in Chromium, with mail through a real SMTP server: forgot → mail → reset → sign in,
verification from the mail's link, the account page's notice and email card."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import PASSWORD
from tests.live import LiveServer
from tests.smtp import SmtpServer, link_in
from tests.web.conftest import SERVER_ENV, Api, Device, _device_factory, on_sign_in_page, pass_database

pytestmark = pytest.mark.browser
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path_factory.mktemp("smtp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer, backend: str) -> Iterator[LiveServer]:
    """On the pass's backend: the mail flows run on SQLite and on PostgreSQL."""
    with pass_database(backend, "web_mail") as database_url:
        folder = tmp_path_factory.mktemp("web-mail")
        server = LiveServer(folder, database_url=database_url, env={**SERVER_ENV, "SMTP_URL": smtp.url})
        server.env["PUBLIC_URL"] = server.base_url
        server.start()
        yield server
        server.stop()


@pytest.fixture
def mail_device(chromium: Browser, mail_server: LiveServer) -> Iterator[Callable[..., Device]]:
    yield from _device_factory(chromium, mail_server.base_url)


def mail_to(smtp: SmtpServer, email: str, subject: str) -> str:
    """The link of the newest mail with this subject (waiting for it)."""
    for _ in range(100):
        found = [m for m in smtp.inbox.to(email) if m["Subject"] == subject]
        if found:
            return link_in(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no mail {subject!r} to {email}")


def test_forgot_password_mail_reset_then_sign_in(
    mail_device: Callable[..., Device], mail_server: LiveServer, smtp: SmtpServer
) -> None:
    api = Api(mail_server.base_url)
    email = api.register()
    browser = mail_device()
    page = browser.tab("/signin")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page).to_have_url(re.compile(r"/forgot-password$"))
    forgot = page.get_by_role("region", name="Reset your password")
    forgot.get_by_label("Email").fill(email)
    forgot.get_by_role("button", name="Send reset link").click()
    expect(page.locator("#forgot-notice")).to_contain_text("is on its way")

    link = mail_to(smtp, email, "Reset your password")
    assert link.startswith(f"{mail_server.base_url}/reset-password#token=")
    page.goto(link)
    reset = page.get_by_role("region", name="Choose a new password")
    expect(reset).to_be_visible()
    expect(page).to_have_url(re.compile(r"/reset-password$"))  # the token left the address bar
    reset.get_by_role("textbox", name="New password").fill(NEW_PASSWORD)
    reset.get_by_role("button", name="Set new password").click()
    on_sign_in_page(page, re.compile("Your password was reset"))

    signin = page.get_by_role("region", name="Sign in")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(NEW_PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#events li[data-type=password_reset]")).to_have_count(1)

    page.goto(link)  # used once
    reset.get_by_role("textbox", name="New password").fill("and yet another one")
    reset.get_by_role("button", name="Set new password").click()
    expect(page.locator("#reset-error")).to_contain_text("This link is invalid or has expired")


def test_the_verification_link_verifies_and_the_account_page_says_so(
    mail_device: Callable[..., Device], mail_server: LiveServer, smtp: SmtpServer
) -> None:
    api = Api(mail_server.base_url)
    email = api.register()
    browser = mail_device()
    page = browser.sign_in(email)
    expect(page.locator("#verify-banner")).to_be_visible()
    expect(page.locator("#email-state")).to_have_text("Not verified")
    page.get_by_role("button", name="Send the link again").click()
    expect(page.locator("#account-notice")).to_contain_text("A new link is on its way")

    link = mail_to(smtp, email, "Confirm your email address")
    page.goto(link)
    expect(page.get_by_role("heading", name="Address confirmed")).to_be_visible()
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#verify-banner")).to_be_hidden()
    expect(page.locator("#email-state")).to_have_text("Verified")

    page.goto(link)  # used once: the page offers a new link
    expect(page.get_by_role("heading", name="This link didn't work")).to_be_visible()
    expect(page.get_by_role("button", name="Send a new link")).to_be_visible()


def test_changing_the_email_from_the_account_page(
    mail_device: Callable[..., Device], mail_server: LiveServer, smtp: SmtpServer
) -> None:
    api = Api(mail_server.base_url)
    email = api.register()
    new = "changed-" + email
    browser = mail_device()
    page = browser.sign_in(email)
    card = page.get_by_role("region", name="Email address")
    card.get_by_label("New email").fill(new)
    card.get_by_label("Password").fill(PASSWORD)
    card.get_by_role("button", name="Change email").click()
    expect(page.locator("#account-notice")).to_contain_text(f"We sent a link to {new}")
    page.goto(mail_to(smtp, new, "Confirm your new email address"))
    expect(page.locator("#verify-notice")).to_have_text(f"Your account's address is now {new}.")
    page.get_by_role("link", name="Continue").click()
    expect(page.locator("#account-email")).to_have_text(new)
