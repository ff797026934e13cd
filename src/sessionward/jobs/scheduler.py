"""Runs the cleanup in-process on ``CLEANUP_SCHEDULE`` (cron syntax), like the guide's node-cron job."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from croniter import croniter

from sessionward.context import Context
from sessionward.jobs.cleanup import cleanup

log = logging.getLogger(__name__)


async def run_schedule(ctx: Context) -> None:
    schedule = croniter(ctx.settings.cleanup_schedule, datetime.now(UTC))
    while True:
        due: datetime = schedule.get_next(datetime)
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        try:
            await cleanup(ctx)
        except Exception as exc:  # noqa: BLE001 - a failed run is logged and the next one tries again
            log.error("cleanup failed", extra={"exc_type": type(exc).__name__})
