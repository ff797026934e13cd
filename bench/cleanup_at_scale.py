"""Cleanup at scale on PostgreSQL: `sessionward cleanup` of N expired refresh tokens while clients refresh.

Measures the refresh rate and latency with the shared load generator (refresh-only, 16 clients) once
on a quiet service and once while `sessionward cleanup` deletes the rows, and the cleanup's own time.
Writes bench/RESULTS-cleanup.md. Needs PostgreSQL at BENCH_POSTGRES_URL (default the local one, trust
auth) and the load generator's venv (/tmp/loadgen-venv, see bench/README.md):

    .venv/bin/python bench/cleanup_at_scale.py --rows 1000000 --duration 20   # it needs asyncpg
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "sessionward_bench_cleanup"
SESSIONS = 1000

FILL = """
INSERT INTO users (email, password_hash, role, created_at, updated_at)
     VALUES ('bulk@example.test', 'not-a-hash', 'user', now(), now());
INSERT INTO sessions (id, user_id, device_info, created_at, last_activity, expires_at)
     SELECT md5('s' || g) || md5('t' || g), 1, '{{}}', now(), now(), now() + interval '30 days'
       FROM generate_series(1, {sessions}) g;
INSERT INTO refresh_tokens (session_id, user_id, token_hash, generation, created_at, expires_at, rotated_at)
     SELECT md5('s' || (g % {sessions} + 1)) || md5('t' || (g % {sessions} + 1)), 1,
            md5('r' || g) || md5('q' || g), 1,
            now() - interval '40 days', now() - interval '10 days', now() - interval '39 days'
       FROM generate_series(1, {rows}) g;
ANALYZE;
"""


def database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/" + DATABASE


async def recreate() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()


async def fill(rows: int) -> float:
    conn = await asyncpg.connect(database_url().replace("postgresql://", "postgres://", 1))
    started = time.perf_counter()
    try:
        await conn.execute(FILL.format(sessions=SESSIONS, rows=rows))
    finally:
        await conn.close()
    return time.perf_counter() - started


def loadgen(python: str, port: int, duration: float, out: Path, offset: int) -> subprocess.Popen[bytes]:
    command = [
        "taskset", "-c", "1", python, str(BENCH / "loadgen.py"), "--config", str(BENCH / "configs/sessionward.json"),
        "--base-url", f"http://127.0.0.1:{port}", "--mode", "refresh-only", "-c", "16", "-n", "16",
        "--user-offset", str(offset), "-w", "3", "-d", str(duration), "--out", str(out), "--markers",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def wait_for_window(process: subprocess.Popen[bytes]) -> None:
    for line in process.stdout or ():
        if line.startswith(b"@@window-start"):
            return
    raise RuntimeError("the load generator ended before its window")


def figures(path: Path) -> dict[str, float]:
    refresh = json.loads(path.read_text())["endpoints"]["refresh"]
    return {
        "per_s": refresh["ok_per_s"],
        "p50": refresh["p50_ms"],
        "p99": refresh["p99_ms"],
        "errors": refresh["total"] - refresh["ok"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--loadgen-python", default="/tmp/loadgen-venv/bin/python")
    parser.add_argument("--reuse", action="store_true", help="keep the rows of the last run's fill")
    args = parser.parse_args()

    fill_s = 0.0
    if not args.reuse:
        asyncio.run(recreate())
        env = {**os.environ, "DATABASE_URL": database_url()}
        subprocess.run([sys.executable, "-m", "sessionward", "migrate"], env=env, check=True, capture_output=True)
        fill_s = asyncio.run(fill(args.rows))
    print(f"filled {args.rows} expired refresh tokens in {fill_s:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="sessionward-bench-"))
    port = 18_431
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATA_DIR": str(work),
        "RATE_LIMIT_ENABLED": "false",
        "CLEANUP_SCHEDULE": "off",
        "LOG_LEVEL": "WARNING",
        "JWT_SECRET": "bench-secret-with-more-than-32-bytes!!",
    }
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "sessionward", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)
        quiet = loadgen(args.loadgen_python, port, args.duration, work / "quiet.json", 0)
        quiet.wait()
        busy = loadgen(args.loadgen_python, port, args.duration, work / "cleanup.json", 16)
        wait_for_window(busy)
        started = time.perf_counter()
        cleanup = subprocess.run(
            [sys.executable, "-m", "sessionward", "cleanup"], env=env, capture_output=True, text=True, check=True
        )
        cleanup_s = time.perf_counter() - started
        busy.wait()
    finally:
        server.terminate()
        server.wait()
    before, during = figures(work / "quiet.json"), figures(work / "cleanup.json")
    report(args, fill_s, cleanup_s, cleanup.stdout, before, during)


def row(window: str, measured: dict[str, float]) -> str:
    return (
        f"| {window} | {measured['per_s']:.0f} | {measured['p50']:.1f} | {measured['p99']:.1f} | "
        f"{measured['errors']:.0f} |"
    )


def report(
    args: argparse.Namespace,
    fill_s: float,
    cleanup_s: float,
    output: str,
    before: dict[str, float],
    during: dict[str, float],
) -> None:
    lines = [
        "# Cleanup at scale (PostgreSQL)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this 2-core machine: "
        "`.venv/bin/python bench/cleanup_at_scale.py "
        f"--rows {args.rows} --duration {args.duration:g}`. One `sessionward serve` process pinned to CPU 0, the "
        "shared load generator (refresh-only, 16 clients, 16 users) pinned to CPU 1; PostgreSQL and the cleanup "
        "unpinned.",
        "",
        f"- {args.rows:,} expired refresh tokens generated with SQL in {fill_s:.1f} s.",
        f"- `sessionward cleanup` deleted them in **{cleanup_s:.1f} s** while the clients refreshed "
        f"(batches of 1,000, `FOR UPDATE SKIP LOCKED`, one transaction per batch).",
        "",
        "| window | refresh/s | p50 ms | p99 ms | failed |",
        "|---|---|---|---|---|",
        row("quiet", before),
        row("during cleanup", during),
        "",
        f"p99 during / quiet: **{during['p99'] / before['p99']:.2f}x**. The measured window is {args.duration:g} s; "
        f"the cleanup ran {'the whole window' if cleanup_s >= args.duration else f'{cleanup_s:.1f} s of it'}.",
        "",
        "Cleanup output:",
        "",
        "```",
        output.strip(),
        "```",
        "",
    ]
    (ROOT / "bench" / "RESULTS-cleanup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
