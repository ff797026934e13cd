"""Device info from real User-Agent strings: the parser, and what login and GET /sessions report."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from sessionward.sessions.devices import MAX_USER_AGENT, DeviceType, parse_device, same_device_family
from tests.conftest import API, CHROME_WINDOWS, FIREFOX_LINUX, Users

EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
IPHONE_CHROME = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.104 Mobile Safari/537.36"
)
ANDROID_CHROME_REDUCED = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)
ANDROID_FIREFOX_PHONE = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.104 Safari/537.36"
)
FIREFOX_PLAIN_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
MACOS_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)
MACOS_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"

# (user agent, browser, os, device)
CASES = [
    pytest.param(EDGE_WINDOWS, "Edge", "Windows", "Desktop", id="edge-windows"),
    pytest.param(CHROME_WINDOWS, "Chrome", "Windows", "Desktop", id="chrome-windows"),
    pytest.param(IPHONE_SAFARI, "Safari", "iOS", "Mobile", id="iphone-safari"),
    pytest.param(IPHONE_CHROME, "Chrome", "iOS", "Mobile", id="iphone-chrome"),
    pytest.param(IPAD_SAFARI, "Safari", "iOS", "Tablet", id="ipad-safari"),
    pytest.param(ANDROID_CHROME_PHONE, "Chrome", "Android", "Mobile", id="android-phone-chrome"),
    pytest.param(ANDROID_CHROME_REDUCED, "Chrome", "Android", "Mobile", id="android-phone-reduced-ua"),
    pytest.param(ANDROID_FIREFOX_PHONE, "Firefox", "Android", "Mobile", id="android-phone-firefox"),
    pytest.param(ANDROID_TABLET, "Chrome", "Android", "Tablet", id="android-tablet"),
    pytest.param(FIREFOX_LINUX, "Firefox", "Ubuntu", "Desktop", id="firefox-ubuntu"),
    pytest.param(FIREFOX_PLAIN_LINUX, "Firefox", "Linux", "Desktop", id="firefox-linux"),
    pytest.param(MACOS_SAFARI, "Safari", "macOS", "Desktop", id="macos-safari"),
    pytest.param(MACOS_CHROME, "Chrome", "macOS", "Desktop", id="macos-chrome"),
    pytest.param(GOOGLEBOT, "Googlebot", "Unknown", "Bot", id="googlebot"),
    pytest.param(GOOGLEBOT_SMARTPHONE, "Googlebot", "Android", "Bot", id="googlebot-smartphone"),
    pytest.param(BINGBOT, "bingbot", "Unknown", "Bot", id="bingbot"),
]
IP = "203.0.113.7"  # the conftest client's address


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize(("user_agent", "browser", "os", "device"), CASES)
def test_parse_device_names_browser_os_and_device_type(user_agent: str, browser: str, os: str, device: str) -> None:
    parsed = parse_device(user_agent, IP)
    assert (parsed.browser, parsed.os, parsed.device.value) == (browser, os, device)


@pytest.mark.parametrize("user_agent", ["", None], ids=["empty", "absent"])
def test_empty_user_agent_is_unknown_everything(user_agent: str | None) -> None:
    parsed = parse_device(user_agent, IP)
    assert (parsed.browser, parsed.os, parsed.device) == ("Unknown", "Unknown", DeviceType.UNKNOWN)
    info = parsed.info()
    assert info["userAgent"] == ""
    assert info["fingerprint"] == sha256_hex(IP)


@pytest.mark.parametrize("user_agent", ["curl/8.5.0", "asdf qwer", "\x00\x01", "Mozilla/5.0"])
def test_unrecognised_user_agents_are_never_a_known_device_type(user_agent: str) -> None:
    parsed = parse_device(user_agent, IP)
    assert parsed.device in {DeviceType.UNKNOWN, DeviceType.BOT}
    assert parsed.os == "Unknown"


def test_device_info_has_the_guides_fields_and_fingerprint_is_sha256_of_ua_plus_ip() -> None:
    info = parse_device(EDGE_WINDOWS, IP).info()
    assert info == {
        "fingerprint": sha256_hex(EDGE_WINDOWS + IP),
        "userAgent": EDGE_WINDOWS,
        "ip": IP,
        "browser": "Edge",
        "os": "Windows",
        "device": "Desktop",
    }


def test_fingerprint_differs_by_ip_and_by_user_agent() -> None:
    base = parse_device(EDGE_WINDOWS, IP).info()["fingerprint"]
    assert parse_device(EDGE_WINDOWS, "198.51.100.1").info()["fingerprint"] != base
    assert parse_device(CHROME_WINDOWS, IP).info()["fingerprint"] != base
    assert parse_device(EDGE_WINDOWS, None).info()["fingerprint"] == sha256_hex(EDGE_WINDOWS)


def test_over_long_user_agent_is_truncated_to_512_characters() -> None:
    long_ua = EDGE_WINDOWS + " " + "x" * 5000
    parsed = parse_device(long_ua, IP)
    assert MAX_USER_AGENT == 512
    assert parsed.user_agent == long_ua[:512]
    assert parsed.info()["fingerprint"] == sha256_hex(long_ua[:512] + IP)
    assert parsed.browser == "Edge"


def test_a_browser_update_is_the_same_device_family_but_another_browser_is_not() -> None:
    recorded = parse_device(CHROME_WINDOWS, IP).info()
    updated = CHROME_WINDOWS.replace("Chrome/131.0.0.0", "Chrome/132.0.0.0")
    assert same_device_family(recorded, parse_device(updated, "198.51.100.1"))
    assert not same_device_family(recorded, parse_device(EDGE_WINDOWS, IP))
    assert not same_device_family(recorded, parse_device(MACOS_CHROME, IP))


# ---------------------------------------------------------------- through the API


@pytest.mark.parametrize(("user_agent", "browser", "os", "device"), CASES)
async def test_login_and_session_list_report_the_same_device_info(
    client: httpx.AsyncClient, users: Users, user_agent: str, browser: str, os: str, device: str
) -> None:
    login = await users.login(await users.register(), user_agent=user_agent)
    reported = login.body["session"]["device_info"]
    assert reported == {
        "fingerprint": sha256_hex(user_agent + IP),
        "userAgent": user_agent,
        "ip": IP,
        "browser": browser,
        "os": os,
        "device": device,
    }
    listed = await client.get(f"{API}/sessions", headers={**login.auth, "user-agent": user_agent})
    assert listed.status_code == 200, listed.text
    current = listed.json()["data"]["current_session"]
    assert current["id"] == login.session_id
    assert current["device_info"] == reported


async def test_login_without_a_user_agent_records_an_unknown_device(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    request = client.build_request("POST", f"{API}/login", json={"email": email, "password": "correct horse battery"})
    del request.headers["user-agent"]
    response = await client.send(request)
    assert response.status_code == 200, response.text
    info = response.json()["data"]["session"]["device_info"]
    assert (info["browser"], info["os"], info["device"], info["userAgent"]) == ("Unknown", "Unknown", "Unknown", "")
    assert info["fingerprint"] == sha256_hex(IP)


async def test_login_with_an_over_long_user_agent_stores_512_characters(
    client: httpx.AsyncClient, users: Users
) -> None:
    long_ua = IPHONE_SAFARI + " " + "y" * 3000
    login = await users.login(await users.register(), user_agent=long_ua)
    info = login.body["session"]["device_info"]
    assert info["userAgent"] == long_ua[:512]
    assert info["fingerprint"] == sha256_hex(long_ua[:512] + IP)
    assert (info["browser"], info["os"], info["device"]) == ("Safari", "iOS", "Mobile")
    listed = (await client.get(f"{API}/sessions", headers=login.auth)).json()["data"]
    assert listed["current_session"]["device_info"] == info


async def test_each_device_is_listed_with_its_own_info(client: httpx.AsyncClient, users: Users) -> None:
    email = await users.register()
    phone = await users.login(email, user_agent=IPHONE_SAFARI)
    desktop = await users.login(email, user_agent=EDGE_WINDOWS)
    listed = (await client.get(f"{API}/sessions", headers=desktop.auth)).json()["data"]
    assert listed["current_session"]["id"] == desktop.session_id
    assert listed["current_session"]["device_info"]["browser"] == "Edge"
    (other,) = listed["other_sessions"]
    assert other["id"] == phone.session_id
    assert other["device_info"] == phone.body["session"]["device_info"]
    assert other["is_current"] is False


def test_linux_distributions_are_one_os_family_for_the_device_check() -> None:
    ubuntu = parse_device(FIREFOX_LINUX, "198.51.100.1")
    plain_linux = parse_device(FIREFOX_PLAIN_LINUX, "198.51.100.1")
    windows = parse_device("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", None)
    assert ubuntu.os != plain_linux.os
    assert same_device_family(ubuntu.info(), plain_linux)
    assert not same_device_family(ubuntu.info(), windows)
