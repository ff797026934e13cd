"""What other domains call to send a mail: a row in the outbox, written in their transaction.

Nothing here talks to a mail server; the sender delivers the row after the commit (``mail.delivery``). A mail
that carries a link names its purpose, and its token is made when the mail is sent: the token exists only in
the mail and, hashed, in ``mail_tokens``, never in the outbox.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import make_msgid, parseaddr
from enum import StrEnum
from typing import Any

from sessionward.context import Context
from sessionward.db import Transaction
from sessionward.outbox import store
from sessionward.sessions.devices import Device

KIND = "mail"


class Purpose(StrEnum):
    """A link's purpose; a token of one purpose is refused for another."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"


class Template(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    PASSWORD_CHANGED = "password_changed"
    NEW_SIGN_IN = "new_sign_in"
    DEVICE_SIGNED_OUT = "device_signed_out"
    TEST = "test"


# The link each purpose's mail carries, under PUBLIC_URL; the token goes in the fragment, so it never reaches
# a server log or a Referer.
LINKS = {
    Purpose.VERIFY_EMAIL: "/verify-email#token=",
    Purpose.RESET_PASSWORD: "/reset-password#token=",
    Purpose.CHANGE_EMAIL: "/verify-email#change=",
}
PURPOSE_OF = {
    Template.VERIFY_EMAIL: Purpose.VERIFY_EMAIL,
    Template.RESET_PASSWORD: Purpose.RESET_PASSWORD,
    Template.CHANGE_EMAIL: Purpose.CHANGE_EMAIL,
}


def requester(device: Device | None) -> dict[str, Any] | None:
    """Who asked, for the event recorded when the mail is sent."""
    return {"user_agent": device.user_agent, "ip": device.ip} if device else None


async def queue(
    ctx: Context,
    tx: Transaction,
    *,
    template: Template,
    to: str | None,
    now: datetime,
    user_id: int | None = None,
    params: dict[str, Any] | None = None,
    device: Device | None = None,
) -> None:
    """Write the mail to the outbox in ``tx``; the sender of this process is woken once it commits.

    ``to`` ``None``: the address of ``user_id``'s account when the mail is sent. ``user_id`` ``None`` with a link:
    the account is looked up by address when the mail is sent, and no mail goes if there is none (the request was
    answered the same either way)."""
    domain = parseaddr(ctx.settings.mail_from)[1].rpartition("@")[2]
    payload = {
        "template": template.value,
        "to": to,
        "message_id": make_msgid(domain=domain),
        "params": params or {},
        "requester": requester(device),
    }
    await store.insert_row(tx.conn, kind=KIND, user_id=user_id, payload=payload, now=now)
    tx.after_commit.append(ctx.outbox.wake)
