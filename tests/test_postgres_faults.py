"""PostgreSQL stopped while serving, and started again: a cluster of the test's own, stopped for real."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessionward.migrations import upgrade_sync
from tests.conftest import API, FIREFOX_LINUX, PASSWORD
from tests.live import LiveServer, free_port

pytestmark = pytest.mark.live


class Cluster:
    """A throw-away PostgreSQL cluster (initdb, pg_ctl) on a free port, owned by the postgres user."""

    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.folder, self.bin_dir, self.port = folder, bin_dir, free_port()
        self.data = folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "postgres.log")  # the server must not hold our pipes open
        self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="sessionward-pg-"))
    made = Cluster(folder, Path(found[-1]).parent)
    made.create()
    made.start()
    try:
        yield made
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(made.bin_dir / "pg_ctl"),
                "-D",
                str(made.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _poll(client: httpx.Client, path: str, status: int, seconds: float = 15.0, **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = client.request("GET", path, **kwargs)  # type: ignore[arg-type]
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_postgres_down_answers_503_and_the_same_process_recovers(cluster: Cluster, tmp_path: Path) -> None:
    upgrade_sync(cluster.url)
    server = LiveServer(tmp_path, database_url=cluster.url, env={"DATABASE_TIMEOUT": "2s"}).start()
    try:
        with httpx.Client(base_url=server.base_url, headers={"user-agent": FIREFOX_LINUX}, timeout=15) as client:
            assert client.post(f"{API}/register", json={"email": "pg@example.com", "password": PASSWORD}).is_success
            login = client.post(f"{API}/login", json={"email": "pg@example.com", "password": PASSWORD}).json()["data"]
            token, session_id = login["tokens"]["refresh"]["token"], login["session"]["id"]

            cluster.stop()
            refused = client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert refused.json() == {"status": "error", "message": refused.json()["message"]}
            login_down = client.post(f"{API}/login", json={"email": "pg@example.com", "password": PASSWORD})
            assert login_down.status_code == 503
            ready = _poll(client, "/readyz", 503)
            assert ready.status_code == 503
            assert "retry-after" in ready.headers
            assert client.get("/healthz").status_code == 200

            cluster.start()
            assert _poll(client, "/readyz", 200).status_code == 200
            # Nothing acknowledged was lost and nothing was half-done: the token the 503 left alone works.
            again = client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id})
            assert again.status_code == 200, again.text
            assert (
                client.get(
                    f"{API}/me", headers={"authorization": f"Bearer {again.json()['data']['access']['token']}"}
                ).status_code
                == 200
            )
    finally:
        server.stop()
