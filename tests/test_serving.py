"""Workers sharing one listening socket take its connections by load (`sessionward.serving`)."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from sessionward import serving
from tests.live import LiveServer


def _established(port: int) -> set[int]:
    """Socket inodes of the server side of established TCP connections on `port` (from /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(int(fields[9]))
    return inodes


def _workers(server: LiveServer) -> list[str]:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return [pid for pid in children if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _wait_for_slots(server: LiveServer) -> None:
    """Until every worker has mapped the slots file, i.e. listens (the server is ready when the first does)."""
    deadline = time.monotonic() + 90  # a hang guard: a loaded machine starts the second worker seconds later
    while not all("sessionward-workers-" in Path(f"/proc/{pid}/maps").read_text() for pid in _workers(server)):
        assert time.monotonic() < deadline, "a worker did not start listening"
        time.sleep(0.05)


def _connections_per_worker(server: LiveServer) -> list[int]:
    inodes = _established(server.port)
    counts = []
    for worker in _workers(server):
        sockets = {os.readlink(fd) for fd in Path(f"/proc/{worker}/fd").iterdir() if fd.exists()}
        counts.append(sum(f"socket:[{inode}]" in sockets for inode in inodes))
    return sorted(counts)


def _open_keep_alive(server: LiveServer, count: int) -> list[socket.socket]:
    """`count` connections that arrive while the workers are stopped, each answered once and kept open."""
    workers = [int(pid) for pid in _workers(server)]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(count)]
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    for client in clients:
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
    return clients


@pytest.mark.live
def test_two_workers_share_sixteen_keep_alive_connections_evenly(tmp_path: Path, database_url: str) -> None:
    server = LiveServer(tmp_path, workers=2, database_url=database_url).start()
    try:
        _wait_for_slots(server)
        one_cpu = {min(os.sched_getaffinity(0))}  # as the benchmark runs it: the worker woken first runs alone
        for pid in _workers(server):
            os.sched_setaffinity(int(pid), one_cpu)
        for _ in range(3):  # without the slots, the first worker to wake takes all 16
            clients = _open_keep_alive(server, 16)
            fewer, more = _connections_per_worker(server)
            assert fewer + more == 16
            assert more - fewer <= 2  # a worker busy past the patience leaves one to the other
            for client in clients:
                client.close()
            deadline = time.monotonic() + 5
            while _established(server.port) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.stop()


@pytest.fixture
def slots_file(tmp_path: Path) -> str:
    path = tmp_path / "slots"
    path.write_bytes(bytes(serving._SLOT.size * serving._SLOTS))
    return str(path)


@pytest.fixture
def other_worker() -> Iterator[int]:
    """A live process to stand for another worker."""
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def _write_slot(path: str, index: int, pid: int, count: int) -> None:
    with open(path, "r+b") as file:
        file.seek(index * serving._SLOT.size)
        file.write(serving._SLOT.pack(pid, count))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_worker_has_the_fewest_unless_a_live_one_has_fewer(slots_file: str, other_worker: int) -> None:
    _write_slot(slots_file, 0, other_worker, 2)
    slots = serving.Slots(slots_file)
    slots.record(3)
    assert slots.fewest(2)
    assert not slots.fewest(3)
    _write_slot(slots_file, 0, _dead_pid(), 0)
    assert slots.fewest(3)  # a dead worker's slot counts for nothing


def test_a_dead_workers_slot_is_taken_by_the_next(slots_file: str, other_worker: int) -> None:
    _write_slot(slots_file, 0, other_worker, 0)
    _write_slot(slots_file, 1, _dead_pid(), 5)
    serving.Slots(slots_file)
    with open(slots_file, "rb") as file:
        data = file.read()
    assert serving._SLOT.unpack_from(data, serving._SLOT.size) == (os.getpid(), 0)


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _echo(port: int) -> tuple[float, asyncio.StreamWriter]:
    """Seconds until a new connection to `port` is served."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.read(4), 5) == b"ping"
    return time.monotonic() - started, writer


def _in_serving_loop(slots_file: str, test: Coroutine[Any, Any, None]) -> None:
    os.environ[serving.SLOTS_ENV] = slots_file
    loop = serving.Loop()
    try:
        loop.run_until_complete(test)
    finally:
        os.environ.pop(serving.SLOTS_ENV)
        loop.close()


def test_a_busier_worker_leaves_a_connection_to_another_then_takes_it_if_nobody_does(
    slots_file: str, other_worker: int
) -> None:
    _write_slot(slots_file, 0, other_worker, 0)  # another worker with no connections, that never accepts

    async def test() -> None:
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        server = await asyncio.get_running_loop().create_server(_Echo, sock=listening, ssl=None, backlog=10)
        first, one = await _echo(port)  # 0 against 0: taken at once
        second, two = await _echo(port)  # 1 against 0: left to the other worker, then taken
        assert first < serving._PATIENCE_S <= second
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        cast(serving._Listener, server).lost()  # a connection that ends while the worker shuts down
        for writer in (one, two):
            writer.close()
        listening.close()

    _in_serving_loop(slots_file, test())
    ours = Path(slots_file).read_bytes()[serving._SLOT.size : 2 * serving._SLOT.size]
    assert ours == bytes(serving._SLOT.size)  # given back when the listener closed, and left alone after


def test_out_of_file_descriptors_the_listener_waits_and_accepts_later(slots_file: str) -> None:
    async def test() -> None:
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        server = await asyncio.get_running_loop().create_server(_Echo, sock=listening, ssl=None, backlog=10)
        client = socket.socket()
        client.setblocking(False)
        limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, limits[1]))  # accept() gets EMFILE
        try:
            started = time.monotonic()
            client.connect_ex(("127.0.0.1", port))
            await asyncio.sleep(serving._BACKOFF_S / 2)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        reader, writer = await asyncio.open_connection(sock=client)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(4), 5) == b"ping"
        assert time.monotonic() - started >= serving._BACKOFF_S - 0.01  # served after the wait, not before
        writer.close()
        server.close()
        listening.close()

    _in_serving_loop(slots_file, test())


def test_one_worker_serves_on_plain_uvloop_and_several_share_a_slots_file() -> None:
    with serving.loop_and_protocol(1) as options:
        assert options == ("uvloop", "httptools")
        assert serving.SLOTS_ENV not in os.environ
    with serving.loop_and_protocol(2) as options:
        assert options == ("sessionward.serving:Loop", "sessionward.serving:HttpProtocol")
        path = os.environ[serving.SLOTS_ENV]
        assert Path(path).stat().st_size == serving._SLOT.size * serving._SLOTS
    assert not Path(path).exists()
    assert serving.SLOTS_ENV not in os.environ
