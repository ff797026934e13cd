"""``SessionwardAuth``: bearer tokens on any httpx client, refreshed automatically and single-flight."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator

import httpx

from sessionward_client._errors import NotSignedIn, ServerError, SessionRevoked, error_from_response, retry_after
from sessionward_client._models import TokenSet
from sessionward_client._stores import MemoryTokenStore, TokenStore
from sessionward_client._version import __version__

log = logging.getLogger("sessionward_client")

DEFAULT_USER_AGENT = f"sessionward-client/{__version__}"
REFRESH_PATH = "/api/v1/auth/refresh"
_RETRY_STATUSES = frozenset({502, 503, 504})


class SessionwardAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <access token>`` to every request of the httpx client it is given to.

    The access token is refreshed shortly before it expires (``refresh_margin`` seconds, at most a
    quarter of its lifetime) and once when an answer is ``401``; the request is then retried once with
    the new token. Refreshing is single-flight: any number of threads (sync clients) or tasks (async
    clients, per event loop) that find the token stale cause one ``/refresh``; the others wait for it
    and reuse its result. The rotated refresh token is saved in the store before it is used.

    A refresh whose answer is lost (connection dropped, timeout, 502/503/504) is retried up to
    ``retries`` times with the same refresh token, quickly enough to fall inside the service's reuse
    grace interval (10 s by default), which answers a retry with the same successor: keep
    ``(retries + 1) * timeout`` below that interval. If an early refresh fails that way while the access
    token is still valid, the request goes out with it. A ``401`` on refresh means the session is over:
    the store is cleared and :class:`SessionRevoked` is raised.

    ``base_url`` is the sessionward service (where ``/api/v1/auth/refresh`` lives); the client this auth
    is attached to may call any other API that accepts sessionward access tokens. The refresh calls use
    a client of their own with a stable ``User-Agent`` (the service refuses a refresh from another
    browser or OS family than the session's): sign in with the same ``user_agent``.
    """

    requires_request_body = True  # a request is sent twice at most: keep its body

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        store: TokenStore | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        refresh_margin: float = 30.0,
        timeout: float = 3.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = httpx.URL(str(base_url))
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.user_agent = user_agent
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self.retries = retries
        self._transport = transport
        self._async_transport = async_transport
        self._tokens: TokenSet | None = None
        self._loaded = False
        self._state_lock = threading.Lock()  # short: the cached tokens and the lazily made clients
        self._refresh_lock = threading.Lock()  # single flight among threads
        self._sync_http: httpx.Client | None = None
        self._owns_sync_http = False
        self._async_http: httpx.AsyncClient | None = None
        self._owns_async_http = False
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._async_lock: asyncio.Lock | None = None

    # ----- the tokens -------------------------------------------------------------------------------

    @property
    def tokens(self) -> TokenSet | None:
        """The tokens in use (read from the store on first use)."""
        with self._state_lock:
            if not self._loaded:
                self._tokens = self.store.load()
                self._loaded = True
            return self._tokens

    def set_tokens(self, tokens: TokenSet) -> None:
        """Save ``tokens`` in the store, then use them (``login`` does this)."""
        with self._state_lock:
            self.store.save(tokens)
            self._tokens = tokens
            self._loaded = True

    def clear(self) -> None:
        """Forget the tokens, here and in the store (``logout`` does this)."""
        with self._state_lock:
            self.store.clear()
            self._tokens = None
            self._loaded = True

    def _reload(self) -> TokenSet | None:
        """The store's tokens: another client or process sharing the store may have refreshed already."""
        with self._state_lock:
            self._tokens = self.store.load()
            self._loaded = True
            return self._tokens

    # ----- the httpx.Auth flows ---------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        tokens = self.tokens
        if tokens is None:
            raise NotSignedIn("Not signed in: no tokens in the store")
        if tokens.access_expiring(margin=self.refresh_margin):
            try:
                tokens = self._refresh_sync(tokens)
            except (httpx.TransportError, ServerError):
                if tokens.access_expiring(margin=0):
                    raise
                log.warning("early refresh failed; using the access token until it expires")
        _authorize(request, tokens)
        response = yield request
        if response.status_code != 401:
            return
        response.read()  # hand the connection back before waiting for the refresh
        tokens = self._refresh_sync(tokens)
        _authorize(request, tokens)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        tokens = self.tokens
        if tokens is None:
            raise NotSignedIn("Not signed in: no tokens in the store")
        if tokens.access_expiring(margin=self.refresh_margin):
            try:
                tokens = await self._refresh_async(tokens)
            except (httpx.TransportError, ServerError):
                if tokens.access_expiring(margin=0):
                    raise
                log.warning("early refresh failed; using the access token until it expires")
        _authorize(request, tokens)
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()  # hand the connection back before waiting for the refresh
        tokens = await self._refresh_async(tokens)
        _authorize(request, tokens)
        yield request

    def refresh(self) -> TokenSet:
        """Refresh now (single-flight with any refresh in progress) and return the new tokens."""
        tokens = self.tokens
        if tokens is None:
            raise NotSignedIn("Not signed in: no tokens in the store")
        return self._refresh_sync(tokens)

    async def arefresh(self) -> TokenSet:
        """``refresh`` for async code."""
        tokens = self.tokens
        if tokens is None:
            raise NotSignedIn("Not signed in: no tokens in the store")
        return await self._refresh_async(tokens)

    # ----- single flight ----------------------------------------------------------------------------

    def _after_wait(self, stale: TokenSet) -> tuple[TokenSet, bool]:
        """Under the refresh lock: the store's tokens, and whether they still need a refresh.

        Another thread, task or process sharing the store may have refreshed while this one waited.
        """
        current = self._reload()
        if current is None:
            raise SessionRevoked("Signed out while a refresh was pending")
        fresh = current.access_token != stale.access_token and not current.access_expiring(margin=self.refresh_margin)
        return current, not fresh

    def _refresh_sync(self, stale: TokenSet) -> TokenSet:
        with self._refresh_lock:
            current, needed = self._after_wait(stale)
            if not needed:
                return current
            http = self._sync_client()
            attempt = 0
            while True:
                obtained_at = time.time()
                try:
                    response = http.post(
                        REFRESH_PATH, json=_refresh_body(current), headers=self._headers(), timeout=self.timeout
                    )
                except httpx.TransportError as exc:
                    if attempt >= self.retries:
                        raise
                    attempt += 1
                    log.warning("refresh failed (%s); retrying (%d/%d)", type(exc).__name__, attempt, self.retries)
                    time.sleep(_backoff(attempt, None))
                    continue
                if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                    attempt += 1
                    time.sleep(_backoff(attempt, retry_after(response)))
                    continue
                return self._accept(response, current, obtained_at)

    async def _refresh_async(self, stale: TokenSet) -> TokenSet:
        async with self._lock_for_loop():
            current, needed = self._after_wait(stale)
            if not needed:
                return current
            http = self._async_client()
            attempt = 0
            while True:
                obtained_at = time.time()
                try:
                    response = await http.post(
                        REFRESH_PATH, json=_refresh_body(current), headers=self._headers(), timeout=self.timeout
                    )
                except httpx.TransportError as exc:
                    if attempt >= self.retries:
                        raise
                    attempt += 1
                    log.warning("refresh failed (%s); retrying (%d/%d)", type(exc).__name__, attempt, self.retries)
                    await asyncio.sleep(_backoff(attempt, None))
                    continue
                if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(_backoff(attempt, retry_after(response)))
                    continue
                return self._accept(response, current, obtained_at)

    def _accept(self, response: httpx.Response, current: TokenSet, obtained_at: float) -> TokenSet:
        if response.is_success:
            tokens = TokenSet.from_tokens_json(
                response.json()["data"], session_id=current.session_id, obtained_at=obtained_at
            )
            self.set_tokens(tokens)  # saved before anything uses the new refresh token
            log.info("refreshed the access token of session %s…", current.session_id[:8])
            return tokens
        error = error_from_response(response, kind="refresh")
        if isinstance(error, SessionRevoked):
            log.warning("session %s… is over (refresh refused); tokens cleared", current.session_id[:8])
            self.clear()
        raise error

    # ----- the clients that send /refresh -----------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"user-agent": self.user_agent}

    def _use_clients(self, *, sync: httpx.Client | None = None, async_: httpx.AsyncClient | None = None) -> None:
        """Send refreshes with these (not owned) clients: the SDK clients share their connections."""
        with self._state_lock:
            if sync is not None:
                self._sync_http, self._owns_sync_http = sync, False
            if async_ is not None:
                self._async_http, self._owns_async_http = async_, False

    def _sync_client(self) -> httpx.Client:
        with self._state_lock:
            if self._sync_http is None:
                self._sync_http = httpx.Client(
                    base_url=self.base_url, transport=self._transport, headers=self._headers(), timeout=self.timeout
                )
                self._owns_sync_http = True
            return self._sync_http

    def _lock_for_loop(self) -> asyncio.Lock:
        """One asyncio lock (and one owned async client) per event loop: both are bound to a loop."""
        loop = asyncio.get_running_loop()
        with self._state_lock:
            if self._async_lock is None or self._loop is None or self._loop() is not loop:
                self._loop = weakref.ref(loop)
                self._async_lock = asyncio.Lock()
                if self._owns_async_http:
                    self._async_http = None  # made in a previous loop: unusable here
            return self._async_lock

    def _async_client(self) -> httpx.AsyncClient:
        with self._state_lock:
            if self._async_http is None:
                self._async_http = httpx.AsyncClient(
                    base_url=self.base_url,
                    transport=self._async_transport,
                    headers=self._headers(),
                    timeout=self.timeout,
                )
                self._owns_async_http = True
            return self._async_http

    def close(self) -> None:
        """Close the sync client this auth made for refreshing (if any)."""
        with self._state_lock:
            http, owned = self._sync_http, self._owns_sync_http
            if owned:
                self._sync_http = None
        if http is not None and owned:
            http.close()

    async def aclose(self) -> None:
        """Close the async client this auth made for refreshing (if any)."""
        with self._state_lock:
            http, owned = self._async_http, self._owns_async_http
            if owned:
                self._async_http = None
        if http is not None and owned:
            await http.aclose()


def _authorize(request: httpx.Request, tokens: TokenSet) -> None:
    request.headers["Authorization"] = f"Bearer {tokens.access_token}"


def _refresh_body(tokens: TokenSet) -> dict[str, str]:
    return {"refresh_token": tokens.refresh_token, "session_id": tokens.session_id}


def _backoff(attempt: int, hint: float | None) -> float:
    """Short pauses: a retried refresh must land inside the service's reuse grace interval."""
    if hint is not None:
        return min(hint, 2.0)
    return 0.1 * 2.0 ** (attempt - 1)
