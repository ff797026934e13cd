"""Time as an input: the only place that reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The real clock. Tests pass a :class:`FrozenClock` instead."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def iso(instant: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as the API promises."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
