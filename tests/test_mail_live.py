"""Mail with real servers: two processes sharing one outbox, a server killed with mails pending, an SMTP server
that takes 30 s to answer. Counted at a real SMTP server."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from sessionward.db import Database
from sessionward.outbox.tables import outbox
from tests.conftest import API
from tests.live import LiveServer
from tests.smtp import SmtpServer

pytestmark = pytest.mark.live
ENV = {"RATE_LIMIT_ENABLED": "false"}


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def register(server: LiveServer, email: str) -> None:
    response = httpx.post(f"{server.base_url}{API}/register", json={"email": email, "password": "x" * 12}, timeout=10)
    assert response.status_code == 201, response.text


def test_two_processes_sharing_one_outbox_send_each_mail_once(
    tmp_path: Path, database_url: str, smtp: SmtpServer
) -> None:
    servers = [
        LiveServer(tmp_path, database_url=database_url, workers=2, env={**ENV, "SMTP_URL": smtp.url}) for _ in range(2)
    ]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.start(), servers))
        emails = [f"user{n}@example.com" for n in range(120)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: register(servers[n % 2], emails[n]), range(len(emails))))
        smtp.inbox.wait_for(len(emails), timeout=30)
        time.sleep(2)  # any second copy would have arrived by now
    finally:
        for server in servers:
            server.stop()
    ids = [m["Message-ID"] for m in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == len(emails)
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(emails)


def test_mails_pending_when_the_server_is_killed_go_out_after_the_restart(
    tmp_path: Path, database_url: str, smtp: SmtpServer
) -> None:
    smtp.stop()  # down: the mails wait in the outbox
    env = {**ENV, "SMTP_URL": smtp.url}
    server = LiveServer(tmp_path, database_url=database_url, env=env).start()
    emails = [f"pending{n}@example.com" for n in range(5)]
    for email in emails:
        register(server, email)
    server.stop(signal.SIGKILL)

    async def make_due() -> None:  # what waiting for the retry would do, without the wait
        db = Database(database_url)
        try:
            async with db.transaction() as tx:
                now = datetime.now(UTC)
                await tx.conn.execute(update(outbox).values(due_at=now, leased_until=None))
        finally:
            await db.dispose()

    asyncio.run(make_due())
    smtp.start()
    server = LiveServer(tmp_path, database_url=database_url, env=env).start()
    try:
        smtp.inbox.wait_for(len(emails), timeout=15)
        time.sleep(1.5)
    finally:
        server.stop()
    assert sorted(m["To"] for m in smtp.inbox.messages) == emails


def test_an_smtp_server_that_takes_30_seconds_slows_no_request(
    tmp_path: Path, database_url: str, smtp: SmtpServer
) -> None:
    smtp.inbox.delay_seconds = 30
    server = LiveServer(tmp_path, database_url=database_url, env={**ENV, "SMTP_URL": smtp.url}).start()
    try:
        started = time.monotonic()
        register(server, "slow@example.com")  # its mail now waits on the server
        slowest = 0.0
        while time.monotonic() - started < 20:
            before = time.monotonic()
            register(server, f"u{int(before * 1000)}@example.com")
            login = httpx.post(
                f"{server.base_url}{API}/login", json={"email": "slow@example.com", "password": "x" * 12}, timeout=10
            )
            assert login.status_code == 200
            slowest = max(slowest, time.monotonic() - before)
        print(f"SLOW_SMTP slowest register+login {slowest * 1000:.0f} ms")
        assert slowest < 5  # nowhere near the server's 30 s
        smtp.inbox.wait_for(1, timeout=20)
        assert smtp.inbox.messages[0]["To"] == "slow@example.com"
    finally:
        server.stop()
