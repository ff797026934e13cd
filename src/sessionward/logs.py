"""Logs, one line per record, with the request id of the request being served: JSON for a machine to read, or
a readable line when stderr is a terminal (``make run``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# ``color_message``: uvicorn's copy of its message with terminal colours, a duplicate in any line of ours.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}
_make_record = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """The request id is read when a record is made: a queue, another thread or a test's capture
    formats it later, outside the request."""
    record = _make_record(*args, **kwargs)
    rid = request_id.get()
    if rid is not None:
        record.request_id = rid
    return record


logging.setLogRecordFactory(_record_with_request_id)


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


def _timestamp(created: float) -> str:
    """RFC 3339, UTC, to the microsecond; the date and time of day are made once a second (the access log
    makes one per request)."""
    second = int(created)
    return f"{_second(second)}.{int((created - second) * 1_000_000):06d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a line says besides its time, level, logger and message."""
    fields: dict[str, Any] = {}
    rid = getattr(record, "request_id", None) or request_id.get()
    if rid:
        fields["request_id"] = rid
    fields.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    if record.exc_info and record.exc_info[0] is not None:
        # The type only: exception text can carry SQL parameters, and so tokens or hashes.
        fields["exc_type"] = record.exc_info[0].__name__
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``16:12:29.111 WARNING sessionward.tokens.keys  JWT_SECRET is not set ...  key=value``: for a person at a
    terminal; the same fields as the JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        clock = _timestamp(record.created)[11:23]
        fields = " ".join(f"{key}={_text(value)}" for key, value in _fields(record).items())
        line = f"{clock} {record.levelname:<7} {record.name}  {record.getMessage()}"
        return f"{line}  {fields}" if fields else line


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return orjson.dumps(text).decode() if not text or any(c in text for c in ' "=') else text


def configure(level: str, *, readable: bool | None = None) -> None:
    """``readable``: the one-line text format; by default when stderr is a terminal."""
    # The logging HOWTO's "Optimization": none of these appear in our lines, and the access log runs per request.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller frame lookup
    handler = logging.StreamHandler(sys.stderr)
    readable = sys.stderr.isatty() if readable is None else readable
    handler.setFormatter(TextFormatter() if readable else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Its debug lines repeat every statement with its parameters: password and token hashes.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    logging.getLogger("uvicorn.access").disabled = True  # the pipeline logs each request itself
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """The access log (one line per request), handed to ``logging`` in batches.

    Made one at a time, at the end of each request, a record cost about 12 µs: a fifth of ``GET /me``. Made back
    to back, records cost about half that. A line waits at most ``DELAY_SECONDS`` (or ``BATCH`` requests) and keeps
    its request's time and id; ``flush`` also runs at shutdown (the app's lifespan).
    """

    DELAY_SECONDS = 0.05
    BATCH = 256

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._pending: list[tuple[float, str, dict[str, Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, rid: str, fields: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        self._pending.append((time.time(), rid, fields))
        if len(self._pending) >= self.BATCH:
            self.flush()
        else:
            loop = asyncio.get_running_loop()
            if self._timer is None or self._loop is not loop:  # (a test's loop ends with its timer pending)
                self._loop, self._timer = loop, loop.call_later(self.DELAY_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        for created, rid, fields in pending:
            record = self._logger.makeRecord(self._logger.name, logging.INFO, "", 0, "request", (), None, extra=fields)
            record.created, record.msecs = created, (created - int(created)) * 1000
            record.request_id = rid
            self._logger.handle(record)


access = AccessLog(logging.getLogger("sessionward"))
