"""Screenshots of the web pages for the README: sign in, create account and the account page, in light and
dark, at desktop (1280 px) and phone (390 px) width, into docs/.

    .venv/bin/python scripts/screenshots.py        # needs the dev extras and /usr/bin/chromium

It stages a month of history for one user through the service itself (a frozen clock set in the past: sign-ins
from four devices, a password change, a device signed out, a detected token reuse), serves it with
`sessionward serve` on a free port, signs in with Chromium like a person, and captures the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from sessionward.audit.service import EventType
from sessionward.clock import FrozenClock
from sessionward.config import load_settings
from sessionward.context import Context
from sessionward.errors import AppError
from sessionward.migrations import upgrade_sync
from sessionward.sessions import service as sessions
from sessionward.sessions.devices import parse_device
from sessionward.tokens import service as tokens
from sessionward.users import service as users

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL, PASSWORD, NAME = "ada@example.com", "correct horse battery", "Ada Lovelace"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
UA = {
    "firefox": "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "ipad": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "android": "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
}
IP = {  # documentation addresses (RFC 5737)
    "firefox": "198.51.100.23",
    "ipad": "203.0.113.54",
    "android": "192.0.2.77",
    "iphone": "203.0.113.9",
    "edge": "198.51.100.140",
}
ENV = {
    "ARGON2_MEMORY_KIB": "8192",  # a demo: quick to hash, still argon2id
    "ARGON2_TIME_COST": "1",
    "ARGON2_PARALLELISM": "1",
    "CLEANUP_SCHEDULE": "off",
    "RATE_LIMIT_ENABLED": "false",
    "JWT_SECRET": "screenshot-demo-secret-with-32-bytes-or-more",
    "LOG_LEVEL": "WARNING",
}
SHOTS = [  # (file stem, path)
    ("signin", "/signin"),
    ("signup", "/signup"),
    ("forgot", "/forgot-password"),
    ("reset", "/reset-password#token=the-token-of-a-reset-mail"),
    ("verify", "/verify-email"),
    ("account", "/"),
]
SIZES = {  # viewport, device pixel ratio, the browser it stands for
    "desktop": ({"width": 1280, "height": 800}, 1, CHROME_MAC),
    "phone": ({"width": 390, "height": 844}, 2, PIXEL),
}


async def stage_history(folder: Path) -> None:
    """A month of one user's account, written through the services with a clock that walks up to now."""
    settings = load_settings(database_url=f"sqlite:///{folder / 'demo.db'}", data_dir=folder, **ENV)
    now = datetime.now(UTC)
    clock = FrozenClock(now - timedelta(days=30))
    ctx = Context.build(settings, clock=clock)

    def at(ago: timedelta) -> None:
        clock._now = now - ago

    async def login(name: str, ago: timedelta) -> tokens.TokenPair:
        at(ago)
        result = await sessions.login(ctx, email=EMAIL, password=PASSWORD, device=parse_device(UA[name], IP[name]))
        ids[name] = result.session["id"]
        return result.tokens

    async def refresh(name: str, token: str, ago: timedelta) -> tokens.TokenPair:
        at(ago)
        return await tokens.refresh(ctx, presented=token, session_id=ids[name], device=parse_device(UA[name], IP[name]))

    ids: dict[str, str] = {}
    try:
        at(timedelta(days=30))
        await users.create(ctx, email=EMAIL, password=PASSWORD, name=NAME, device=parse_device(UA["firefox"], None))
        firefox = await login("firefox", timedelta(days=9))
        at(timedelta(days=8, hours=3))
        with contextlib.suppress(AppError):  # a failed sign-in attempt, for the history
            await users.authenticate(ctx, email=EMAIL, password="correct horse battery staple")
        firefox = await refresh("firefox", firefox.refresh, timedelta(days=6))
        principal = await tokens.authenticate(ctx, firefox.access.token)
        device = parse_device(UA["firefox"], IP["firefox"])
        await sessions.change_password(ctx, principal, current=PASSWORD, new=PASSWORD, device=device)
        await login("ipad", timedelta(days=5))
        at(timedelta(days=4))
        await sessions.revoke_one(ctx, principal, session_id=ids["ipad"], event=EventType.SESSION_REVOKED)
        android = await login("android", timedelta(days=3, hours=2))
        await refresh("android", android.refresh, timedelta(days=3, hours=1))
        with contextlib.suppress(AppError):  # the rotated token again, an hour later: reuse, session revoked
            await refresh("android", android.refresh, timedelta(days=3))
        iphone = await login("iphone", timedelta(days=2))
        await refresh("iphone", iphone.refresh, timedelta(hours=3))
        await refresh("firefox", firefox.refresh, timedelta(days=2))
        edge = await login("edge", timedelta(days=1))
        await refresh("edge", edge.refresh, timedelta(minutes=5))
    finally:
        await ctx.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DATABASE_", "DATA_DIR", "REDIS_"))},
        **ENV,
        "DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
        "DATA_DIR": str(folder),
    }
    command = [sys.executable, "-m", "sessionward", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("sessionward serve did not start")


def capture(base: str) -> list[Path]:
    """One browser profile per width, each signed in once (so the device list shows each once); light and dark
    are the same page with the other `prefers-color-scheme`."""
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for size, (viewport, scale, user_agent) in SIZES.items():
            context = browser.new_context(
                base_url=base,
                viewport=viewport,
                device_scale_factor=scale,
                user_agent=user_agent,
                locale="en-GB",
                reduced_motion="reduce",
            )
            page = context.new_page()
            for stem, path in SHOTS:
                if path == "/":
                    sign_in(page)
                else:
                    page.goto(path)
                    expect(page.locator("form:visible").first).to_be_visible()
                    page.evaluate("document.activeElement.blur()")
                for scheme in ("light", "dark"):
                    page.emulate_media(color_scheme=scheme)
                    target = DOCS / f"{stem}-{scheme}-{size}.png"
                    page.screenshot(path=str(target), full_page=True, animations="disabled", caret="hide")
                    written.append(target)
            context.close()
        browser.close()
    return written


def sign_in(page: Page) -> None:
    page.goto("/signin")
    form = page.get_by_role("region", name="Sign in")
    form.get_by_label("Email").fill(EMAIL)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#events li.event").nth(5)).to_be_visible()
    page.evaluate("document.activeElement.blur()")


def main() -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sessionward-screenshots-") as tmp:
        folder = Path(tmp)
        upgrade_sync(f"sqlite:///{folder / 'demo.db'}")
        asyncio.run(stage_history(folder))
        process, base = serve(folder)
        try:
            for path in capture(base):
                print(path.relative_to(ROOT))
        finally:
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
