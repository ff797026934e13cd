"""A live `sessionward serve` process for the client tests, and helpers to stage faults against it.

The server runs as a separate process (the client never imports it). It signs with EdDSA using a key
the tests made, so they can also forge tokens (an expired one) the server recognises as its own.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

PASSWORD = "correct horse battery"
REFRESH_ROUTE = "/api/v1/auth/refresh"

# Cheap argon2: the parameters, not the algorithm, make it slow (the server's own tests do the same).
SERVER_ENV = {
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_TIME_COST": "1",
    "ARGON2_PARALLELISM": "1",
    "CLEANUP_SCHEDULE": "off",
    "RATE_LIMIT_ENABLED": "false",
    "MAX_SESSIONS_PER_USER": "50",
    "JWT_ALGORITHM": "EdDSA",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    signing_key: ed25519.Ed25519PrivateKey
    process: subprocess.Popen[bytes]

    def counter(self, route: str, status: int, method: str = "POST") -> float:
        """A value of ``sessionward_http_requests_total`` from the server's /metrics."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=5).text
        labels = f'method="{method}",route="{route}",status="{status}"'
        match = re.search(r"^sessionward_http_requests_total\{" + re.escape(labels) + r"\} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def refreshes(self) -> float:
        """Successful ``POST /api/v1/auth/refresh`` answers so far."""
        return self.counter(REFRESH_ROUTE, 200)

    def expired_copy(self, access_token: str) -> str:
        """The same access token (same kid, sub, sid), signed by the server's key, expired a minute ago."""
        header = jwt.get_unverified_header(access_token)
        claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
        now = int(time.time())
        claims |= {"iat": now - 960, "exp": now - 60, "jti": f"forged-{now}-{next(_counter)}"}
        return jwt.encode(
            claims, self.signing_key, algorithm="EdDSA", headers={"typ": header["typ"], "kid": header["kid"]}
        )


_counter = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = folder / "signing.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    port = _free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JWT_", "DATABASE_", "DATA_DIR", "ACCESS_", "REFRESH_"))
        },
        **SERVER_ENV,
        "JWT_PRIVATE_KEY_FILE": str(key_file),
        "DATABASE_URL": f"sqlite:///{folder / 'var' / 'sessionward.db'}",
        "DATA_DIR": str(folder / "var"),
    }
    log = (folder / "server.log").open("ab")
    command = [sys.executable, "-m", "sessionward", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url, folder / "server.log")
        yield Server(base_url, key, process)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


_emails = itertools.count()


@pytest.fixture
def email(request: pytest.FixtureRequest) -> str:
    """A fresh address per test (the server lives for the whole session)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{name}-{os.getpid()}-{next(_emails)}@example.com"


def register(server: Server, email: str, password: str = PASSWORD) -> None:
    response = httpx.post(f"{server.base_url}/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
