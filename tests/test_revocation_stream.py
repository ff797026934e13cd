"""The revocation stream with real servers: app backends learn of a revocation within a second, with
``--workers 2``, on SQLite and on PostgreSQL (with and without Redis); the snapshot, ``Last-Event-ID``,
1,000 subscribers on one process, keys and scopes."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionward.apps import keys
from sessionward.apps.keys import Scope
from sessionward.clock import FrozenClock
from sessionward.config import load_settings
from sessionward.context import Context
from sessionward.tokens.stream import QUEUE_SIZE, Entry, Subscription, feed_of, parse_cursor
from tests.conftest import API, PASSWORD, TEST_ENV, Users
from tests.live import LiveServer, RedisServer

BOUND = 1.0  # API.md: a revoked session's tokens are refused by the app's backend within 1 s


def make_key(database_url: str, folder: Path, *scopes: Scope) -> str:
    async def main() -> str:
        ctx = Context.build(load_settings(database_url=database_url, data_dir=folder / "var", **TEST_ENV))
        try:
            key, _ = await keys.create(ctx, name="api backend", scopes=list(scopes))
            return key
        finally:
            await ctx.close()

    return asyncio.run(main())


@dataclass
class Listener:
    """An SSE subscriber in a thread of its own: every entry with when it arrived."""

    url: str
    key: str
    last_event_id: str | None = None
    entries: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    status: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Listener:
        threading.Thread(target=self._listen, daemon=True).start()
        deadline = time.monotonic() + 10
        while self.status is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def _listen(self) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        if self.last_event_id:
            headers["last-event-id"] = self.last_event_id
        with httpx.stream("GET", f"{self.url}{API}/revocations", headers=headers, timeout=30) as response:
            self.status = response.status_code
            event: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    if event.get("event") == "revocation":
                        self.entries.append((time.monotonic(), event["id"], json.loads(event["data"])))
                    event = {}
                    continue
                name, _, value = line.partition(":")
                event[name] = value.strip()

    def stop(self) -> None:
        self._stop.set()

    def wait_for(self, session_id: str, timeout: float = 5) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, _, data in list(self.entries):
                if data["sid"] == session_id:
                    return at
            time.sleep(0.005)
        raise AssertionError(f"no revocation of {session_id} in {timeout} s")


def login(base: str, email: str) -> dict[str, Any]:
    response = httpx.post(f"{base}{API}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def signed_up(base: str, count: int) -> list[str]:
    emails = [f"stream{n}-{time.monotonic_ns()}@example.com" for n in range(count)]
    for email in emails:
        assert httpx.post(f"{base}{API}/register", json={"email": email, "password": PASSWORD}).status_code == 201
    return emails


@pytest.fixture
def servers(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Iterator[list[LiveServer]]:
    env = {"RATE_LIMIT_ENABLED": "false", **getattr(request, "param", {})}
    if env.get("REDIS_URL") == "test":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    started = [LiveServer(tmp_path, database_url=database_url, workers=2, env=env)]
    try:
        started[0].start()
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.mark.live
@pytest.mark.parametrize("servers", [{}, {"REDIS_URL": "test"}], indirect=True, ids=["polled", "redis"])
def test_every_revocation_reaches_a_subscriber_within_a_second(
    servers: list[LiveServer], database_url: str, tmp_path: Path
) -> None:
    [server] = servers
    key = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
    listeners = [Listener(server.base_url, key).start() for _ in range(2)]  # each worker has one, likely
    assert [listener.status for listener in listeners] == [200, 200]
    [email] = signed_up(server.base_url, 1)
    delays = []
    for _ in range(30):
        data = login(server.base_url, email)
        auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
        started = time.monotonic()
        assert httpx.post(f"{server.base_url}{API}/logout", json={}, headers=auth).status_code == 200
        delays += [listener.wait_for(data["session"]["id"]) - started for listener in listeners]
    for listener in listeners:
        listener.stop()
    print(f"REVOCATION_STREAM_DELAY p50 {statistics.median(delays) * 1000:.0f} ms max {max(delays) * 1000:.0f} ms")
    assert max(delays) < BOUND
    _, _, entry = listeners[0].entries[-1]
    assert set(entry) == {"sid", "sub", "revoked_at", "until"}


@pytest.mark.live
def test_the_stream_goes_on_through_a_redis_restart(tmp_path: Path, database_url: str, own_redis: RedisServer) -> None:
    """Two servers on one database and one Redis; the subscriber is on B, the revocations are made on A. With
    Redis up, the bus wakes B's feed; with Redis killed, B's feed finds them by polling the database; after the
    restart, the bus again. Every revocation reaches the subscriber within the bound, on the one connection."""
    env = {"RATE_LIMIT_ENABLED": "false", "REDIS_URL": own_redis.url}
    a, b = (LiveServer(tmp_path, database_url=database_url, env=env) for _ in range(2))
    try:
        a.start(), b.start()
        listener = Listener(b.base_url, make_key(database_url, tmp_path, Scope.SESSIONS_READ)).start()
        assert listener.status == 200
        [email] = signed_up(a.base_url, 1)

        def delays(count: int) -> list[float]:
            measured = []
            for _ in range(count):
                data = login(a.base_url, email)
                auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
                started = time.monotonic()
                assert httpx.post(f"{a.base_url}{API}/logout", json={}, headers=auth).status_code == 200
                measured.append(listener.wait_for(data["session"]["id"]) - started)
            return measured

        phases = {"up": delays(10)}
        own_redis.stop()
        phases["down"] = delays(10)
        own_redis.start()
        phases["restarted"] = delays(10)
        listener.stop()
        for phase, measured in phases.items():
            p50, worst = statistics.median(measured) * 1000, max(measured) * 1000
            print(f"REVOCATION_STREAM_REDIS {phase} p50 {p50:.0f} ms max {worst:.0f} ms")
            assert max(measured) < BOUND, phase
    finally:
        a.stop(), b.stop()


@pytest.mark.live
def test_a_subscriber_gets_the_snapshot_then_resumes_from_its_last_event(
    servers: list[LiveServer], database_url: str, tmp_path: Path
) -> None:
    [server] = servers
    key = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
    emails = signed_up(server.base_url, 3)
    ended = []
    for email in emails[:2]:
        data = login(server.base_url, email)
        auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
        httpx.post(f"{server.base_url}{API}/logout", json={}, headers=auth)
        ended.append(data["session"]["id"])
    first = Listener(server.base_url, key).start()
    for session_id in ended:
        first.wait_for(session_id, timeout=2)
    first.stop()
    last_id = first.entries[-1][1]
    data = login(server.base_url, emails[2])
    auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
    httpx.post(f"{server.base_url}{API}/logout", json={}, headers=auth)  # while nobody listens
    resumed = Listener(server.base_url, key, last_event_id=last_id).start()
    resumed.wait_for(data["session"]["id"], timeout=2)
    resumed.stop()


@pytest.mark.live
def test_the_stream_needs_a_key_with_its_scope(servers: list[LiveServer], database_url: str, tmp_path: Path) -> None:
    [server] = servers
    url = f"{server.base_url}{API}/revocations"
    assert httpx.get(url).status_code == 401
    issuer = make_key(database_url, tmp_path, Scope.SESSIONS_ISSUE)
    assert httpx.get(url, headers={"authorization": f"Bearer {issuer}"}).status_code == 403
    reader = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
    assert httpx.get(f"{url}?key={reader}").status_code == 401


@pytest.mark.live
def test_a_thousand_subscribers_on_one_process_each_get_the_revocation(tmp_path: Path, database_url: str) -> None:
    server = LiveServer(tmp_path, database_url=database_url, env={"RATE_LIMIT_ENABLED": "false"})
    try:
        server.start()
        key = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
        [email] = signed_up(server.base_url, 1)
        data = login(server.base_url, email)

        retried = [0]

        async def subscriber(ready: asyncio.Event, count: list[int]) -> float:
            request = f"GET {API}/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
            while True:  # as the SDKs do: a 503 (the database pool busy with the others' keys) is tried again
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(request.encode())
                await writer.drain()
                status = await reader.readline()
                if not status.startswith(b"HTTP/1.1 503"):
                    break
                writer.close()
                retried[0] += 1
                await asyncio.sleep(0.5)
            assert status.startswith(b"HTTP/1.1 200"), status
            count[0] += 1
            if count[0] == 1000:
                ready.set()
            while data["session"]["id"].encode() not in (line := await reader.readline()):
                assert line, "the stream ended before the revocation came"
            writer.close()
            return time.monotonic()

        async def main() -> list[float]:
            ready, count = asyncio.Event(), [0]
            tasks = [asyncio.create_task(subscriber(ready, count)) for _ in range(1000)]
            await asyncio.wait_for(ready.wait(), 60)
            auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
            async with httpx.AsyncClient() as client:
                started = time.monotonic()
                assert (await client.post(f"{server.base_url}{API}/logout", json={}, headers=auth)).status_code == 200
            arrived = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return [at - started for at in arrived]

        delays = asyncio.run(main())
        print(f"THOUSAND_SUBSCRIBERS last {max(delays) * 1000:.0f} ms; 503 retried {retried[0]}")
        assert len(delays) == 1000
    finally:
        server.stop()


# --------------------------------------------------------------------------- the feed itself


def test_a_subscriber_that_does_not_read_is_dropped_not_buffered_for_ever() -> None:
    subscription = Subscription()
    entry = Entry("a" * 64, 1, FrozenClock().now(), FrozenClock().now())
    for _ in range(QUEUE_SIZE):
        subscription.offer(entry)
    assert not subscription.dropped
    subscription.offer(entry)
    assert subscription.dropped
    assert subscription.queue.qsize() == QUEUE_SIZE


def test_a_cursor_that_is_not_ours_means_a_full_snapshot() -> None:
    assert parse_cursor(None) is None
    assert parse_cursor("garbage") is None
    assert parse_cursor("99999999999999999999999-" + "a" * 64) is None
    assert parse_cursor("1700000000000000-" + "a" * 64) is not None


async def test_the_snapshot_holds_what_is_not_yet_moot(
    users: Users, client: httpx.AsyncClient, ctx: Context, clock: FrozenClock
) -> None:
    old = await users.signed_in()
    await client.post(f"{API}/logout", json={}, headers=old.auth)
    clock.advance(timedelta(minutes=16))  # its last access token has expired: moot
    new = await users.login(old.email)
    await client.post(f"{API}/logout", json={}, headers=new.auth)
    feed = feed_of(ctx)
    assert [entry.session_id for entry in await feed.snapshot(None)] == [new.session_id]
    # A long-gone subscriber gets what is not yet moot (a moot entry's tokens have all expired); a recent one,
    # what came since its last event (and a little before: a revocation that committed late).
    assert [entry.session_id for entry in await feed.snapshot(clock.now() - timedelta(hours=1))] == [new.session_id]
    assert await feed.snapshot(clock.now() + timedelta(seconds=11)) == []
    assert len(await feed.snapshot(clock.now() + timedelta(seconds=9))) == 1


async def test_the_feed_hands_a_revocation_to_its_subscribers_when_the_revocation_path_tells_it(
    users: Users, client: httpx.AsyncClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = feed_of(ctx)
    assert feed_of(ctx) is feed
    subscription, second = feed.subscribe(), feed.subscribe()
    try:
        login_ = await users.signed_in()
        await client.post(f"{API}/logout", json={}, headers=login_.auth)
        entry = await asyncio.wait_for(subscription.queue.get(), 5)
        assert entry.session_id == login_.session_id
        assert entry.data()["sub"] == str(login_.user_id)
        assert parse_cursor(entry.cursor) is not None
        # A look that fails (the database away) is logged, and the next one finds what it missed.
        from sessionward.sessions import store as sessions_store

        real = sessions_store.revoked_since
        failing = [True]

        async def once_unreachable(*args: Any, **kwargs: Any) -> Any:
            if failing.pop() if failing else False:
                raise OSError("database unreachable")
            return await real(*args, **kwargs)

        monkeypatch.setattr(sessions_store, "revoked_since", once_unreachable)
        other = await users.login(login_.email)
        await client.post(f"{API}/logout", json={}, headers=other.auth)
        again = await asyncio.wait_for(subscription.queue.get(), 5)
        assert again.session_id == other.session_id
        assert [second.queue.get_nowait().session_id for _ in range(2)] == [login_.session_id, other.session_id]
    finally:
        feed.unsubscribe(subscription)
        feed.unsubscribe(second)
    # With no subscriber left the feed stops looking; the next subscriber starts it again.
    task = feed._task
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert feed._task is None


async def test_a_snapshot_larger_than_a_batch_is_read_in_batches(
    users: Users, client: httpx.AsyncClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionward.tokens.stream as stream

    monkeypatch.setattr(stream, "_BATCH", 2)
    login_ = await users.signed_in()
    ended = []
    for _ in range(5):
        session = await users.login(login_.email)
        await client.post(f"{API}/logout", json={}, headers=session.auth)
        ended.append(session.session_id)
    assert set(ended) <= {entry.session_id for entry in await feed_of(ctx).snapshot(None)}


async def test_a_subscriber_left_unread_is_dropped_from_the_feed(
    users: Users, client: httpx.AsyncClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionward.tokens.stream as stream

    monkeypatch.setattr(stream, "QUEUE_SIZE", 2)
    feed = feed_of(ctx)
    reader, idle = feed.subscribe(), feed.subscribe()
    login_ = await users.signed_in()
    for _ in range(3):
        session = await users.login(login_.email)
        await client.post(f"{API}/logout", json={}, headers=session.auth)
        await asyncio.wait_for(reader.queue.get(), 5)
    assert idle.dropped
    assert idle.queue.qsize() == 2
    assert feed.subscribers == {reader}
    feed.unsubscribe(reader)


async def test_subscribers_arriving_together_share_one_snapshot_read(
    users: Users, client: httpx.AsyncClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionward.sessions import store as sessions_store

    login_ = await users.signed_in()
    await client.post(f"{API}/logout", json={}, headers=login_.auth)
    real, reads = sessions_store.revoked_since, []

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        await asyncio.sleep(0.05)  # a read that takes a while: the others arrive meanwhile
        return await real(*args, **kwargs)

    monkeypatch.setattr(sessions_store, "revoked_since", counted)
    feed = feed_of(ctx)
    first = asyncio.create_task(feed.snapshot(None))
    await asyncio.sleep(0.01)  # the first read has begun: these need a later one, which they share
    results = await asyncio.gather(first, *(feed.snapshot(None) for _ in range(100)))
    assert len(reads) == 2
    assert all([entry.session_id for entry in result] == [login_.session_id] for result in results)
    # A read that fails fails every subscriber waiting for it; the next one reads again.
    monkeypatch.setattr(sessions_store, "revoked_since", _unreachable)
    from sessionward.errors import AppError

    with pytest.raises(AppError) as raised:  # the database's fault, as every read reports it: 503
        await asyncio.gather(*(feed.snapshot(None) for _ in range(3)))
    assert raised.value.status == 503
    monkeypatch.setattr(sessions_store, "revoked_since", real)
    assert len(await feed.snapshot(None)) == 1


async def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise OSError("database unreachable")


async def test_a_snapshot_the_database_cannot_give_is_a_503_before_the_stream_starts(
    client: httpx.AsyncClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionward.sessions import store as sessions_store

    key, _ = await keys.create(ctx, name="api backend", scopes=[Scope.SESSIONS_READ])
    monkeypatch.setattr(sessions_store, "revoked_since", _unreachable)
    from tests.test_ops import assert_unavailable

    assert_unavailable(await client.get(f"{API}/revocations", headers={"authorization": f"Bearer {key}"}))
    assert feed_of(ctx).subscribers == set()
