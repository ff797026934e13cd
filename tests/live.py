"""`sessionward serve` as a real process, for the tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import RedisError

from tests.conftest import TEST_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    def __init__(
        self,
        folder: Path,
        *,
        workers: int = 1,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``database_url``: the test's database (PostgreSQL with ``--backend postgres``); by default a
        SQLite file in ``folder``. Several servers given one ``folder`` share its data (keys, secret)."""
        self.folder = folder
        self.port = free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DATABASE_", "DATA_DIR", "REDIS_"))},
            **TEST_ENV,
            "DATABASE_URL": database_url or f"sqlite:///{folder / 'var' / 'sessionward.db'}",
            "DATA_DIR": str(folder / "var"),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> LiveServer:
        """Waits for /readyz. The timeout guards against a hang, not a slow start: a server costs seconds of CPU
        per worker to start, and a loaded two-core machine running four test workers gives it a fraction of one."""
        command = [sys.executable, "-m", "sessionward", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)  # no server left behind to poll a database that is dropped later
        raise RuntimeError(f"server did not become ready in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, sig)  # the server and, with --workers, every worker
        self.process.wait(timeout=20)
        self.process = None


class RedisServer:
    """A Redis of the test's own, stopped and started again on the same port."""

    def __init__(self, folder: Path, binary: str) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--daemonize", "no", "--dir", str(self.folder)]
        with (self.folder / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        client = Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except RedisError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    assert self.process.poll() is None, f"redis-server exited with {self.process.returncode}"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        self.process.wait(timeout=10)
        self.process = None
