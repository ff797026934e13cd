"""Revocations broadcast between processes over Redis pub/sub.

Redis only makes other processes hear of a revocation at once; the database stays the authority.
With Redis gone, every process still re-reads a session within ``SESSION_CACHE_TTL`` (1 s), so a
revoked token is never accepted for longer than that, and the bus reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sessionward import metrics
from sessionward.tokens.revocation import RevocationCache

log = logging.getLogger(__name__)

CHANNEL = "sessionward:revocations"
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class RevocationBus:
    def __init__(self, url: str, cache: RevocationCache) -> None:
        self._redis: Redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._cache = cache
        self._origin = secrets.token_hex(8)
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        cache.publish = self.publish

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._tasks):
            task.cancel()
        await self._redis.aclose()

    def publish(self, message: dict[str, Any]) -> None:
        """Fire and forget: a lost message costs at most the cache TTL in the other processes."""
        sent = {**message, "origin": self._origin, "sent_at": time.time()}
        task = asyncio.get_running_loop().create_task(self._publish(sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, message: dict[str, Any]) -> None:
        try:
            await self._redis.publish(CHANNEL, orjson.dumps(message))
        except (RedisError, OSError) as exc:
            log.warning("revocation broadcast failed", extra={"exc_type": type(exc).__name__})

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.connected.set()
                    failures = 0
                    async for message in pubsub.listen():
                        self._apply(message.get("data"))
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("revocation bus disconnected", extra={"exc_type": type(exc).__name__})
                await asyncio.sleep(_RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)])
                failures += 1

    def _apply(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError):
            return
        if not isinstance(message, dict) or message.get("origin") == self._origin:
            return
        sent_at = message.get("sent_at")
        if isinstance(sent_at, float):
            metrics.BROADCAST_LAG.observe(max(0.0, time.time() - sent_at))
        sessions = message.get("sessions")
        if isinstance(sessions, list):
            self._cache.revoke_sessions([s for s in sessions if isinstance(s, str)], remote=True)
        blacklisted = message.get("blacklist")
        if isinstance(blacklisted, list) and len(blacklisted) == 2 and all(isinstance(v, str) for v in blacklisted):
            self._cache.blacklist(blacklisted[0], blacklisted[1], remote=True)
