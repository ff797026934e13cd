"""Rate limits on login, register and refresh (``limits``, moving window, in memory)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from sessionward.config import Settings
from sessionward.errors import AppError, ErrorCode


def _times(item: RateLimitItem, factor: int) -> RateLimitItem:
    return type(item)(item.amount * factor, item.multiples, namespace=item.namespace)


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.login = parse(settings.login_rate_limit)
        self.login_per_ip = _times(self.login, 5)
        self.register = parse(settings.register_rate_limit)
        self.refresh = parse(settings.refresh_rate_limit)

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one attempt; ``429`` with ``Retry-After`` when over the limit."""
        if not self.enabled or await self._limiter.hit(item, *key):
            return
        stats = await self._limiter.get_window_stats(item, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise AppError(ErrorCode.RATE_LIMITED, "Too many requests, please retry later", retry_after=retry_after)

    async def reset(self) -> None:
        await self._limiter.storage.reset()
