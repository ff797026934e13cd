"""CPU time per request of the hot paths, in process: what a change costs, unmoved by a noisy host.

Drives the ASGI application directly (no HTTP server, no client library in the measured loop) on a SQLite file:
``GET /me`` with a warm cache and ``POST /refresh`` rotations, N each, timed with the process's CPU clock; the
best of --rounds. Run it with each tree's interpreter to compare two revisions:

    PYTHONPATH=src .venv/bin/python bench/cpu_per_request.py [--multiprocess] [-n 5000] [--rounds 5]

``--multiprocess``: metrics in prometheus_client's multiprocess mode, as ``serve --workers N`` runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from typing import Any

import orjson

parser = argparse.ArgumentParser()
parser.add_argument("-n", type=int, default=5000)
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--multiprocess", action="store_true")
args = parser.parse_args()
folder = tempfile.mkdtemp(prefix="sessionward-cpu-")
if args.multiprocess:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=folder)
os.environ.update(
    {
        "DATABASE_URL": f"sqlite:///{folder}/sessionward.db",
        "DATA_DIR": folder,
        "JWT_SECRET": "bench-secret-with-at-least-32-bytes-of-entropy",
        "RATE_LIMIT_ENABLED": "false",
        "CLEANUP_SCHEDULE": "off",
        "ENV": "production",
        "LOG_LEVEL": "WARNING",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_TIME_COST": "1",
    }
)

from sessionward.app import create_app  # noqa: E402
from sessionward.config import load_settings  # noqa: E402
from sessionward.context import Context  # noqa: E402
from sessionward.migrations import upgrade_sync  # noqa: E402

UA = b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def call(app: Any, method: str, path: str, body: bytes = b"", auth: str | None = None) -> tuple[int, bytes]:
    headers = [(b"host", b"bench"), (b"user-agent", UA), (b"content-type", b"application/json")]
    if auth:
        headers.append((b"authorization", f"Bearer {auth}".encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("203.0.113.7", 50000), "server": ("bench", 80),
    }  # fmt: skip
    sent: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return sent["status"], sent["body"]


def check(status: int, body: bytes) -> None:
    if status != 200:
        raise SystemExit(f"answered {status}: {body[:200]!r}")


async def main() -> None:
    settings = load_settings()
    ctx = Context.build(settings)
    app = create_app(ctx)
    api = "/api/v1/auth"
    credentials = orjson.dumps({"email": "cpu@example.com", "password": "bench password 1"})
    await call(app, "POST", f"{api}/register", credentials)
    status, body = await call(app, "POST", f"{api}/login", credentials)
    check(status, body)
    data = orjson.loads(body)["data"]
    access, refresh, session = (
        data["tokens"]["access"]["token"],
        data["tokens"]["refresh"]["token"],
        data["session"]["id"],
    )
    me: list[float] = []
    rotations: list[float] = []
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(args.n):
            status, _ = await call(app, "GET", f"{api}/me", auth=access)
        me.append((time.process_time() - started) / args.n)
        check(status, b"")
        started = time.process_time()
        for _ in range(args.n):
            status, body = await call(
                app, "POST", f"{api}/refresh", orjson.dumps({"refresh_token": refresh, "session_id": session})
            )
            refresh = orjson.loads(body)["data"]["refresh"]["token"]
        rotations.append((time.process_time() - started) / args.n)
        check(status, body)
    await ctx.close()
    mode = "multiprocess metrics" if args.multiprocess else "in-memory metrics"
    print(f"{sys.prefix}  {mode}: GET /me {min(me) * 1e6:.1f} us CPU, refresh {min(rotations) * 1e6:.1f} us CPU")


upgrade_sync(load_settings().database_url)
asyncio.run(main())
