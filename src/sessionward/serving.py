"""Worker processes that share one listening socket take its connections by load.

Every worker's event loop watches the socket, and the kernel hands a new connection to whichever accepts first; a
keep-alive connection then stays with that worker for its life, so a few clients can load one worker far more than
the other (16 connections were seen split 2 / 14 and 4 / 12). Here each worker keeps its count of open connections
in a slot of a small shared file, and one that has more than another worker lets that one take the connection: it
looks again in a millisecond, and accepts anyway after 20 ms (the other may be busy, or gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import select
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

SLOTS_ENV = "SESSIONWARD_WORKER_SLOTS"
_SLOT = struct.Struct("qq")  # a worker's pid, its open connections
_SLOTS = 64
_RETRY_S = 0.001
_PATIENCE_S = 0.02
_BACKOFF_S = 0.1


@contextlib.contextmanager
def loop_and_protocol(workers: int) -> Iterator[tuple[str, str]]:
    """uvicorn's event loop and HTTP protocol for `workers` processes; with several, a slots file (SLOTS_ENV)."""
    if workers == 1:
        yield "uvloop", "httptools"
        return
    with tempfile.NamedTemporaryFile(prefix="sessionward-workers-") as file:
        file.truncate(_SLOT.size * _SLOTS)
        os.environ[SLOTS_ENV] = file.name
        try:
            yield f"{__name__}:Loop", f"{__name__}:HttpProtocol"
        finally:
            os.environ.pop(SLOTS_ENV, None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Slots:
    """This worker's slot in the shared file, and a look at the others'."""

    def __init__(self, path: str) -> None:
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), _SLOT.size * _SLOTS)
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                self._offset = self._claim(os.getpid())
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def _claim(self, pid: int) -> int:
        for offset in range(0, _SLOT.size * _SLOTS, _SLOT.size):
            owner, _ = _SLOT.unpack_from(self._map, offset)
            if owner == 0 or not _alive(owner):
                _SLOT.pack_into(self._map, offset, pid, 0)
                return offset
        raise RuntimeError(f"more than {_SLOTS} workers share one listening socket")

    def record(self, count: int) -> None:
        _SLOT.pack_into(self._map, self._offset, os.getpid(), count)

    def release(self) -> None:
        _SLOT.pack_into(self._map, self._offset, 0, 0)

    def fewest(self, count: int) -> bool:
        """True unless a live worker has fewer than `count` open connections."""
        pid = os.getpid()
        for offset in range(0, _SLOT.size * _SLOTS, _SLOT.size):
            owner, theirs = _SLOT.unpack_from(self._map, offset)
            if owner not in (0, pid) and theirs < count and _alive(owner):
                return False
        return True


class _Listener(asyncio.AbstractServer):
    """Accepts one connection at a time from `sock` when this worker has the fewest open ones."""

    this_worker: ClassVar[_Listener | None] = None

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        slots: Slots,
    ) -> None:
        self._loop, self._sock, self._protocol_factory, self._slots = loop, sock, protocol_factory, slots
        self._open = 0  # accepted and not yet lost
        self._waiting_since: float | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._serving = True
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)
        _Listener.this_worker = self

    def _readable(self) -> None:
        now = time.monotonic()
        if not self._slots.fewest(self._open):
            self._waiting_since = self._waiting_since or now
            if now - self._waiting_since < _PATIENCE_S:
                self._wait(_RETRY_S)
                return
        self._waiting_since = None
        try:
            connection, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client left
        except OSError:  # out of file descriptors or memory: look again later
            self._wait(_BACKOFF_S)
            return
        self._counted(+1)
        task = self._loop.create_task(self._connect(connection))
        self._connecting.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._connecting.discard)

    def _counted(self, change: int) -> None:
        self._open += change
        if self._serving:  # once closed, the slot may be another worker's
            self._slots.record(self._open)

    def lost(self) -> None:
        self._counted(-1)

    def _wait(self, seconds: float) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(seconds, self._watch)

    def _watch(self) -> None:
        self._retry = None
        waiting = select.poll()
        waiting.register(self._sock, select.POLLIN)
        if not waiting.poll(0):
            self._waiting_since = None  # taken meanwhile: the next connection waits afresh
        self._loop.add_reader(self._sock.fileno(), self._readable)

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, connection)
        except OSError:
            connection.close()  # the client left before it was served
            self.lost()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._serving = False
        self._slots.release()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        raise NotImplementedError("uvicorn serves until it closes the listener")

    async def wait_closed(self) -> None:
        return None


class Loop(uvloop.Loop):
    """uvloop, with a shared listening socket served by `_Listener` when the workers have a slots file."""

    async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> asyncio.AbstractServer:  # type: ignore[override]
        path, sock = os.environ.get(SLOTS_ENV), kwargs.get("sock")
        if path is None or sock is None or kwargs.get("ssl") is not None:
            return await super().create_server(protocol_factory, *args, **kwargs)
        sock.listen(kwargs.get("backlog", 100))
        return _Listener(self, sock, protocol_factory, Slots(path))


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, which tells the worker's listener when a connection ends."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if _Listener.this_worker is not None:
            _Listener.this_worker.lost()
