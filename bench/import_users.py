"""`sessionward users import` of N users on SQLite and on PostgreSQL, timed as an operator runs it.

Writes a JSON Lines file of N users with a mix of hash formats (a few hashes made by the real libraries,
reused: verification happens at login, not at import), then times, on each database: the import into an empty
database, the same file again (every email skipped) and again with `--update` (every user replaced). Each time is
the whole command, interpreter start included. PostgreSQL is the one at BENCH_POSTGRES_URL (default the local one,
trust auth); the benchmark creates its own database there and drops it. Writes bench/RESULTS-import.md.

    .venv/bin/python bench/import_users.py --users 100000   # the dev venv: bcrypt, Django, Werkzeug, asyncpg
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import bcrypt
from argon2 import PasswordHasher, Type
from django.conf import settings as django_settings
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).parent / "sessionward")
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "sessionward_bench_import"
ENV = {"JWT_SECRET": "bench-secret-with-at-least-32-bytes-of-entropy", "CLEANUP_SCHEDULE": "off"}


def sample_hashes() -> list[str]:
    if not django_settings.configured:
        django_settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"])
    from django.contrib.auth.hashers import make_password

    return [
        PasswordHasher().hash("password 1"),
        PasswordHasher(type=Type.I).hash("password 2"),
        bcrypt.hashpw(b"password 3", bcrypt.gensalt(rounds=12)).decode(),
        make_password("password 4"),
        generate_password_hash("password 5", method="pbkdf2:sha256"),
        generate_password_hash("password 6"),
    ]


def lines(count: int, hashes: list[str]) -> Iterator[str]:
    for n in range(count):
        user: dict[str, object] = {"email": f"user{n}@example.com", "password_hash": hashes[n % len(hashes)]}
        if n % 2:
            user |= {"name": f"User {n}", "email_verified": True, "created_at": "2021-06-01T12:00:00Z"}
        if n % 100 == 0:
            user["role"] = "admin"
        yield json.dumps(user)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """Wall-clock seconds, CPU seconds of the command (less sensitive to a busy machine), its output."""
    started, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, check=False, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return elapsed, _children_cpu() - cpu, result.stdout.strip()


def measure(name: str, database_url: str, path: Path, users: int) -> list[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **ENV, "DATABASE_URL": database_url}
    env["DATA_DIR"] = tempfile.mkdtemp(prefix="sessionward-bench-import-")
    timed(env, "migrate")
    rows = []
    for label, extra in (("import", []), ("again, all skipped", []), ("--update, all replaced", ["--update"])):
        seconds, cpu, summary = timed(env, "users", "import", str(path), *extra)
        rows.append(f"| {name} | {label} | {seconds:.1f} | {users / seconds:,.0f} | {cpu:.1f} | {summary} |")
        print(rows[-1], flush=True)
    return rows


async def _admin(statement: str) -> str:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return str(await conn.fetchval(statement) if statement.startswith("SHOW") else await conn.execute(statement))
    finally:
        await conn.close()


def postgres(path: Path, users: int) -> tuple[list[str], str]:
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
    asyncio.run(_admin(f"CREATE DATABASE {DATABASE}"))
    try:
        url = ADMIN_URL.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/" + DATABASE
        return measure("PostgreSQL", url, path, users), asyncio.run(_admin("SHOW server_version"))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-import.md")
    args = parser.parse_args()
    load_before = f"{os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory(prefix="sessionward-bench-import-") as scratch:
        path = Path(scratch) / "users.jsonl"
        path.write_text("".join(line + "\n" for line in lines(args.users, sample_hashes())))
        print(f"{args.users:,} users, {path.stat().st_size / 1e6:.1f} MB", flush=True)
        rows = measure("SQLite", f"sqlite:///{Path(scratch) / 'bench.db'}", path, args.users)
        pg_rows, pg_version = postgres(path, args.users)
        size = path.stat().st_size
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    report = [
        "# `sessionward users import`: benchmark",
        "",
        f"`.venv/bin/python bench/import_users.py --users {args.users}` at {commit.strip()}: {args.users:,} users",
        f"({size / 1e6:.1f} MB of JSON Lines; argon2id, argon2i, bcrypt, Django pbkdf2_sha256, Werkzeug pbkdf2:sha256",
        "and scrypt hashes in turn; half the lines with a name, a verified email and a created_at, 1 % admins).",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, PostgreSQL {pg_version},",
        f"{os.cpu_count()} CPUs shared with other work (load average {load_before} before,"
        f" {os.getloadavg()[0]:.1f} after).",
        "Seconds are the whole command's wall clock, interpreter start included; CPU seconds are the command's own",
        "(user + system), which a busy machine disturbs less.",
        "",
        "| database | run | seconds | users/s | CPU seconds | summary |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        *rows,
        *pg_rows,
        "",
    ]
    args.out.write_text("\n".join(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
