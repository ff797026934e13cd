"""Rate limits on login, register and refresh (moving window, in the ``limits`` library's notation).

In memory by default; with ``REDIS_URL`` the counters are shared by every process (``limits``' Redis
storage). Redis down: the limits fall back to this process's memory until it answers again (limited,
never unlimited).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from sessionward.config import Settings
from sessionward.errors import AppError, ErrorCode

log = logging.getLogger(__name__)


def _times(item: RateLimitItem, factor: int) -> RateLimitItem:
    return type(item)(item.amount * factor, item.multiples, namespace=item.namespace)


_REDIS_TIMEOUT_SECONDS = 0.25  # a hung Redis must not hold a login or a refresh for long
_SHARED_PAUSE_SECONDS = 1.0  # after a failure, count locally for a second before trying Redis again


def _shared_storage(url: str) -> Storage:
    return RedisStorage(
        "async+" + url,
        implementation="redispy",
        key_prefix="sessionward",
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
    )


_SWEEP_SECONDS = 60.0


class LocalWindows:
    """Moving windows in this process's memory: per key, the times of the hits still inside its window.

    ``limits``' own memory storage sweeps every key, each through a worker thread, after every hit:
    on the refresh path that cost more than the rotation's SQL. Here a hit touches its own key only,
    and idle keys are dropped once a minute.
    """

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self._swept_at = time.monotonic()

    def hit(self, item: RateLimitItem, *key: str) -> float | None:
        """Count one hit; refused: the seconds until the oldest hit leaves the window."""
        now = time.monotonic()
        window = item.get_expiry()
        _, hits = self._hits.setdefault(item.key_for(*key), (window, deque()))
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= item.amount:
            return hits[0] + window - now
        hits.append(now)
        if now - self._swept_at > _SWEEP_SECONDS:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        self._hits = {k: (w, hits) for k, (w, hits) in self._hits.items() if hits and hits[-1] > now - w}
        self._swept_at = now


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._local = LocalWindows()
        self._shared = MovingWindowRateLimiter(_shared_storage(settings.redis_url)) if settings.redis_url else None
        self._shared_paused_until = 0.0
        self.login = parse(settings.login_rate_limit)
        self.login_per_ip = _times(self.login, 5)
        self.register = parse(settings.register_rate_limit)
        self.refresh = parse(settings.refresh_rate_limit)
        self.email = parse(settings.email_rate_limit)
        self.email_per_ip = _times(self.email, 10)

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one attempt; ``429`` with ``Retry-After`` when over the limit."""
        if not self.enabled:
            return
        wait = await self._shared_hit(item, *key)
        if wait is None:
            return
        if wait < 0:
            wait = self._local.hit(item, *key)
            if wait is None:
                return
        raise AppError(
            ErrorCode.RATE_LIMITED, "Too many requests, please retry later", retry_after=max(1, math.ceil(wait))
        )

    async def _shared_hit(self, item: RateLimitItem, *key: str) -> float | None:
        """Counted in Redis: ``None`` if allowed, else the seconds to wait; ``-1``: count in memory instead."""
        if self._shared is None or time.monotonic() < self._shared_paused_until:
            return -1
        try:
            if await self._shared.hit(item, *key):
                return None
            stats = await self._shared.get_window_stats(item, *key)
        except Exception as exc:  # noqa: BLE001 - any storage failure: count here instead
            self._shared_paused_until = time.monotonic() + _SHARED_PAUSE_SECONDS
            log.warning("shared rate limit unavailable", extra={"exc_type": type(exc).__name__})
            return -1
        return max(0.0, stats.reset_time - time.time())
