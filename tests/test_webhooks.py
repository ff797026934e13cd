"""Webhooks: signed as Standard Webhooks, verified by its library in a real HTTP receiver; retried, in order per
user, disabled after 24 h of failure; the admin API and the CLI."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.outbox.tables import outbox
from sessionward.users.models import Role
from sessionward.users.service import create as create_user
from sessionward.webhooks.tables import webhook_endpoints
from tests.conftest import API, PASSWORD, Login, Users, refresh, refresh_status
from tests.live import free_port
from tests.receiver import Receiver

ADMIN = "/api/v1/admin/webhooks"
ALL_EVENTS = [
    "user.created",
    "user.deleted",
    "session.created",
    "session.revoked",
    "refresh_token.reused",
    "password.changed",
    "mfa.changed",
]


async def admin_of(ctx: Context, users: Users) -> Login:
    await create_user(ctx, email="admin@example.com", password=PASSWORD, name=None, role=Role.ADMIN)
    return await users.login("admin@example.com")


async def add_endpoint(client: httpx.AsyncClient, admin: Login, url: str, events: list[str] | None = None) -> str:
    response = await client.post(ADMIN, json={"url": url, "events": events or ALL_EVENTS}, headers=admin.auth)
    assert response.status_code == 201, response.text
    secret: str = response.json()["data"]["secret"]
    assert secret.startswith("whsec_")
    return secret


async def deliver(ctx: Context) -> None:
    while await ctx.outbox.deliver_due():
        pass


async def pending(ctx: Context) -> list[Any]:
    async with ctx.db.read() as conn:
        stmt = select(outbox).where(outbox.c.kind == "webhook", outbox.c.done_at.is_(None)).order_by(outbox.c.id)
        return list((await conn.execute(stmt)).all())


def of_user(receiver: Receiver, user_id: int) -> list[str]:
    return [item["type"] for item in receiver.received if item["data"]["user_id"] == user_id]


async def test_each_event_arrives_signed_in_order_with_its_data(
    ctx: Context, client: httpx.AsyncClient, users: Users, receiver: Receiver
) -> None:
    admin = await admin_of(ctx, users)
    receiver.secret = await add_endpoint(client, admin, receiver.url)
    login = await users.signed_in()
    first = login.refresh
    assert await refresh_status(client, login) == 200
    assert await refresh_status(client, login) == 200
    assert (await refresh(client, first, login.session_id)).status_code == 401  # reuse: the session ends
    again = await users.login(login.email)
    other = await users.login(login.email)
    changed = await client.post(
        f"{API}/password", json={"current_password": PASSWORD, "new_password": PASSWORD + "2"}, headers=again.auth
    )
    assert changed.status_code == 200, changed.text
    deleted = await client.request("DELETE", f"{API}/me", json={"password": PASSWORD + "2"}, headers=again.auth)
    assert deleted.status_code == 200, deleted.text
    await deliver(ctx)

    assert of_user(receiver, login.user_id) == [
        "user.created",
        "session.created",
        "refresh_token.reused",
        "session.revoked",
        "session.created",
        "session.created",
        "session.revoked",  # the other session, by the password change
        "password.changed",
        "session.revoked",  # the last one, by the deletion
        "user.deleted",
    ]
    received = [item for item in receiver.received if item["data"]["user_id"] == login.user_id]
    assert len(received) == 10
    by_type = {item["type"]: item for item in received}
    assert by_type["user.created"]["data"]["email"] == login.email
    assert by_type["session.created"]["data"]["aal"] == "aal1"
    assert by_type["refresh_token.reused"]["data"]["session_id"] == login.session_id
    revoked = [item["data"] for item in received if item["type"] == "session.revoked"]
    assert revoked == [
        {"user_id": login.user_id, "session_id": login.session_id, "reason": "reused"},
        {"user_id": login.user_id, "session_id": other.session_id, "reason": "password_changed"},
        {"user_id": login.user_id, "session_id": again.session_id, "reason": "revoked"},
    ]
    assert by_type["password.changed"]["data"]["how"] == "change"
    assert len({item["id"] for item in receiver.received}) == len(receiver.received)
    assert await pending(ctx) == []


async def test_a_failing_receiver_gets_the_same_id_again_and_a_users_events_wait_in_order(
    ctx: Context, client: httpx.AsyncClient, users: Users, receiver: Receiver, clock: FrozenClock
) -> None:
    admin = await admin_of(ctx, users)
    receiver.secret = await add_endpoint(client, admin, receiver.url, ["session.created", "session.revoked"])
    receiver.answer = 500
    login = await users.signed_in()
    await deliver(ctx)
    assert len(receiver.attempts) == 1  # session.created failed; nothing after it for this user was tried
    assert (await client.post(f"{API}/logout", json={}, headers=login.auth)).status_code == 200
    await deliver(ctx)
    assert len(receiver.attempts) == 1
    receiver.answer = 204
    clock.advance(timedelta(minutes=2))  # past the first retry's backoff (30 s at most)
    await deliver(ctx)
    assert receiver.attempts[0] == receiver.attempts[1]  # at least once, under one webhook-id
    assert [item["type"] for item in receiver.received] == ["session.created", "session.revoked"]
    listed = (await client.get(ADMIN, headers=admin.auth)).json()["data"]["webhooks"]
    assert [(hook["state"], hook["last_error"]) for hook in listed] == [("active", None)]


@pytest.mark.parametrize(
    "fault", ["500", "redirect", "refused", "unresolvable"], ids=["500", "redirect", "refused", "unresolvable"]
)
async def test_a_receiver_failing_for_24_hours_is_retried_then_disabled_and_listed_so(
    ctx: Context, client: httpx.AsyncClient, users: Users, receiver: Receiver, clock: FrozenClock, fault: str
) -> None:
    admin = await admin_of(ctx, users)
    url = {
        "500": receiver.url,
        "redirect": receiver.url,
        "refused": f"http://127.0.0.1:{free_port()}/hooks",
        "unresolvable": "http://webhooks.sessionward.invalid/hooks",
    }[fault]
    receiver.secret = await add_endpoint(client, admin, url, ["session.created"])
    receiver.answer = 302 if fault == "redirect" else 500
    await users.signed_in()
    await deliver(ctx)
    [row] = await pending(ctx)
    assert row.attempts == 1
    assert (
        row.detail
        == {
            "500": "HTTP 500",
            "redirect": "HTTP 302",
            "refused": "cannot connect: ConnectError",
            "unresolvable": "cannot connect: ConnectError",
        }[fault]
    )
    listed = (await client.get(ADMIN, headers=admin.auth)).json()["data"]["webhooks"]
    assert listed[0]["state"] == "failing"
    for _ in range(30):  # the backoff doubles up to an hour: past 24 h within 30 retries
        clock.advance(timedelta(hours=1))
        await deliver(ctx)
    assert await pending(ctx) == []
    admin = await users.login("admin@example.com")  # a day later
    listed = (await client.get(ADMIN, headers=admin.auth)).json()["data"]["webhooks"]
    assert listed[0]["state"] == "disabled"
    assert listed[0]["disabled_at"] is not None
    await users.signed_in()  # a disabled endpoint takes no new events
    assert await pending(ctx) == []
    assert receiver.received == []


async def test_a_slow_receiver_holds_up_no_other_endpoint_and_no_request(
    ctx: Context, client: httpx.AsyncClient, users: Users, receiver: Receiver
) -> None:
    admin = await admin_of(ctx, users)
    await add_endpoint(client, admin, receiver.url.replace("/hooks", "/slow"), ["session.created"])
    receiver.secret = await add_endpoint(client, admin, receiver.url, ["session.created"])
    login = await users.signed_in()
    started = time.monotonic()
    sending = asyncio.create_task(deliver(ctx))
    while not receiver.received:
        assert time.monotonic() - started < 5, "the fast endpoint waited for the slow one"
        await asyncio.sleep(0.05)
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200
    assert not sending.done()  # the slow one is still being waited for
    await sending
    [row] = await pending(ctx)
    assert row.detail == "no answer within 10 s"


async def test_the_admin_api_refuses_non_admins_bad_urls_unknown_events_and_fields(
    ctx: Context, client: httpx.AsyncClient, users: Users
) -> None:
    admin = await admin_of(ctx, users)
    user = await users.signed_in()
    good = {"url": "https://app.example.test/hooks", "events": ["session.revoked"]}
    assert (await client.get(ADMIN, headers=user.auth)).status_code == 403
    assert (await client.post(ADMIN, json=good, headers=user.auth)).status_code == 403
    for bad in (
        {**good, "url": "ftp://app.example.test/hooks"},
        {**good, "url": "https:///no-host"},
        {**good, "events": ["session.exploded"]},
        {**good, "events": []},
        {**good, "secret": "mine"},
        {"url": good["url"]},
    ):
        response = await client.post(ADMIN, json=bad, headers=admin.auth)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["status"] == "fail"
    async with ctx.db.read() as conn:
        assert (await conn.execute(select(webhook_endpoints))).all() == []
    made = await client.post(ADMIN, json=good, headers=admin.auth)
    hook = made.json()["data"]["webhook"]
    assert hook["state"] == "active"
    assert "secret" not in hook
    async with ctx.db.read() as conn:
        [row] = (await conn.execute(select(webhook_endpoints))).all()
    assert made.json()["data"]["secret"].encode() not in row.secret_sealed  # sealed, not in plain text
    assert (await client.delete(f"{ADMIN}/{hook['id']}", headers=user.auth)).status_code == 403
    assert (await client.delete(f"{ADMIN}/{hook['id']}", headers=admin.auth)).status_code == 200
    assert (await client.delete(f"{ADMIN}/{hook['id']}", headers=admin.auth)).status_code == 404
    assert (await client.get(ADMIN, headers=admin.auth)).json()["data"]["webhooks"] == []
