"""The outbox's handler for mail: makes a link's token, composes the mail and hands it to the transport."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Any

from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.config import Environment, Settings
from sessionward.context import Context
from sessionward.db import Record
from sessionward.errors import AppError
from sessionward.mail import store
from sessionward.mail.messages import Messages
from sessionward.mail.outgoing import LINKS, PURPOSE_OF, Purpose, Template
from sessionward.mail.transport import Refused, Transport, Unreachable, transport_for
from sessionward.outbox.sender import Outcome, Result
from sessionward.sessions.devices import parse_device
from sessionward.tokens.opaque import hash_token
from sessionward.users import service as users

log = logging.getLogger(__name__)


def humane(span: timedelta) -> str:
    """``24 hours``, ``1 hour``, ``30 minutes``: how long a link works, in a mail's words."""
    minutes = int(span.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours = minutes // 60
    return f"{hours} hour{'s' * (hours != 1)}"


@dataclass(frozen=True, slots=True)
class _Ready:
    message: EmailMessage
    token_hash: str | None = None
    link: str | None = None


class MailDelivery:
    def __init__(self, ctx: Context, transport: Transport | None = None) -> None:
        self.ctx = ctx
        self.transport: Transport = transport or transport_for(ctx.settings)
        self.messages = Messages(ctx.settings)

    async def deliver(self, rows: Sequence[Record], leased: Callable[[], bool]) -> AsyncIterator[tuple[Record, Result]]:
        async with self.transport.session() as session:
            for index, row in enumerate(rows):
                if not leased():
                    return
                try:
                    ready = await self._prepare(row)
                except AppError:
                    raise  # the database is down: the round ends, the rows are released and tried again
                except Exception as exc:  # noqa: BLE001 - a mail that cannot be made (a template of a deployer's that
                    # fails to render, a row written by another version) is failed, not retried for ever
                    yield row, Result(Outcome.FAILED, f"cannot compose: {type(exc).__name__}")
                    continue
                if ready is None:
                    yield row, Result(Outcome.SKIPPED)
                    continue
                try:
                    reply = await session.send(ready.message)
                except Refused as exc:
                    await self._forget(ready)
                    yield row, Result(Outcome.FAILED if exc.permanent else Outcome.RETRY, str(exc))
                    continue
                except Unreachable as exc:
                    await self._forget(ready)
                    for rest in rows[index:]:
                        yield rest, Result(Outcome.RETRY, str(exc))
                    return
                self._log_link(ready)
                yield row, Result(Outcome.SENT, reply)

    async def _prepare(self, row: Record) -> _Ready | None:
        """The mail to send; ``None`` if there is nobody to send it to (no account, or no longer eligible)."""
        payload: dict[str, Any] = row.payload
        template = Template(payload["template"])
        params = dict(payload["params"])
        token_hash = link = None
        to = payload["to"] or await self._address(row.user_id)
        purpose = PURPOSE_OF.get(template)
        if to is not None and purpose is not None:
            made = await self._token(row, purpose, to)
            if made is None:
                return None
            token, token_hash = made
            link = self.ctx.settings.public_url + LINKS[purpose] + token
            params |= {"link": link, "valid_for": humane(self._lifetime(purpose))}
        if to is None:
            return None
        message = self.messages.compose(
            template=template,
            to=to,
            message_id=payload["message_id"],
            date=row.created_at,
            params=params,
        )
        return _Ready(message, token_hash, link)

    def _lifetime(self, purpose: Purpose) -> timedelta:
        settings = self.ctx.settings
        return (
            settings.password_reset_expires_in
            if purpose is Purpose.RESET_PASSWORD
            else settings.email_verification_expires_in
        )

    async def _address(self, user_id: int | None) -> str | None:
        """An alert's address is the account's at the time it is sent."""
        async with self.ctx.db.read() as conn:
            user = await users.find(conn, user_id=user_id) if user_id is not None else None
        return user.email if user is not None else None

    async def _token(self, row: Record, purpose: Purpose, to: str) -> tuple[str, str] | None:
        """A new token bound to the user, the purpose and the address the mail goes to, made as it is sent."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as tx:
            user = await users.find(tx.conn, user_id=row.user_id, email=None if row.user_id else to)
            if user is None or not _eligible(purpose, user, to):
                return None
            token = secrets.token_urlsafe(32)  # 256 bits
            token_hash = hash_token(token)
            await store.insert_token(
                tx.conn,
                token_hash=token_hash,
                user_id=user.id,
                purpose=purpose.value,
                email=to,
                now=now,
                expires_at=now + self._lifetime(purpose),
            )
            if purpose is Purpose.RESET_PASSWORD:
                await record(
                    tx.conn, user_id=user.id, type=EventType.PASSWORD_RESET_REQUESTED, now=now, device=_who(row)
                )
        return token, token_hash

    async def _forget(self, ready: _Ready) -> None:
        """The token of a mail that did not go: nobody can hold it."""
        if ready.token_hash is not None:
            async with self.ctx.db.transaction() as tx:
                await store.forget(tx.conn, token_hash=ready.token_hash)

    def _log_link(self, ready: _Ready) -> None:
        # API.md: without SMTP_URL, in development, each link is logged so that `make run` needs no mail server.
        if ready.link and self.ctx.settings.smtp_url is None and self.ctx.settings.env is Environment.DEVELOPMENT:
            log.info("mail written", extra={"to": ready.message["To"], "link": ready.link})


def _eligible(purpose: Purpose, user: Record, to: str) -> bool:
    if purpose is Purpose.CHANGE_EMAIL:
        return True
    if user.email != to:
        return False
    return purpose is Purpose.RESET_PASSWORD or user.email_verified_at is None


def _who(row: Record) -> Any:
    asked = row.payload.get("requester")
    return parse_device(asked["user_agent"], asked["ip"]) if asked else None


def test_message(settings: Settings, *, to: str, now: datetime) -> EmailMessage:
    """What ``sessionward mail test`` sends."""
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
    return Messages(settings).compose(
        template=Template.TEST, to=to, message_id=make_msgid(domain=domain), date=now, params={"at": iso(now)}
    )
