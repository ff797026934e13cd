"""The Redis revocation bus and shared rate limits, in process, against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis

from sessionward.config import Settings
from sessionward.context import Context
from sessionward.errors import AppError
from sessionward.metrics import BROADCAST_LAG
from sessionward.ratelimit import RateLimits
from sessionward.tokens.broadcast import CHANNEL, RevocationBus
from sessionward.tokens.revocation import RevocationCache, SessionState
from tests.conftest import unused_port

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cached(cache: RevocationCache, session_id: str) -> SessionState:
    cache.put(session_id, SessionState(user_id=1, expires_at=NOW, last_activity=NOW, revoked=False, user={}))
    state = cache.get(session_id)
    assert state is not None
    return state


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


@pytest.fixture
async def buses(redis_url: str) -> AsyncIterator[tuple[RevocationCache, RevocationCache]]:
    first, second = RevocationCache(60), RevocationCache(60)
    started = [RevocationBus(redis_url, first), RevocationBus(redis_url, second)]
    for bus in started:
        bus.start()
    await asyncio.gather(*(asyncio.wait_for(bus.connected.wait(), 5) for bus in started))
    yield first, second
    for bus in started:
        await bus.close()


async def test_a_revoked_session_reaches_the_other_process_at_once(
    buses: tuple[RevocationCache, RevocationCache],
) -> None:
    here, there = buses
    remote = cached(there, "s1")
    heard = _lags()
    here.revoke_sessions(["s1"])
    await eventually(lambda: remote.revoked)
    assert _lags() == heard + 1  # the lag from publication to application, observed where it was applied


def _lags() -> float:
    [family] = [f for f in BROADCAST_LAG.collect() if f.name == "sessionward_revocation_broadcast_lag_seconds"]
    return next(s.value for s in family.samples if s.name.endswith("_count"))


async def test_a_blacklisted_token_reaches_the_other_process_at_once(
    buses: tuple[RevocationCache, RevocationCache],
) -> None:
    here, there = buses
    remote = cached(there, "s1")
    here.blacklist("s1", "jti-1")
    await eventually(lambda: "jti-1" in remote.blacklisted)
    assert not remote.revoked


async def test_junk_on_the_channel_and_own_echoes_are_ignored(
    buses: tuple[RevocationCache, RevocationCache], redis_url: str
) -> None:
    here, there = buses
    local = cached(here, "mine")
    remote = cached(there, "s2")
    redis = Redis.from_url(redis_url)
    try:
        for junk in (b"not json", b"[1, 2]", b'{"sessions": [1, null]}', b'{"blacklist": ["only-one"]}'):
            await redis.publish(CHANNEL, junk)
        await redis.publish(CHANNEL, orjson.dumps({"sessions": ["s2"], "origin": "elsewhere"}))
    finally:
        await redis.aclose()
    await eventually(lambda: remote.revoked)
    assert not local.revoked


async def test_a_bus_without_redis_keeps_retrying_and_publishing_fails_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = RevocationCache(1)
    bus = RevocationBus(f"redis://127.0.0.1:{unused_port()}/0", cache)
    bus.start()
    cache.revoke_sessions(["s1"])  # the local state changes; the broadcast is lost, and logged
    await eventually(lambda: "revocation broadcast failed" in caplog.text)
    await eventually(lambda: caplog.text.count("revocation bus disconnected") >= 2)
    assert not bus.connected.is_set()
    cache.blacklist("s1", "jti")  # still in flight when the bus closes: cancelled, not leaked
    await bus.close()


async def test_a_bus_that_never_started_closes_cleanly(redis_url: str) -> None:
    await RevocationBus(redis_url, RevocationCache(1)).close()


async def test_the_context_starts_the_bus_only_with_a_redis_url(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    without = Context.build(make_settings())
    without.start()
    assert without.bus is None
    await without.close()
    with_redis = Context.build(make_settings(redis_url=redis_url))
    with_redis.start()
    assert with_redis.bus is not None
    await asyncio.wait_for(with_redis.bus.connected.wait(), 5)
    await with_redis.close()


async def test_rate_limits_are_shared_through_redis(make_settings: Callable[..., Settings], redis_url: str) -> None:
    settings = make_settings(redis_url=redis_url, register_rate_limit="2/minute")
    first, second = RateLimits(settings), RateLimits(settings)
    key = f"shared-{datetime.now(UTC).timestamp()}"
    await first.hit(first.register, key)
    await second.hit(second.register, key)
    with pytest.raises(AppError) as refused:
        await first.hit(first.register, key)
    assert refused.value.status == 429
    assert refused.value.retry_after is not None


async def test_rate_limits_fall_back_to_memory_when_redis_is_down(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{unused_port()}/0", register_rate_limit="1/minute")
    limits = RateLimits(settings)
    await limits.hit(limits.register, "k")
    with pytest.raises(AppError) as refused:
        await limits.hit(limits.register, "k")
    assert refused.value.status == 429
