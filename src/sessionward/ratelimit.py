"""Rate limits on login, register and refresh (``limits``, moving window).

In memory by default; with ``REDIS_URL`` the counters are shared by every process. Redis down: the
limits fall back to this process's memory until it answers again (limited, never unlimited).
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
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


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(_shared_storage(settings.redis_url)) if settings.redis_url else None
        self._shared_paused_until = 0.0
        self.login = parse(settings.login_rate_limit)
        self.login_per_ip = _times(self.login, 5)
        self.register = parse(settings.register_rate_limit)
        self.refresh = parse(settings.refresh_rate_limit)

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one attempt; ``429`` with ``Retry-After`` when over the limit."""
        if not self.enabled:
            return
        limiter = self._local
        if self._shared is not None and time.monotonic() >= self._shared_paused_until:
            try:
                if await self._shared.hit(item, *key):
                    return
                limiter = self._shared
            except Exception as exc:  # noqa: BLE001 - any storage failure: count here instead
                self._shared_paused_until = time.monotonic() + _SHARED_PAUSE_SECONDS
                log.warning("shared rate limit unavailable", extra={"exc_type": type(exc).__name__})
        if limiter is self._local and await self._local.hit(item, *key):
            return
        stats = await limiter.get_window_stats(item, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise AppError(ErrorCode.RATE_LIMITED, "Too many requests, please retry later", retry_after=retry_after)
