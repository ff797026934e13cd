"""An app's own backend, a separate process: sessionward-client's FastAPI dependency or plain ASGI middleware, or
the Express example with jose and sessionward-js's RevocationList, each with the revocation stream. It refuses a
revoked session's access token within a second, without a call to sessionward per request. ``--workers 2``;
SQLite, PostgreSQL, PostgreSQL with Redis."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessionward.apps.keys import Scope
from tests.conftest import API, PASSWORD
from tests.live import LiveServer, free_port
from tests.test_revocation_stream import login, make_key, signed_up

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parent.parent
PYTHON_EXAMPLE = ROOT / "client" / "examples" / "app_backend.py"
EXPRESS_EXAMPLE = ROOT / "js" / "examples" / "express"
BOUND = 1.0


class Backend:
    def __init__(self, folder: Path, server: str, key: str, style: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"backend-{self.port}.log"
        log = self.log.open("wb")
        options = ["--server", server, "--key", key, "--port", str(self.port)]
        if style == "express":
            command = ["node", str(EXPRESS_EXAMPLE / "server.mjs"), *options]
        else:
            command = [sys.executable, str(PYTHON_EXAMPLE), *options, "--style", style]
        self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 90  # a hang guard: a loaded CI machine starts processes slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json() == {"ok": True}:
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the app backend did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(20)


@pytest.fixture
def server(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    env = {"RATE_LIMIT_ENABLED": "false", "JWT_ALGORITHM": "EdDSA"}
    if getattr(request, "param", None) == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    live = LiveServer(tmp_path, database_url=database_url, workers=2, env=env)
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.mark.parametrize("server", ["polled", "redis"], indirect=True)
@pytest.mark.parametrize(("style", "count"), [("dependency", 100), ("middleware", 20), ("express", 100)])
def test_the_app_backend_refuses_a_revoked_sessions_token_within_a_second(
    server: LiveServer, database_url: str, tmp_path: Path, style: str, count: int
) -> None:
    """Measured over 100 revocations; the middleware shares the dependency's verifier, so 20 suffice there."""
    key = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
    backend = Backend(tmp_path, server.base_url, key, style)
    try:
        [email] = signed_up(server.base_url, 1)
        delays = []
        with httpx.Client(timeout=10) as http:
            for _ in range(count):
                data = login(server.base_url, email)
                auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
                assert http.get(f"{backend.url}/hello", headers=auth).status_code == 200
                assert http.post(f"{server.base_url}{API}/logout", json={}, headers=auth).status_code == 200
                revoked_at = time.monotonic()
                while http.get(f"{backend.url}/hello", headers=auth).status_code == 200:
                    assert time.monotonic() - revoked_at < 5, "still accepted after 5 s"
                delays.append(time.monotonic() - revoked_at)
        print(
            f"APP_BACKEND_REFUSES {style} p50 {statistics.median(delays) * 1000:.0f} ms max {max(delays) * 1000:.0f} ms"
        )
        assert max(delays) < BOUND
        refused = httpx.get(f"{backend.url}/hello", headers={"authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    finally:
        backend.stop()


@pytest.mark.parametrize("style", ["middleware", "express"])
def test_the_app_backend_fails_closed_when_the_stream_is_down_past_max_stale(
    server: LiveServer, database_url: str, tmp_path: Path, style: str
) -> None:
    key = make_key(database_url, tmp_path, Scope.SESSIONS_READ)
    backend = Backend(tmp_path, server.base_url, key, style)
    try:
        [email] = signed_up(server.base_url, 1)
        data = login(server.base_url, email)
        auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
        assert httpx.get(f"{backend.url}/hello", headers=auth).status_code == 200
        server.stop()  # the service (and its stream) gone; the JWKS is cached
        time.sleep(6)  # past max_stale (5 s)
        down = httpx.get(f"{backend.url}/hello", headers=auth)
        assert down.status_code == 503
        server.start()
        deadline = time.monotonic() + 90  # a hang guard; the restart itself is the test
        while httpx.get(f"{backend.url}/hello", headers=auth).status_code != 200:
            assert time.monotonic() < deadline, "did not recover once the stream was back"
            time.sleep(0.2)
    finally:
        backend.stop()
    assert PASSWORD
