"""The guide's hourly cleanup, in small batches so refreshes never wait long behind it.

Rows are kept ``TOKEN_RETENTION`` (1 day by default) past their end, longer than the reuse
interval, so reuse detection and the grace interval work up to the last moment they matter.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, or_, select, text, update

from sessionward import metrics
from sessionward.audit.tables import audit_events
from sessionward.context import Context
from sessionward.mail.tables import mail_tokens
from sessionward.mfa.tables import mfa_challenges
from sessionward.outbox.tables import outbox
from sessionward.passkeys.tables import webauthn_challenges
from sessionward.sessions.tables import sessions
from sessionward.tokens.jwt import LEEWAY_SECONDS
from sessionward.tokens.tables import refresh_tokens, token_blacklist

log = logging.getLogger(__name__)
_LOCK_KEY = 0x5E55_10A4D  # any fixed 64-bit number, the same in every instance


def _plans(ctx: Context, now: datetime) -> list[tuple[str, Table, Any, ColumnElement[bool]]]:
    settings = ctx.settings
    keep_until = now - settings.token_retention
    leeway = timedelta(seconds=LEEWAY_SECONDS)
    return [
        ("refresh_tokens", refresh_tokens, refresh_tokens.c.id, refresh_tokens.c.expires_at < keep_until),
        (
            "sessions",
            sessions,
            sessions.c.id,
            or_(
                sessions.c.revoked_at < keep_until,
                sessions.c.expires_at < keep_until,
                sessions.c.last_activity < keep_until - settings.session_idle_timeout,
            ),
        ),
        # Verification still accepts a token up to the exp leeway: its entry must outlive that.
        ("token_blacklist", token_blacklist, token_blacklist.c.jti, token_blacklist.c.expires_at < now - leeway),
        ("audit_events", audit_events, audit_events.c.id, audit_events.c.at < now - settings.audit_retention),
        ("mail_tokens", mail_tokens, mail_tokens.c.token_hash, mail_tokens.c.expires_at < keep_until),
        ("mfa_challenges", mfa_challenges, mfa_challenges.c.token_hash, mfa_challenges.c.expires_at < now),
        (
            "webauthn_challenges",
            webauthn_challenges,
            webauthn_challenges.c.challenge_hash,
            webauthn_challenges.c.expires_at < now,
        ),
        # Delivered, skipped or failed rows are kept a while to be looked at, then go.
        ("outbox", outbox, outbox.c.id, outbox.c.done_at < keep_until),
    ]


Progress = Callable[[str, int], None]


async def _in_batches(
    ctx: Context, name: str, key: Any, condition: ColumnElement[bool], act: Callable[[Any], Any], progress: Progress
) -> int:
    """``act`` on rows matching ``condition``, a batch per short transaction; the rows touched."""
    total = 0
    batch = ctx.settings.cleanup_batch_size
    while True:
        # SKIP LOCKED (PostgreSQL): rows a refresh holds are left for the next run, never waited on.
        chosen = select(key).where(condition).limit(batch).with_for_update(skip_locked=True).scalar_subquery()
        async with ctx.db.transaction() as tx:
            done = (await tx.conn.execute(act(key.in_(chosen)))).rowcount
        total += done
        progress(name, total)
        if done < batch:
            return total


def _delete(table: Table, where: Any) -> Any:
    return delete(table).where(where)


def _quiet(_: str, __: int) -> None:
    return None


@asynccontextmanager
async def single_runner(ctx: Context) -> AsyncIterator[bool]:
    """Whether this process may run the cleanup: one runner at a time across every instance
    (an advisory lock on PostgreSQL, a lock file next to the SQLite database)."""
    if ctx.db.is_sqlite:
        ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (ctx.settings.data_dir / "cleanup.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        return
    async with ctx.db.read() as conn:  # autocommit: the lock belongs to the connection, not a transaction
        acquired = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY})).scalar())
        try:
            yield acquired
        finally:
            if acquired:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})


async def cleanup(ctx: Context, *, progress: Progress = _quiet) -> dict[str, int] | None:
    """Delete what has outlived its use; the count per table, or ``None`` if another runner is at it."""
    async with single_runner(ctx) as acquired:
        if not acquired:
            log.info("cleanup skipped: another instance is running it")
            return None
        return await _run(ctx, progress)


async def _run(ctx: Context, progress: Progress) -> dict[str, int]:
    now = ctx.clock.now()
    counts: dict[str, int] = {}
    for name, table, key, condition in _plans(ctx, now):
        counts[name] = await _in_batches(ctx, name, key, condition, partial(_delete, table), progress)
    # A sealed successor is needed only within the reuse interval.
    sealed = refresh_tokens.c.successor_sealed.is_not(None) & (
        refresh_tokens.c.rotated_at < now - ctx.settings.refresh_token_reuse_interval
    )
    counts["sealed_successors_wiped"] = await _in_batches(
        ctx,
        "sealed_successors_wiped",
        refresh_tokens.c.id,
        sealed,
        lambda where: update(refresh_tokens).where(where).values(successor_sealed=None),
        progress,
    )
    for name, count in counts.items():
        metrics.CLEANUP_ROWS.labels(name).inc(count)
    log.info("cleanup finished", extra={"deleted": counts})
    return counts
