"""The service as a process: what users run, restarted and killed for real."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import API, FIREFOX_LINUX, PASSWORD
from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path, database_url=database_url, env={"RATE_LIMIT_ENABLED": "false"})
    live.start()
    yield live
    live.stop()


async def _sign_in(client: httpx.AsyncClient, email: str) -> tuple[str, str, str]:
    await client.post(f"{API}/register", json={"email": email, "password": PASSWORD})
    response = await client.post(f"{API}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["tokens"]["access"]["token"], data["tokens"]["refresh"]["token"], data["session"]["id"]


def _client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers={"user-agent": FIREFOX_LINUX}, timeout=10)


async def test_sessions_and_tokens_survive_a_restart(server: LiveServer) -> None:
    async with _client(server) as client:
        access, token, session_id = await _sign_in(client, "restart@example.com")
        rotated = await client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id})
        newest = rotated.json()["data"]["refresh"]["token"]
    server.stop()
    server.start()
    async with _client(server) as client:
        me = await client.get(f"{API}/me", headers={"authorization": f"Bearer {access}"})
        assert me.status_code == 200
        again = await client.post(f"{API}/refresh", json={"refresh_token": newest, "session_id": session_id})
        assert again.status_code == 200


async def _refresh_loop(client: httpx.AsyncClient, session_id: str, token: str, acknowledged: dict[str, str]) -> None:
    """Refresh as fast as the server answers; remember every rotation the server acknowledged."""
    acknowledged[session_id] = token
    while True:
        try:
            response = await client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id})
        except httpx.TransportError:
            return
        assert response.status_code == 200, response.text
        token = response.json()["data"]["refresh"]["token"]
        acknowledged[session_id] = token


async def test_sigkill_during_refreshes_loses_no_acknowledged_rotation(server: LiveServer) -> None:
    acknowledged: dict[str, str] = {}
    async with _client(server) as client:
        signed_in = [await _sign_in(client, f"kill{i}@example.com") for i in range(8)]
        loops = [asyncio.create_task(_refresh_loop(client, sid, token, acknowledged)) for _, token, sid in signed_in]
        await asyncio.sleep(1.5)
        server.stop(signal.SIGKILL)
        await asyncio.gather(*loops)
    rotations = len(acknowledged)
    assert rotations == 8
    server.start()
    # Within the reuse interval, a rotation committed but never acknowledged is answered by the
    # grace rule with the same successor; anything acknowledged is live. Either way: 200.
    async with _client(server) as client:
        for session_id, token in acknowledged.items():
            response = await client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id})
            assert response.status_code == 200, (session_id, response.text)


@pytest.mark.parametrize(("trusted", "recorded"), [("", "127.0.0.1"), ("127.0.0.1", "198.51.100.23")])
async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    tmp_path: Path, database_url: str, trusted: str, recorded: str
) -> None:
    live = LiveServer(tmp_path, database_url=database_url, env={"TRUSTED_PROXIES": trusted}).start()
    try:
        async with _client(live) as client:
            forwarded = {"x-forwarded-for": "198.51.100.23"}
            await client.post(f"{API}/register", json={"email": "proxy@example.com", "password": PASSWORD})
            login = await client.post(
                f"{API}/login", json={"email": "proxy@example.com", "password": PASSWORD}, headers=forwarded
            )
            assert login.status_code == 200, login.text
            assert login.json()["data"]["session"]["device_info"]["ip"] == recorded
    finally:
        live.stop()


def test_logs_are_json_lines_in_a_file_without_duplicated_fields(server: LiveServer) -> None:
    lines = server.log.read_text().splitlines()
    banner = [line for line in lines if line.startswith("sessionward on http://")]  # stdout: where to point a browser
    assert len(banner) == 1
    entries = [orjson.loads(line) for line in lines if line not in banner]
    started = [entry for entry in entries if entry["msg"].startswith("Started server process")]
    assert started, entries
    assert set(started[0]) == {"ts", "level", "logger", "msg"}  # uvicorn's color_message left out


def test_logs_are_readable_lines_on_a_terminal(tmp_path: Path, database_url: str) -> None:
    """``make run`` in a terminal: the server's stderr is a pseudo-terminal, as a person's shell gives it."""
    live = LiveServer(tmp_path, database_url=database_url)
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "sessionward", "serve", "--port", str(live.port)]
    process = subprocess.Popen(command, cwd=tmp_path, env=live.env, stdout=secondary, stderr=secondary)
    os.close(secondary)
    output = b""
    try:
        deadline = time.monotonic() + 90  # a hang guard
        while b"Application startup complete" not in output:
            assert time.monotonic() < deadline, output
            if select.select([primary], [], [], 1)[0]:
                output += os.read(primary, 65536)
    finally:
        process.terminate()
        process.wait(20)
        os.close(primary)
    lines = output.decode().splitlines()
    [ready] = [line for line in lines if "Application startup complete" in line]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO    uvicorn\.error  Application startup complete\.", ready)
    assert not [line for line in lines if line.startswith("{")]
