"""The outbox's delivery of mail against a real SMTP server that is down, refuses, or asks for TLS; two
senders on one outbox; the .eml files of a machine without SMTP_URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.outbox.sender import RETRY_FOR
from sessionward.outbox.tables import outbox
from tests.conftest import API, FIREFOX_LINUX, Users
from tests.smtp import SmtpServer, token_in
from tests.test_mail import deliver


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(smtp: SmtpServer) -> dict[str, Any]:
    return {"smtp_url": smtp.url}


async def rows(ctx: Context) -> list[Any]:
    async with ctx.db.read() as conn:
        return list((await conn.execute(select(outbox).order_by(outbox.c.id))).all())


async def test_a_server_that_is_down_is_retried_within_30_seconds_and_the_mail_arrives_once(
    users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    smtp.stop()
    email = await users.register()
    await deliver(ctx)
    [row] = await rows(ctx)
    assert row.done_at is None
    assert row.attempts == 1
    assert timedelta(0) < row.due_at - clock.now() <= timedelta(seconds=30)
    smtp.start()
    await deliver(ctx)  # not due yet
    assert smtp.inbox.messages == []
    clock.advance(timedelta(seconds=30))
    await deliver(ctx)
    clock.advance(timedelta(hours=2))
    await deliver(ctx)
    assert len(smtp.inbox.to(email)) == 1
    [row] = await rows(ctx)
    assert row.outcome == "sent"
    assert row.attempts == 2


async def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_not(
    users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    smtp.inbox.refuse = "451 4.3.0 try again later"
    first = await users.register()
    await deliver(ctx)
    smtp.inbox.refuse = "550 5.1.1 no such mailbox"
    second = await users.register()
    await deliver(ctx)
    smtp.inbox.refuse = None
    clock.advance(timedelta(minutes=5))
    await deliver(ctx)
    assert len(smtp.inbox.to(first)) == 1
    assert smtp.inbox.to(second) == []
    one, two = await rows(ctx)
    assert (one.outcome, one.attempts) == ("sent", 2)
    assert (two.outcome, two.attempts, two.detail) == ("failed", 1, "550 5.1.1 no such mailbox")


async def test_retries_go_on_for_24_hours_with_growing_waits_then_the_mail_is_failed(
    users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    smtp.inbox.refuse = "421 4.7.0 busy"
    await users.register()
    written_at = clock.now()
    waits = []
    for _ in range(100):
        await deliver(ctx)
        [row] = await rows(ctx)
        if row.done_at is not None:
            break
        waits.append(row.due_at - clock.now())
        clock.advance(row.due_at - clock.now())
    assert row.outcome == "failed"
    assert row.done_at - written_at >= RETRY_FOR
    assert waits[0] <= timedelta(seconds=30)
    assert waits[5] > waits[0] * 4
    assert max(waits) <= timedelta(hours=1)
    assert smtp.inbox.messages == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_mail_goes_over_starttls_with_a_login_or_implicit_tls(
    tmp_path: Path, make_settings: Any, clock: FrozenClock, mode: str
) -> None:
    server = SmtpServer(tmp_path, mode).start()
    ctx = Context.build(make_settings(smtp_url=server.url, smtp_ca_file=server.cert), clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t") as c:
            response = await c.post(f"{API}/register", json={"email": "tls@example.com", "password": "x" * 12})
            assert response.status_code == 201
        await deliver(ctx)
        [mail] = server.inbox.to("tls@example.com")
        assert token_in(mail)
    finally:
        server.stop()
        await ctx.close()


async def test_a_certificate_nobody_vouches_for_is_not_trusted(
    tmp_path: Path, make_settings: Any, clock: FrozenClock
) -> None:
    server = SmtpServer(tmp_path, "tls").start()
    ctx = Context.build(make_settings(smtp_url=server.url), clock=clock)  # no SMTP_CA_FILE
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t") as c:
            await c.post(f"{API}/register", json={"email": "tls@example.com", "password": "x" * 12})
        await deliver(ctx)
        assert server.inbox.messages == []
        [row] = await rows(ctx)
        assert row.done_at is None
        assert row.attempts == 1
    finally:
        server.stop()
        await ctx.close()


async def test_two_senders_on_one_outbox_deliver_each_mail_once(
    smtp: SmtpServer, make_settings: Any, clock: FrozenClock
) -> None:
    one, other = (
        Context.build(make_settings(smtp_url=smtp.url, rate_limit_enabled=False), clock=clock) for _ in range(2)
    )
    one.outbox.batch = other.outbox.batch = 7
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(one)), base_url="http://t") as c:
            emails = [f"user{n}@example.com" for n in range(60)]
            for email in emails:
                assert (await c.post(f"{API}/register", json={"email": email, "password": "x" * 12})).status_code == 201
        await asyncio.gather(deliver(one), deliver(other), deliver(one), deliver(other))
    finally:
        await other.close()
        await one.close()
    ids = [m["Message-ID"] for m in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == 60
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(emails)


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_without_smtp_url_mails_are_files_and_the_link_is_logged(
    users: Users, ctx: Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    email = await users.register()
    with caplog.at_level(logging.INFO, logger="sessionward.mail.delivery"):
        await deliver(ctx)
    [path] = (tmp_path / "var" / "mail").glob("*.eml")
    text = path.read_text()
    assert f"To: {email}" in text
    assert "/verify-email#token=" in text
    [logged] = [r for r in caplog.records if r.getMessage() == "mail written"]
    assert str(logged.link).startswith("http://127.0.0.1:8000/verify-email#token=")  # type: ignore[attr-defined]


async def test_a_slow_server_holds_no_request(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    smtp.inbox.delay_seconds = 3
    login = await users.signed_in()
    sending = asyncio.create_task(deliver(ctx))
    await asyncio.sleep(0.5)  # the sender is waiting on the server
    assert not sending.done()
    for _ in range(5):
        me = await client.get(f"{API}/me", headers={**login.auth, "user-agent": FIREFOX_LINUX})
        assert me.status_code == 200
    assert not sending.done()
    await sending
    assert len(smtp.inbox.messages) == 1


async def test_cleanup_removes_finished_rows_and_expired_tokens_after_the_retention(
    users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    from sessionward.jobs.cleanup import cleanup
    from sessionward.mail.tables import mail_tokens

    await users.register()
    await deliver(ctx)
    smtp.stop()
    await users.register()  # its mail waits: kept however old
    clock.advance(timedelta(days=2, hours=1))  # past the link's 24 h, then TOKEN_RETENTION's 1 d
    counts = await cleanup(ctx)
    assert counts is not None
    assert (counts["outbox"], counts["mail_tokens"]) == (1, 1)
    [left] = await rows(ctx)
    assert left.done_at is None
    async with ctx.db.read() as conn:
        assert (await conn.execute(select(mail_tokens))).all() == []


async def test_a_deployers_template_replaces_the_built_in_one_and_a_broken_one_fails_only_its_mail(
    tmp_path: Path, make_settings: Any, clock: FrozenClock, smtp: SmtpServer
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "verify_email.txt").write_text("Subject: Welcome to Example\n\nConfirm here: {{ link }}\n")
    (templates / "reset_password.txt").write_text("Subject: Reset\n\n{{ no_such_value }}\n")
    ctx = Context.build(make_settings(smtp_url=smtp.url, mail_templates_dir=templates), clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t") as c:
            await c.post(f"{API}/register", json={"email": "a@example.com", "password": "x" * 12})
            await c.post(f"{API}/password/forgot", json={"email": "a@example.com"})
            await c.post(f"{API}/register", json={"email": "b@example.com", "password": "x" * 12})
        await deliver(ctx)
        assert [m["Subject"] for m in smtp.inbox.messages] == ["Welcome to Example", "Welcome to Example"]
        assert token_in(smtp.inbox.messages[0])
        html = smtp.inbox.messages[0].get_body(preferencelist=("html",))
        assert html is not None  # the HTML part is still the built-in one
        assert [(r.outcome, r.detail) for r in await rows(ctx)] == [
            ("sent", "2.0.0 OK queued"),
            ("failed", "cannot compose: UndefinedError"),
            ("sent", "2.0.0 OK queued"),
        ]
    finally:
        await ctx.close()
