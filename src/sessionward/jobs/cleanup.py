"""The guide's hourly cleanup, in small batches so refreshes never wait long behind it.

Rows are kept ``TOKEN_RETENTION`` (1 day by default) past their end, longer than the reuse
interval, so reuse detection and the grace interval work up to the last moment they matter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, or_, select, update

from sessionward.audit.tables import audit_events
from sessionward.context import Context
from sessionward.sessions.tables import sessions
from sessionward.tokens.jwt import LEEWAY_SECONDS
from sessionward.tokens.tables import refresh_tokens, token_blacklist

log = logging.getLogger(__name__)


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
    ]


Progress = Callable[[str, int], None]


async def _in_batches(
    ctx: Context, name: str, key: Any, condition: ColumnElement[bool], act: Callable[[Any], Any], progress: Progress
) -> int:
    """``act`` on rows matching ``condition``, a batch per short transaction; the rows touched."""
    total = 0
    batch = ctx.settings.cleanup_batch_size
    while True:
        chosen = select(key).where(condition).limit(batch).scalar_subquery()
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


async def cleanup(ctx: Context, *, progress: Progress = _quiet) -> dict[str, int]:
    """Delete what has outlived its use; the count per table."""
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
    log.info("cleanup finished", extra={"deleted": counts})
    return counts
