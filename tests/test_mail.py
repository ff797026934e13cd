"""Account email against a real SMTP server: the test reads the mail that arrived, follows its link, and the
flow completes. Deliveries are driven here (``deliver``), the clock frozen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.outbox.tables import outbox
from tests.conftest import API, CHROME_WINDOWS, PASSWORD, Users
from tests.smtp import SmtpServer, link_in, token_in

NEW_PASSWORD = "a whole new passphrase"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(smtp: SmtpServer) -> dict[str, Any]:
    return {"smtp_url": smtp.url, "public_url": "https://auth.example.test"}


async def deliver(ctx: Context) -> None:
    while await ctx.outbox.deliver_due():
        pass


async def outcomes(ctx: Context) -> list[tuple[str | None, int]]:
    async with ctx.db.read() as conn:
        rows = (await conn.execute(select(outbox.c.outcome, outbox.c.attempts).order_by(outbox.c.id))).all()
    return [(row.outcome, row.attempts) for row in rows]


async def events(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    response = await client.get(f"{API}/events", headers=auth)
    return [event["type"] for event in response.json()["data"]["events"]]


async def test_registration_mails_a_verification_link_that_verifies_the_address(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    email = await users.register("ada@example.com")
    before = await users.login(email)
    assert (await client.get(f"{API}/me", headers=before.auth)).json()["data"]["user"]["email_verified_at"] is None
    await deliver(ctx)
    [mail] = smtp.inbox.to(email)
    assert mail["Subject"] == "Confirm your email address"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"]
    assert mail["Date"]
    assert mail["From"] == "sessionward <no-reply@localhost>"
    assert mail.get_body(preferencelist=("html",)) is not None
    assert link_in(mail).startswith("https://auth.example.test/verify-email#token=")

    response = await client.post(f"{API}/email/verify", json={"token": token_in(mail)})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["user"]["email_verified_at"] is not None
    me = await client.get(f"{API}/me", headers=before.auth)
    assert me.json()["data"]["user"]["email_verified_at"] is not None
    again = await client.post(f"{API}/email/verify", json={"token": token_in(mail)})
    assert again.status_code == 400
    assert again.json()["message"] == "This link is invalid or has expired"
    login = await users.login(email)
    assert "email_verified" in await events(client, login.auth)


async def test_a_locked_out_unverified_user_can_ask_for_a_link_and_then_sign_in(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer, make_settings: Any, clock: FrozenClock
) -> None:
    email = await users.register()
    strict = Context.build(make_settings(smtp_url=smtp.url, require_email_verification=True), clock=clock)
    transport = httpx.ASGITransport(app=__import__("sessionward.app").app.create_app(strict))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        refused = await c.post(f"{API}/login", json={"email": email, "password": PASSWORD})
        assert refused.status_code == 403
        asked = await c.post(f"{API}/email/verification", json={"email": email})
        assert asked.status_code == 202
        await deliver(strict)
        assert len(smtp.inbox.to(email)) == 2  # the one of registration, and this one
        verified = await c.post(f"{API}/email/verify", json={"token": token_in(smtp.inbox.to(email)[-1])})
        assert verified.status_code == 200
        signed_in = await c.post(f"{API}/login", json={"email": email, "password": PASSWORD})
        assert signed_in.status_code == 200
    await strict.close()


async def test_requests_for_unknown_or_verified_addresses_answer_alike_and_send_nothing(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    email = await users.register()
    await deliver(ctx)
    await client.post(f"{API}/email/verify", json={"token": token_in(smtp.inbox.to(email)[0])})
    answers = []
    for path, address in [
        ("email/verification", "nobody@example.com"),
        ("email/verification", email),
        ("password/forgot", "nobody@example.com"),
    ]:
        response = await client.post(f"{API}/{path}", json={"email": address})
        answers.append((response.status_code, response.json()))
    known = await client.post(f"{API}/password/forgot", json={"email": email})
    assert {(s, str(b)) for s, b in answers} == {(known.status_code, str(known.json()))}
    assert known.status_code == 202
    await deliver(ctx)
    assert len(smtp.inbox.messages) == 2  # registration's, and the reset link to the known account
    assert [o for o, _ in await outcomes(ctx)] == ["sent", "skipped", "skipped", "skipped", "sent"]


async def test_password_reset_replaces_the_password_ends_every_session_and_sends_a_notice(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    login = await users.signed_in()
    other = await users.login(login.email, user_agent=CHROME_WINDOWS)
    assert (await client.post(f"{API}/password/forgot", json={"email": login.email})).status_code == 202
    await deliver(ctx)
    reset_mail = smtp.inbox.to(login.email)[-1]
    assert reset_mail["Subject"] == "Reset your password"
    assert link_in(reset_mail).startswith("https://auth.example.test/reset-password#token=")

    body = {"token": token_in(reset_mail), "new_password": NEW_PASSWORD}
    response = await client.post(f"{API}/password/reset", json=body)
    assert response.status_code == 200, response.text
    for session in (login, other):
        assert (await client.get(f"{API}/me", headers=session.auth)).status_code == 401
    assert (await client.post(f"{API}/login", json={"email": login.email, "password": PASSWORD})).status_code == 401
    fresh = await users.login(login.email, NEW_PASSWORD)
    assert fresh.body["user"]["email_verified_at"] is not None
    assert {"password_reset_requested", "password_reset"} <= set(await events(client, fresh.auth))
    assert (await client.post(f"{API}/password/reset", json=body)).status_code == 400
    await deliver(ctx)
    assert smtp.inbox.to(login.email)[-1]["Subject"] == "Your password was reset"


async def test_a_reset_link_dies_when_the_password_changes(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    login = await users.signed_in()
    await client.post(f"{API}/password/forgot", json={"email": login.email})
    await deliver(ctx)
    token = token_in(smtp.inbox.to(login.email)[-1])
    changed = await client.post(
        f"{API}/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=login.auth
    )
    assert changed.status_code == 200
    response = await client.post(f"{API}/password/reset", json={"token": token, "new_password": "yet another one"})
    assert response.status_code == 400
    await users.login(login.email, NEW_PASSWORD)
    await deliver(ctx)
    assert smtp.inbox.to(login.email)[-1]["Subject"] == "Your password was changed"


async def test_tokens_of_another_purpose_expired_or_malformed_are_refused(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    email = await users.register()
    await client.post(f"{API}/password/forgot", json={"email": email})
    await deliver(ctx)
    verify_token, reset_token = (token_in(m) for m in smtp.inbox.to(email))
    wrong = await client.post(f"{API}/password/reset", json={"token": verify_token, "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400
    assert (await client.post(f"{API}/email/verify", json={"token": reset_token})).status_code == 400
    assert (await client.post(f"{API}/email/change/confirm", json={"token": reset_token})).status_code == 400
    for bad in ("short", "x" * 513, 42, None):
        response = await client.post(f"{API}/email/verify", json={"token": bad})
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "token"
    clock.advance(timedelta(hours=1, seconds=1))  # PASSWORD_RESET_EXPIRES_IN
    late = await client.post(f"{API}/password/reset", json={"token": reset_token, "new_password": NEW_PASSWORD})
    assert late.status_code == 400
    assert (await client.post(f"{API}/email/verify", json={"token": verify_token})).status_code == 200
    await users.login(email)  # the password is the old one: the refused reset changed nothing


async def test_email_change_confirms_at_the_new_address_and_tells_the_old_one(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    login = await users.signed_in()
    taken = await users.register("taken@example.com")
    new = "ada.new@example.com"
    wrong = await client.post(f"{API}/email/change", json={"new_email": new, "password": "nope"}, headers=login.auth)
    assert wrong.status_code == 403
    clash = await client.post(
        f"{API}/email/change", json={"new_email": taken, "password": PASSWORD}, headers=login.auth
    )
    assert clash.status_code == 409
    asked = await client.post(f"{API}/email/change", json={"new_email": new, "password": PASSWORD}, headers=login.auth)
    assert asked.status_code == 202
    await deliver(ctx)
    [confirm] = smtp.inbox.to(new)
    assert smtp.inbox.to(login.email)[-1]["Subject"] == "Your email address is about to change"
    assert link_in(confirm).startswith("https://auth.example.test/verify-email#change=")

    response = await client.post(f"{API}/email/change/confirm", json={"token": token_in(confirm)})
    assert response.status_code == 200, response.text
    user = response.json()["data"]["user"]
    me = await client.get(f"{API}/me", headers=login.auth)  # this process's cached view of the session followed
    assert me.json()["data"]["user"]["email"] == new
    assert user["email"] == new
    assert user["email_verified_at"] is not None
    assert (await client.post(f"{API}/email/change/confirm", json={"token": token_in(confirm)})).status_code == 400
    fresh = await users.login(new)
    assert "email_changed" in await events(client, fresh.auth)
    await deliver(ctx)
    assert smtp.inbox.to(login.email)[-1]["Subject"] == "Your email address was changed"


async def test_an_address_taken_before_the_change_is_confirmed_is_a_conflict(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    login = await users.signed_in()
    new = "wanted@example.com"
    await client.post(f"{API}/email/change", json={"new_email": new, "password": PASSWORD}, headers=login.auth)
    await deliver(ctx)
    await users.register(new)
    response = await client.post(f"{API}/email/change/confirm", json={"token": token_in(smtp.inbox.to(new)[0])})
    assert response.status_code == 409
    assert (await client.get(f"{API}/me", headers=login.auth)).json()["data"]["user"]["email"] == login.email


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("register", {"email": "eve@example.com", "password": PASSWORD, "name": "Eve\r\nBcc: all@example.com"}),
        ("register", {"email": "eve@example.com\r\nBcc: all@example.com", "password": PASSWORD}),
        ("email/verification", {"email": "eve@example.com\nBcc: all@example.com"}),
        ("password/forgot", {"email": "eve@example.com\r\nX: y"}),
    ],
)
async def test_line_breaks_in_names_or_addresses_are_refused(
    client: httpx.AsyncClient, ctx: Context, path: str, body: dict[str, str]
) -> None:
    response = await client.post(f"{API}/{path}", json=body)
    assert response.status_code == 400
    assert await outcomes(ctx) == []


async def test_line_breaks_in_a_new_address_are_refused(client: httpx.AsyncClient, users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    body = {"new_email": "x@example.com\r\nBcc: all@example.com", "password": PASSWORD}
    assert (await client.post(f"{API}/email/change", json=body, headers=login.auth)).status_code == 400
    assert len(await outcomes(ctx)) == 1  # registration's verification only


async def test_mail_requests_are_limited_per_address_alike_for_known_and_unknown(
    client: httpx.AsyncClient, users: Users
) -> None:
    email = await users.register()
    for address in (email, "nobody@example.com"):
        statuses = [
            (await client.post(f"{API}/password/forgot", json={"email": address})).status_code for _ in range(4)
        ]
        assert statuses == [202, 202, 202, 429]
    limited = await client.post(f"{API}/password/forgot", json={"email": email})
    assert limited.headers["retry-after"]


async def test_a_sign_in_from_a_new_browser_and_os_sends_an_alert_once(
    users: Users, ctx: Context, smtp: SmtpServer
) -> None:
    login = await users.signed_in()  # the first sign-in of an account: nothing to compare with
    await users.login(login.email)  # the same browser and OS
    await deliver(ctx)
    assert [m["Subject"] for m in smtp.inbox.to(login.email)] == ["Confirm your email address"]
    await users.login(login.email, user_agent=CHROME_WINDOWS)
    await users.login(login.email, user_agent=CHROME_WINDOWS)
    await deliver(ctx)
    alerts = [m for m in smtp.inbox.to(login.email) if m["Subject"] == "New sign-in to your account"]
    assert len(alerts) == 1
    text = alerts[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Chrome on Windows" in text
    assert "203.0.113.7" in text


@pytest.mark.parametrize("settings_overrides", [{"new_device_alerts": False}])
async def test_new_device_alerts_can_be_switched_off(users: Users, ctx: Context) -> None:
    login = await users.signed_in()
    await users.login(login.email, user_agent=CHROME_WINDOWS)
    assert len(await outcomes(ctx)) == 1  # registration's verification only


async def test_reuse_detection_mails_we_signed_out_a_device(
    client: httpx.AsyncClient, users: Users, ctx: Context, smtp: SmtpServer, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    body = {"refresh_token": login.refresh, "session_id": login.session_id}
    assert (await client.post(f"{API}/refresh", json=body)).status_code == 200
    clock.advance(timedelta(seconds=11))  # past the grace
    assert (await client.post(f"{API}/refresh", json=body)).status_code == 401
    await deliver(ctx)
    alert = smtp.inbox.to(login.email)[-1]
    assert alert["Subject"] == "We signed out a device"
    assert "Firefox on Ubuntu" in alert.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
