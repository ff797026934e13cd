"""The outbox's handler for webhooks: each row signed (Standard Webhooks) and posted to its endpoint.

The rows of a batch go out at once (at most ``PARALLEL``), each with a 10 s timeout: a slow or dead receiver
holds up neither the others nor mail. A 2xx is delivered; anything else (another status, a redirect, a timeout,
a name that does not resolve, a refused connection) is retried with the outbox's backoff, and an endpoint that
has failed without a success for 24 hours is disabled.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record
from sessionward.errors import not_found
from sessionward.outbox.sender import Outcome, Result
from sessionward.webhooks import store
from sessionward.webhooks.service import SECRET_PURPOSE

TIMEOUT_SECONDS = 10.0
PARALLEL = 8
DISABLE_AFTER = timedelta(hours=24)


def signed(secret: str, message: dict[str, Any], *, at: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: the id is the event's, the timestamp the attempt's."""
    body = orjson.dumps({key: message[key] for key in ("type", "timestamp", "data")})
    signature = Webhook(secret).sign(message["id"], at, body.decode())
    headers = {
        "content-type": "application/json",
        "user-agent": "sessionward-webhooks",
        "webhook-id": message["id"],
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers


async def post(http: httpx.AsyncClient, url: str, secret: str, message: dict[str, Any], *, at: datetime) -> str | None:
    """One attempt; ``None`` if the receiver took it (a 2xx), else what went wrong."""
    body, headers = signed(secret, message, at=at)
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return f"no answer within {TIMEOUT_SECONDS:.0f} s"
    except httpx.HTTPError as exc:  # refused, reset, a name that does not resolve, an invalid URL
        return f"cannot connect: {type(exc).__name__}"
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)


class WebhookDelivery:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def deliver(self, rows: Sequence[Record], leased: Callable[[], bool]) -> AsyncIterator[tuple[Record, Result]]:
        async with self.ctx.db.read() as conn:
            found = await store.for_delivery(conn, sorted({row.payload["endpoint_id"] for row in rows}))
        endpoints = {endpoint.id: endpoint for endpoint in found}
        slots = asyncio.Semaphore(PARALLEL)
        async with client() as http:

            async def one(row: Record) -> tuple[Record, Result]:
                async with slots:
                    return row, await self._attempt(http, row, endpoints.get(row.payload["endpoint_id"]))

            for attempt in asyncio.as_completed([one(row) for row in rows if leased()]):
                yield await attempt

    async def _attempt(self, http: httpx.AsyncClient, row: Record, endpoint: Record | None) -> Result:
        if endpoint is None or endpoint.disabled_at is not None:
            return Result(Outcome.SKIPPED, "endpoint removed or disabled")
        secret = self.ctx.vault.open(endpoint.secret_sealed, purpose=SECRET_PURPOSE).decode()
        error = await post(http, endpoint.url, secret, row.payload, at=self.ctx.clock.now())
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as tx:
            if error is None:
                if endpoint.failing_since is not None:
                    await store.succeeded(tx.conn, endpoint.id)
                return Result(Outcome.SENT)
            since = await store.failed(tx.conn, endpoint.id, now=now, error=error)
            if since is not None and now - since >= DISABLE_AFTER:
                await store.disable(tx.conn, endpoint.id, now=now)
                return Result(Outcome.FAILED, f"{error}; endpoint disabled after 24 h of failures")
        return Result(Outcome.RETRY, error)


async def send_test(ctx: Context, endpoint_id: int) -> str | None:
    """A ``webhook.test`` event posted now, outside the outbox (``sessionward webhooks test``): ``None`` if the
    receiver took it, else what went wrong."""
    async with ctx.db.read() as conn:
        found = await store.for_delivery(conn, [endpoint_id])
    if not found:
        raise not_found("Webhook")
    [endpoint] = found
    now = ctx.clock.now()
    message = {"id": f"msg_{secrets.token_urlsafe(18)}", "type": "webhook.test", "timestamp": iso(now), "data": {}}
    secret = ctx.vault.open(endpoint.secret_sealed, purpose=SECRET_PURPOSE).decode()
    async with client() as http:
        return await post(http, endpoint.url, secret, message, at=now)
