"""SessionwardAuth against a live server: single-flight refresh, lost answers, reuse, the order of saving."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Literal

import httpx
import pytest

from conftest import PASSWORD, REFRESH_ROUTE, Server, register
from sessionward_client import (
    AsyncSessionwardClient,
    MemoryTokenStore,
    NotSignedIn,
    SessionRevoked,
    SessionwardAuth,
    SessionwardClient,
    TokenSet,
)

ME = "/api/v1/auth/me"
Staging = Literal["expired in the store", "refused by the server"]
STAGINGS: list[Staging] = ["expired in the store", "refused by the server"]


def stale(server: Server, auth: SessionwardAuth, how: Staging) -> None:
    """Make the stored access token stale: known to be expired, or expired without the client knowing it."""
    tokens = auth.tokens
    assert tokens is not None
    if how == "expired in the store":
        auth.set_tokens(replace(tokens, obtained_at=tokens.obtained_at - tokens.access_expires_in))
    else:
        auth.set_tokens(replace(tokens, access_token=server.expired_copy(tokens.access_token)))


@pytest.fixture
def signed_in(server: Server, email: str) -> Iterator[SessionwardClient]:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        client.login(email, PASSWORD)
        yield client


@pytest.mark.parametrize("how", STAGINGS)
async def test_fifty_tasks_with_a_stale_access_token_cause_exactly_one_refresh(
    server: Server, email: str, how: Staging
) -> None:
    register(server, email)
    async with AsyncSessionwardClient(server.base_url) as client:
        await client.login(email, PASSWORD)
        stale(server, client.auth, how)
        before = server.refreshes()
        async with httpx.AsyncClient(base_url=server.base_url, auth=client.auth) as api:
            answers = await asyncio.gather(*(api.get(ME) for _ in range(50)))
        assert [answer.status_code for answer in answers] == [200] * 50
        assert server.refreshes() - before == 1


@pytest.mark.parametrize("how", STAGINGS)
def test_fifty_threads_with_a_stale_access_token_cause_exactly_one_refresh(
    server: Server, signed_in: SessionwardClient, how: Staging
) -> None:
    stale(server, signed_in.auth, how)
    start = threading.Barrier(50)
    before = server.refreshes()

    def call(api: httpx.Client) -> int:
        start.wait(timeout=10)
        return api.get(ME).status_code

    with httpx.Client(base_url=server.base_url, auth=signed_in.auth) as api, ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(call, [api] * 50))
    assert statuses == [200] * 50
    assert server.refreshes() - before == 1


async def test_fifty_tasks_on_a_revoked_session_all_raise_session_revoked_after_one_refresh_attempt(
    server: Server, email: str
) -> None:
    register(server, email)
    async with AsyncSessionwardClient(server.base_url) as client, AsyncSessionwardClient(server.base_url) as other:
        await client.login(email, PASSWORD)
        await other.login(email, PASSWORD)
        await other.revoke_other_sessions()
        refused_before = server.counter(REFRESH_ROUTE, 401)
        outcomes = await asyncio.gather(*(client.me() for _ in range(50)), return_exceptions=True)
        assert all(isinstance(outcome, SessionRevoked) for outcome in outcomes), outcomes
        assert server.counter(REFRESH_ROUTE, 401) - refused_before == 1
        assert client.tokens is None


class LoseFirstRefreshAnswer(httpx.BaseTransport):
    """The real network, except that the first /refresh answer is lost after the server sent it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == REFRESH_ROUTE and not self.lost:
            self.lost.append(json.loads(response.read())["data"]["refresh"]["token"])
            response.close()
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncLoseFirstRefreshAnswer(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == REFRESH_ROUTE and not self.lost:
            self.lost.append(json.loads(await response.aread())["data"]["refresh"]["token"])
            await response.aclose()
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_lost_refresh_answer_is_retried_within_the_grace_interval_and_the_session_survives(
    server: Server, email: str
) -> None:
    register(server, email)
    network = LoseFirstRefreshAnswer()
    with SessionwardClient(server.base_url, transport=network) as client:
        client.login(email, PASSWORD)
        stale(server, client.auth, "expired in the store")
        before = server.refreshes()
        client.me()
        assert server.refreshes() - before == 2  # the lost one, and the retry
        tokens = client.tokens
        assert tokens is not None
        assert [tokens.refresh_token] == network.lost  # the grace rule answered with the same successor
        client.auth.refresh()  # that successor is the live token: the session goes on
        client.me()
        assert "refresh_token_reused" not in [event.type for event in client.events()]


async def test_a_lost_refresh_answer_is_retried_by_the_async_client_too(server: Server, email: str) -> None:
    register(server, email)
    network = AsyncLoseFirstRefreshAnswer()
    async with AsyncSessionwardClient(server.base_url, transport=network) as client:
        await client.login(email, PASSWORD)
        stale(server, client.auth, "refused by the server")
        await client.me()
        tokens = client.tokens
        assert tokens is not None
        assert [tokens.refresh_token] == network.lost
        await client.auth.arefresh()
        await client.me()


def test_reuse_detected_elsewhere_raises_session_revoked_and_clears_the_store(
    server: Server, signed_in: SessionwardClient
) -> None:
    first = signed_in.tokens
    assert first is not None
    signed_in.auth.refresh()
    signed_in.auth.refresh()  # the first refresh token is now two rotations old: no grace for it
    stolen = httpx.post(
        f"{server.base_url}{REFRESH_ROUTE}",
        json={"refresh_token": first.refresh_token, "session_id": first.session_id},
        headers={"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0 Safari/537.36"},
    )
    assert stolen.status_code == 401  # the server detects the reuse and revokes the whole session
    with pytest.raises(SessionRevoked):
        signed_in.me()
    assert signed_in.tokens is None
    assert signed_in.store.load() is None


class RecordingStore(MemoryTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[TokenSet] = []

    def save(self, tokens: TokenSet) -> None:
        super().save(tokens)
        self.saved.append(tokens)


def test_the_rotated_tokens_are_saved_before_the_request_is_retried_with_them(server: Server, email: str) -> None:
    register(server, email)
    store = RecordingStore()
    presented: list[tuple[str, str | None]] = []

    def own_api(request: httpx.Request) -> httpx.Response:
        """An API of the user's own that refuses the first token it sees."""
        latest = store.saved[-1].access_token if store.saved else None
        presented.append((request.headers["authorization"].removeprefix("Bearer "), latest))
        return httpx.Response(401 if len(presented) == 1 else 200, json={})

    with SessionwardClient(server.base_url, store=store) as client:
        login = client.login(email, PASSWORD)
        with httpx.Client(transport=httpx.MockTransport(own_api), auth=client.auth) as api:
            assert api.get("https://api.example.test/things").status_code == 200
    assert len(store.saved) == 2
    assert presented[0][0] == login.tokens.access_token
    retried_with, saved_at_that_time = presented[1]
    assert retried_with == saved_at_that_time == store.saved[1].access_token
    assert store.saved[1].refresh_token != login.tokens.refresh_token


def test_a_request_refused_again_after_the_refresh_is_retried_only_once(
    server: Server, signed_in: SessionwardClient
) -> None:
    calls: list[str] = []

    def refuses_everything(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        return httpx.Response(401, json={})

    before = server.refreshes()
    with httpx.Client(transport=httpx.MockTransport(refuses_everything), auth=signed_in.auth) as api:
        assert api.post("https://api.example.test/things", content=b"payload").status_code == 401
    assert len(calls) == 2
    assert calls[0] != calls[1]
    assert server.refreshes() - before == 1


def test_an_auth_with_an_empty_store_raises_not_signed_in_before_sending(server: Server) -> None:
    sent: list[httpx.Request] = []

    def own_api(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    auth = SessionwardAuth(server.base_url)
    with httpx.Client(transport=httpx.MockTransport(own_api), auth=auth) as api, pytest.raises(NotSignedIn):
        api.get("https://api.example.test/things")
    assert sent == []


async def test_an_auth_shared_by_a_sync_and_an_async_client_keeps_one_session(
    server: Server, signed_in: SessionwardClient
) -> None:
    session_id = signed_in.session_id
    async with httpx.AsyncClient(base_url=server.base_url, auth=signed_in.auth) as api:
        stale(server, signed_in.auth, "refused by the server")
        assert (await api.get(ME)).status_code == 200
    stale(server, signed_in.auth, "expired in the store")
    assert signed_in.me().email
    assert signed_in.session_id == session_id
    await signed_in.auth.aclose()


class RefreshUnreachable(httpx.BaseTransport):
    """The real network, except that /refresh cannot be reached."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.refresh_attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == REFRESH_ROUTE:
            self.refresh_attempts += 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_an_early_refresh_that_cannot_reach_the_server_still_sends_the_valid_token(server: Server, email: str) -> None:
    register(server, email)
    network = RefreshUnreachable()
    with SessionwardClient(server.base_url, transport=network) as client:
        client.login(email, PASSWORD)
        tokens = client.tokens
        assert tokens is not None
        client.auth.set_tokens(replace(tokens, obtained_at=tokens.obtained_at - tokens.access_expires_in + 10))
        assert client.me().email == email  # 10 s left: inside the refresh margin, not expired
        assert network.refresh_attempts == 1 + client.auth.retries
        client.auth.set_tokens(replace(tokens, obtained_at=tokens.obtained_at - tokens.access_expires_in))
        with pytest.raises(httpx.ConnectError):
            client.me()  # expired: nothing valid to send
        assert client.tokens is not None  # a network failure is not a reason to drop the session
