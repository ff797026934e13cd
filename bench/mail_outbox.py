"""The outbox under load: 1,000 queued mails delivered to a local SMTP server while clients refresh.

Starts `sessionward serve --workers 2` (on CPU 0 when taskset exists) with SMTP_URL pointing at an aiosmtpd server
in this process, and runs the shared load generator (refresh-only, 16 clients, CPU 1) for --duration seconds,
quiet, then with 1,000 mails written to the outbox as it starts, --rounds times. Prints refresh/s, p50, p99 of
each window and mails/s (rows written to the last mail received). Also: --enumeration N, the time
`POST /password/forgot` and `POST /email/verification` take for N known and N unknown addresses, interleaved.

    .venv/bin/python bench/mail_outbox.py [--database-url postgresql://...] [--duration 10]
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
from tests.smtp import SmtpServer  # noqa: E402

API = "/api/v1/auth"
LOADGEN_VENV = Path("/tmp/loadgen-venv")  # made by `make bench` (bench/harness.py)
PASSWORD = "bench password 1"


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


async def queue_mails(database_url: str, count: int) -> None:
    db = Database(database_url)
    now = datetime.now(UTC)
    rows = [
        {
            "kind": "mail",
            "user_id": None,
            "payload": {
                "template": "test",
                "to": f"load{n}@example.com",
                "message_id": make_msgid(domain="localhost"),
                "params": {"at": now.isoformat()},
                "requester": None,
            },
            "created_at": now,
            "due_at": now,
            "attempts": 0,
        }
        for n in range(count)
    ]
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(insert(outbox), rows)
    finally:
        await db.dispose()


def load(base: str, duration: float, rounds: int, *, database_url: str, smtp: SmtpServer, folder: Path) -> None:
    """Quiet and busy windows in turn, ``rounds`` times (each pair sees the same host)."""
    for n in range(rounds):
        print(line("quiet", refresh_load(base, duration, folder / f"quiet{n}.json")))
        smtp.inbox.messages.clear()
        queued_at = time.monotonic()
        asyncio.run(queue_mails(database_url, 1000))
        busy = refresh_load(base, duration, folder / f"busy{n}.json")
        smtp.inbox.wait_for(1000, 300)
        took = time.monotonic() - queued_at
        print(line("1,000 mails sending", busy) + f"   1,000 mails in {took:.1f} s: {1000 / took:.0f} mails/s")


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
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sessionward-mail-bench-"))
    database_url = args.database_url or f"sqlite:///{folder / 'var' / 'sessionward.db'}"
    smtp = SmtpServer(folder).start()
    port = 8765
    server = start_server(folder, database_url, smtp.url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        if args.enumeration:
            asyncio.run(enumeration(base, args.enumeration))
        else:
            load(base, args.duration, args.rounds, database_url=database_url, smtp=smtp, folder=folder)
    finally:
        server.terminate()
        server.wait(20)
        smtp.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
