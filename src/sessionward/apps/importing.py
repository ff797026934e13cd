"""``sessionward users import``: users of an existing app with their password hashes, in batches.

Each batch of valid lines is one transaction (the users and their ``user_imported`` events): a line is either
imported whole or not at all, and an interrupted import can simply be run again (existing emails are skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from sqlalchemy import exc as sa_exc

from sessionward.apps.lines import LINE_LIMIT_BYTES, Rejected, parse, read_lines
from sessionward.audit.service import EventType, record_many
from sessionward.context import Context
from sessionward.users import service as users
from sessionward.users.models import ImportedUser

BATCH_SIZE = 1000
_REFUSED = (sa_exc.IntegrityError, sa_exc.DataError)

Reject = Callable[[int, str], None]
"""Told each rejected line: its number and the reason."""


@dataclass
class Summary:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0

    def __str__(self) -> str:
        return f"imported {self.imported}, updated {self.updated}, skipped {self.skipped}, rejected {self.rejected}"


@dataclass
class _Batch:
    lines: list[int]
    entries: list[ImportedUser]


async def import_users(
    ctx: Context,
    stream: IO[bytes],
    *,
    update: bool,
    summary: Summary,
    reject: Reject,
    progress: Callable[[], None] = lambda: None,
) -> None:
    """Reads ``stream`` to its end, counting into ``summary`` as it goes (so it is right even if the database
    fails half way); ``progress`` is called after each batch."""
    seen: dict[str, int] = {}  # email -> the line that brought it
    batch = _Batch([], [])
    for number, data in read_lines(stream):
        entry = _entry(number, data, seen, summary, reject)
        if entry is None:
            continue
        batch.lines.append(number)
        batch.entries.append(entry)
        if len(batch.entries) >= BATCH_SIZE:
            await _write(ctx, batch, update=update, summary=summary, reject=reject)
            batch = _Batch([], [])
            progress()
    if batch.entries:
        await _write(ctx, batch, update=update, summary=summary, reject=reject)
    progress()


def _entry(
    number: int, data: bytes | None, seen: dict[str, int], summary: Summary, reject: Reject
) -> ImportedUser | None:
    try:
        if data is None:
            raise Rejected(f"longer than {LINE_LIMIT_BYTES} bytes")
        entry = parse(data)
        if (first := seen.get(entry.email)) is not None:
            raise Rejected(f"duplicate email in the file (first on line {first})")
    except Rejected as exc:
        summary.rejected += 1
        reject(number, str(exc))
        return None
    seen[entry.email] = number
    return entry


async def _write(ctx: Context, batch: _Batch, *, update: bool, summary: Summary, reject: Reject) -> None:
    try:
        await _commit(ctx, batch.entries, update=update, summary=summary)
    except _REFUSED:
        # A row the database refuses (its own limit, a constraint): the batch again one line at a time, so
        # only that line is rejected. A database that is down (an AppError) or not migrated stops the import.
        for number, entry in zip(batch.lines, batch.entries, strict=True):
            try:
                await _commit(ctx, [entry], update=update, summary=summary)
            except _REFUSED:
                summary.rejected += 1
                reject(number, "refused by the database")


async def _commit(ctx: Context, entries: list[ImportedUser], *, update: bool, summary: Summary) -> None:
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        inserted, replaced = await users.import_batch(tx.conn, entries, update=update, now=now)
        formats = {
            entry.email: entry.hash_format.value
            for entry in entries
            if entry.email in inserted or entry.email in replaced
        }
        details: dict[int, dict[str, object]] = {
            user_id: {"hash_format": formats[email]} for email, user_id in inserted.items()
        }
        details |= {user_id: {"hash_format": formats[email], "updated": True} for email, user_id in replaced.items()}
        await record_many(tx.conn, type=EventType.USER_IMPORTED, now=now, details_by_user=details)
    summary.imported += len(inserted)
    summary.updated += len(replaced)
    summary.skipped += len(entries) - len(inserted) - len(replaced)
