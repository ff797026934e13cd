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
from tests.live import LiveServer

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

        async def subscriber(ready: asyncio.Event, count: list[int]) -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {API}/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
            await writer.drain()
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            count[0] += 1
            if count[0] == 1000:
                ready.set()
            while data["session"]["id"].encode() not in await reader.readline():
                pass
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
        print(f"THOUSAND_SUBSCRIBERS last {max(delays) * 1000:.0f} ms")
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
    resumed = await feed.snapshot(clock.now() - timedelta(hours=1))  # a long-gone subscriber gets both
    assert {entry.session_id for entry in resumed} == {old.session_id, new.session_id}


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
