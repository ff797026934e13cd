"""The service's revocation stream, kept open in a thread: a verifier refuses a revoked session's access tokens
within a second of the revocation, with no call to the service per request.

The stream (``GET /api/v1/auth/revocations``, a service key with scope ``sessions:read``) sends every revoked
session with ``until``, when its last access token expires; entries are forgotten after that. When the stream is
down for longer than ``max_stale`` seconds, ``check`` fails closed (``ServiceUnavailable``), or with
``fail_open=True`` lets tokens through on their signature alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from sessionward_client._errors import InvalidAccessToken, ServiceUnavailable

log = logging.getLogger("sessionward_client")

STREAM_PATH = "/api/v1/auth/revocations"
_READ_TIMEOUT = 40.0  # the service pings every 15 s: a silent connection is a dead one


class RevocationSubscription:
    def __init__(
        self,
        base_url: str | httpx.URL,
        service_key: str,
        *,
        max_stale: float = 5.0,
        fail_open: bool = False,
        reconnect_delay: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = str(base_url).rstrip("/") + STREAM_PATH
        self.max_stale = max_stale
        self.fail_open = fail_open
        self.reconnect_delay = reconnect_delay
        self._key = service_key
        self._transport = transport
        self._monotonic = monotonic
        self._revoked: dict[str, float] = {}  # session id -> when its last access token expires (epoch seconds)
        self._last_event_id: str | None = None
        self._down_since: float | None = monotonic()  # not connected yet
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0  #: how many times the stream was (re)opened

    def start(self) -> RevocationSubscription:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sessionward revocations", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()

    def wait_until_connected(self, timeout: float = 10.0) -> bool:
        deadline = self._monotonic() + timeout
        while self._down_since is not None:
            if self._monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def check(self, session_id: str) -> None:
        """``InvalidAccessToken`` if the session was revoked; ``ServiceUnavailable`` if the stream has been down
        past ``max_stale`` (unless ``fail_open``)."""
        with self._lock:
            revoked = session_id in self._revoked
            down_since = self._down_since
        if revoked:
            raise InvalidAccessToken("Session revoked")
        if down_since is not None and self._monotonic() - down_since > self.max_stale and not self.fail_open:
            raise ServiceUnavailable("The revocation stream of the sessionward service is unreachable", status=None)

    # ----- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("revocation stream broke: %s", type(exc).__name__)
            with self._lock:
                if self._down_since is None:
                    self._down_since = self._monotonic()
            self._stop.wait(self.reconnect_delay)

    def _listen(self) -> None:
        headers = {"authorization": f"Bearer {self._key}", "accept": "text/event-stream"}
        if self._last_event_id is not None:
            headers["last-event-id"] = self._last_event_id
        timeout = httpx.Timeout(10.0, read=_READ_TIMEOUT)
        with (
            httpx.Client(transport=self._transport, timeout=timeout) as http,
            http.stream("GET", self.url, headers=headers) as response,
        ):
            if response.status_code != 200:
                log.warning("revocation stream refused: %s", response.status_code)
                return
            self.connects += 1
            with self._lock:
                self._down_since = None
            self._read(response)

    def _read(self, response: httpx.Response) -> None:
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
                continue
            if event.get("event") == "revocation" and "data" in event:
                self._add(json.loads(event["data"]))
                self._last_event_id = event.get("id", self._last_event_id)
            event = {}

    def _add(self, entry: dict[str, str]) -> None:
        until = datetime.fromisoformat(entry["until"].replace("Z", "+00:00")).timestamp()
        now = time.time()
        with self._lock:
            if until > now:
                self._revoked[entry["sid"]] = until
            if len(self._revoked) % 256 == 0:  # now and then: the moot ones go
                self._revoked = {sid: at for sid, at in self._revoked.items() if at > now}
