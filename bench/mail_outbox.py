"""The outbox under load: 1,000 queued mails (or webhooks) delivered while clients refresh.

Starts `sessionward serve --workers 2` (on CPU 0 when taskset exists) with SMTP_URL pointing at an aiosmtpd server
in this process, and runs the shared load generator (refresh-only, 16 clients, CPU 1) for --duration seconds,
quiet, then with 1,000 rows written to the outbox as it starts, --rounds times. Prints refresh/s, p50, p99 of
each window and rows/s (rows written to the last one received). ``--kind webhook``: 1,000 events of 1,000 users
for one endpoint, posted to a receiver in this process that verifies each signature (tests/receiver.py). Also:
--enumeration N, the time `POST /password/forgot` and `POST /email/verification` take for N known and N unknown
addresses, interleaved.

    .venv/bin/python bench/mail_outbox.py [--database-url postgresql://...] [--duration 10] [--kind webhook]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessionward.db import Database  # noqa: E402
from sessionward.outbox.tables import outbox  # noqa: E402
from sessionward.vault import new_key_text  # noqa: E402
from tests.receiver import Receiver, receiving  # noqa: E402
from tests.smtp import SmtpServer  # noqa: E402

API = "/api/v1/auth"
LOADGEN_VENV = Path("/tmp/loadgen-venv")  # made by `make bench` (bench/harness.py)
PASSWORD = "bench password 1"
DATA_KEY = new_key_text()  # the server's and this process's: `webhooks add` seals the endpoint's secret with it


def start_server(folder: Path, database_url: str, smtp_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(folder / "var"),
        "JWT_SECRET": "bench-secret-with-at-least-32-bytes-of-entropy",
        "SMTP_URL": smtp_url,
        "RATE_LIMIT_ENABLED": "false",
        "CLEANUP_SCHEDULE": "off",
        "ENV": "production",
        "NEW_DEVICE_ALERTS": "false",
        "DATA_ENCRYPTION_KEY": DATA_KEY,
    }
    command = [str(ROOT / ".venv/bin/sessionward"), "serve", "--port", str(port), "--workers", "2"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=folder)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def refresh_load(base: str, duration: float, out: Path) -> dict[str, Any]:
    """The shared load generator, refresh-only, 16 clients, on CPU 1 (as `make bench` runs it)."""
    command = [
        str(LOADGEN_VENV / "bin" / "python"), str(ROOT / "bench" / "loadgen.py"),
        "--config", str(ROOT / "bench" / "configs" / "sessionward.json"), "--base-url", base,
        "--mode", "refresh-only", "-c", "16", "-n", "16", "-w", "2", "-d", str(duration), "--out", str(out),
    ]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())["endpoints"]["refresh"]
    return result


def line(label: str, result: dict[str, Any]) -> str:
    rate, p50, p99 = result["ok_per_s"], result["p50_ms"], result["p99_ms"]
    return f"{label:22s} {rate:7.0f} refresh/s  p50 {p50:5.1f} ms  p99 {p99:5.1f} ms"


def _mail(n: int, now: datetime) -> dict[str, Any]:
    payload = {
        "template": "test",
        "to": f"load{n}@example.com",
        "message_id": make_msgid(domain="localhost"),
        "params": {"at": now.isoformat()},
        "requester": None,
    }
    return {"kind": "mail", "user_id": None, "payload": payload, "ordering_key": None}


def _webhook(n: int, now: datetime) -> dict[str, Any]:
    """An event of user ``n`` for endpoint 1, as ``webhooks.emit`` writes it."""
    user_id = 1_000_000 + n
    payload = {
        "endpoint_id": 1,
        "id": f"msg_bench{n}_{time.time_ns()}",
        "type": "session.created",
        "timestamp": now.isoformat(),
        "data": {"user_id": user_id, "session_id": f"{n:064x}"},
    }
    return {"kind": "webhook", "user_id": user_id, "payload": payload, "ordering_key": f"webhook:1:{user_id}"}


async def queue_rows(database_url: str, kind: str, count: int) -> None:
    db = Database(database_url)
    now = datetime.now(UTC)
    make = _mail if kind == "mail" else _webhook
    rows = [{**make(n, now), "created_at": now, "due_at": now, "attempts": 0} for n in range(count)]
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(insert(outbox), rows)
    finally:
        await db.dispose()


def load(
    base: str,
    duration: float,
    rounds: int,
    *,
    database_url: str,
    smtp: SmtpServer,
    hooks: Receiver,
    kind: str,
    folder: Path,
) -> None:
    """Quiet and busy windows in turn, ``rounds`` times (each pair sees the same host)."""
    for n in range(rounds):
        print(line("quiet", refresh_load(base, duration, folder / f"quiet{n}.json")))
        smtp.inbox.messages.clear()
        hooks.received.clear()
        queued_at = time.monotonic()
        asyncio.run(queue_rows(database_url, kind, 1000))
        busy = refresh_load(base, duration, folder / f"busy{n}.json")
        if kind == "mail":
            smtp.inbox.wait_for(1000, 300)
        else:
            deadline = time.monotonic() + 300
            while len(hooks.received) < 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            if len(hooks.received) < 1000:
                raise SystemExit(f"{len(hooks.received)} webhooks received, {len(hooks.attempts)} tried")
        took = time.monotonic() - queued_at
        rate = f"   1,000 {kind}s in {took:.1f} s: {1000 / took:.0f} {kind}s/s"
        print(line(f"1,000 {kind}s sending", busy) + rate)


def add_endpoint(folder: Path, database_url: str, hooks: Receiver) -> None:
    """Endpoint 1, by the CLI (its secret sealed with DATA_KEY); the receiver verifies with its secret."""
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(folder / "var"), "DATA_ENCRYPTION_KEY": DATA_KEY}
    command = [str(ROOT / ".venv/bin/sessionward"), "webhooks", "add", hooks.url, "--events", "session.created"]
    added = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    hooks.secret = added.stdout.strip()


async def enumeration(base: str, rounds: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for n in range(rounds):
            await client.post(f"{API}/register", json={"email": f"known{n}@example.com", "password": PASSWORD})
        await asyncio.sleep(2)
        for path in ("password/forgot", "email/verification"):
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            for n in range(rounds):
                for kind in ("known", "unknown"):
                    started = time.perf_counter()
                    response = await client.post(f"{API}/{path}", json={"email": f"{kind}{n}@example.com"})
                    if response.status_code != 202:
                        raise SystemExit(f"{path}: {response.status_code}")
                    times[kind].append((time.perf_counter() - started) * 1000)
            for kind, values in times.items():
                q = statistics.quantiles(values, n=100)
                spread = f"p10 {q[9]:.2f}  p50 {q[49]:.2f}  p90 {q[89]:.2f}  p99 {q[98]:.2f} ms"
                print(f"{path:20s} {kind:8s} n={len(values)} {spread}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--enumeration", type=int, default=0, help="rounds of the known / unknown timing instead")
    parser.add_argument("--kind", choices=["mail", "webhook"], default="mail", help="what the 1,000 rows are")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sessionward-mail-bench-"))
    database_url = args.database_url or f"sqlite:///{folder / 'var' / 'sessionward.db'}"
    smtp = SmtpServer(folder).start()
    port = 8765
    server = start_server(folder, database_url, smtp.url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        with receiving() as hooks:
            add_endpoint(folder, database_url, hooks)
            if args.enumeration:
                asyncio.run(enumeration(base, args.enumeration))
            else:
                rounds = args.rounds
                load(
                    base,
                    args.duration,
                    rounds,
                    database_url=database_url,
                    smtp=smtp,
                    hooks=hooks,
                    kind=args.kind,
                    folder=folder,
                )
    finally:
        server.terminate()
        server.wait(20)
        smtp.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
