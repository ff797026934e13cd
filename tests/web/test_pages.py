"""The pages in a real browser: sign up, sign in, the devices list, signing devices out, the account forms."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import API, PASSWORD
from tests.web.conftest import EDGE_WINDOWS, IPHONE, Api, Device, on_sign_in_page

pytestmark = pytest.mark.browser


def test_sign_up_then_sign_out_and_sign_in_again(device: Callable[..., Device]) -> None:
    browser = device()
    page = browser.tab("/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.get_by_role("link", name="Create an account").click()
    signup = page.get_by_role("region", name="Create an account")
    expect(signup).to_be_visible()
    signup.get_by_label("Name").fill("Ada")
    signup.get_by_label("Email").fill("ada.web@example.com")
    signup.get_by_label("Password").fill(PASSWORD)
    signup.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#account-email")).to_have_text("ada.web@example.com")
    events = page.locator("#events")
    expect(events.locator("li[data-type=login_succeeded]")).to_have_count(1)
    expect(events.locator("li[data-type=user_registered]")).to_have_count(1)

    page.get_by_role("button", name="Sign out", exact=True).click()
    on_sign_in_page(page, "You have signed out.")
    signin = page.get_by_role("region", name="Sign in")
    signin.get_by_label("Email").fill("ada.web@example.com")
    signin.get_by_label("Password").fill("wrong password")
    signin.get_by_role("button", name="Sign in", exact=True).click()
    expect(signin.get_by_role("alert")).to_have_text("Incorrect email or password")
    browser.sign_in("ada.web@example.com", page)


def test_the_sign_in_form_works_from_the_keyboard(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    page = device().tab("/signin")
    signin = page.get_by_role("region", name="Sign in")
    expect(signin.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    expect(signin.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def test_the_devices_page_lists_sessions_created_over_the_api_with_their_labels(
    device: Callable[..., Device], api: Api
) -> None:
    email = api.register()
    api.login(email, IPHONE)
    api.login(email, EDGE_WINDOWS)
    page = device().sign_in(email)

    rows = page.locator("#devices li.device")
    expect(rows).to_have_count(3)
    current = rows.first
    expect(current.locator(".badge")).to_have_text("This device")
    expect(current).to_contain_text("Active now")
    expect(current.get_by_role("button")).to_have_count(0)

    iphone = rows.filter(has_text="Safari on iOS")
    expect(iphone.locator(".device-kind")).to_have_text("Mobile")
    expect(iphone.locator("use")).to_have_attribute("href", "#i-mobile")
    expect(iphone.locator(".device-ip")).to_have_text("IP 127.0.0.1")
    expect(iphone.locator(".device-active")).to_have_text("Last active just now")
    expect(iphone.locator(".badge")).to_be_hidden()
    edge = rows.filter(has_text="Edge on Windows")
    expect(edge.locator(".device-kind")).to_have_text("Desktop")
    expect(edge.locator("use")).to_have_attribute("href", "#i-desktop")
    # Each button says which device it signs out (its accessible name, not only its visible text).
    expect(page.get_by_role("button", name=re.compile(r"^Sign out Safari on iOS"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Sign out Edge on Windows"))).to_be_visible()


def test_signing_a_device_out_makes_its_refresh_fail(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    phone = api.login(email, IPHONE)
    laptop = api.login(email, EDGE_WINDOWS)
    page = device().sign_in(email)

    page.get_by_role("button", name=re.compile(r"^Sign out Safari on iOS")).click()
    expect(page.locator("#account-notice")).to_have_text("Signed out Safari on iOS.")
    expect(page.locator("#devices li.device")).to_have_count(2)
    expect(page.locator("#events li[data-type=session_revoked]")).to_contain_text("Device signed out")
    assert api.refresh(phone, IPHONE).status_code == 401
    assert api.refresh(laptop, EDGE_WINDOWS).status_code == 200


def test_sign_out_of_all_other_devices(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    others = [(api.login(email, IPHONE), IPHONE), (api.login(email, EDGE_WINDOWS), EDGE_WINDOWS)]
    page = device().sign_in(email)
    button = page.get_by_role("button", name="Sign out of all other devices")
    expect(page.locator("#devices li.device")).to_have_count(3)

    button.click()
    expect(page.locator("#account-notice")).to_have_text("Signed out of 2 other devices.")
    expect(page.locator("#devices li.device")).to_have_count(1)
    expect(button).to_be_disabled()
    expect(page.locator("#events li[data-type=sessions_revoked]")).to_contain_text("Signed out of 2 other devices")
    for login, user_agent in others:
        assert api.refresh(login, user_agent).status_code == 401
    page.reload()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()  # this device stays signed in


def test_change_password_signs_out_the_other_devices(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    phone = api.login(email, IPHONE)
    page = device().sign_in(email)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("region", name="Change password").get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#account-notice")).to_have_text("Password changed. Your other devices were signed out.")
    expect(page.locator("#events li[data-type=password_changed]")).to_contain_text("Password changed")
    expect(page.locator("#devices li.device")).to_have_count(1)
    assert api.refresh(phone, IPHONE).status_code == 401


def test_delete_account_asks_for_confirmation(device: Callable[..., Device], api: Api) -> None:
    email = api.register()
    page = device().sign_in(email)
    page.get_by_role("button", name="Delete account…").click()
    dialog = page.get_by_role("dialog", name="Delete your account?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Password")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Delete account…").click()
    dialog.get_by_label("Password").fill("not my password")
    dialog.get_by_role("button", name="Delete account").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Password is incorrect")
    dialog.get_by_label("Password").fill(PASSWORD)
    dialog.get_by_role("button", name="Delete account").click()
    on_sign_in_page(page, "Your account has been deleted.")
    login = httpx.post(f"{api.base_url}{API}/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 401
