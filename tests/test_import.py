"""``sessionward users import``: hashes made by the real libraries log in with the old password and become
argon2id; bad lines are rejected by number and reason while the rest goes in; existing emails are skipped or
replaced. On SQLite and, with ``--backend postgres``, on PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import resource
import secrets
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from argon2 import PasswordHasher, Type
from django.conf import settings as django_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text
from werkzeug.security import generate_password_hash

from sessionward.apps import importing
from sessionward.apps.importing import Summary, import_users
from sessionward.context import Context
from sessionward.users import store
from sessionward.users.hashes import BCRYPT_MAX_PASSWORD_BYTES, UnsupportedHash, identify, verify_foreign
from sessionward.users.models import normalise_email, normalise_imported_email
from tests.conftest import API, POSTGRES_ADMIN_URL, TEST_ENV, _postgres, _with_database, unused_port

if not django_settings.configured:
    django_settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"])
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

SCRIPT = str(Path(sys.executable).parent / "sessionward")
OLD_PASSWORD = "pässwörd of the old app 🔑"
# A fixed salt: test ids hold this hash, and pytest-xdist needs them alike in every worker.
CHEAP_BCRYPT = bcrypt.hashpw(b"cheap", b"$2b$04$" + b"sessionwardimporttestu").decode()


def _bcrypt(prefix: bytes) -> Callable[[str], str]:
    return lambda password: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()


def _php_bcrypt(password: str) -> str:
    # PHP's password_hash writes $2y$ for what OpenBSD calls $2b$ (the same algorithm); no PHP here to make one.
    return "$2y$" + _bcrypt(b"2b")(password).removeprefix("$2b$")


FORMATS: dict[str, Callable[[str], str]] = {
    "argon2id": PasswordHasher(memory_cost=2048, time_cost=2, parallelism=1).hash,
    "argon2i": PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1, type=Type.I).hash,
    "bcrypt-2a": _bcrypt(b"2a"),
    "bcrypt-2b": _bcrypt(b"2b"),
    "bcrypt-2y": _php_bcrypt,
    "django-pbkdf2_sha256": make_password,  # Django's default: 1,000,000 iterations
    "werkzeug-pbkdf2:sha256": lambda password: generate_password_hash(password, method="pbkdf2:sha256"),
    "werkzeug-scrypt": generate_password_hash,  # Werkzeug's default: scrypt n=2**15, r=8, p=1
}


def jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


async def run_import(
    ctx: Context, data: bytes | io.BufferedIOBase, *, update: bool = False
) -> tuple[Summary, dict[int, str]]:
    summary, rejected = Summary(), {}
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    await import_users(ctx, stream, update=update, summary=summary, reject=rejected.__setitem__)
    return summary, rejected


async def stored_hash(ctx: Context, email: str) -> str:
    async with ctx.db.read() as conn:
        row = await store.by_email(conn, email)
    assert row is not None
    return str(row.password_hash)


async def user_count(ctx: Context) -> int:
    async with ctx.db.read() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM users"))).scalar_one())


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/login", json={"email": email, "password": password})


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("make_hash", FORMATS.values(), ids=FORMATS.keys())
async def test_each_format_logs_in_with_the_old_password_and_is_then_argon2id(
    ctx: Context, client: httpx.AsyncClient, make_hash: Callable[[str], str]
) -> None:
    imported = make_hash(OLD_PASSWORD)
    summary, rejected = await run_import(ctx, jsonl({"email": "old@example.com", "password_hash": imported}))
    assert (summary.imported, rejected) == (1, {})

    assert (await login(client, "old@example.com", OLD_PASSWORD + "x")).status_code == 401
    assert await stored_hash(ctx, "old@example.com") == imported  # a failed login changes nothing

    response = await login(client, "old@example.com", OLD_PASSWORD)
    assert response.status_code == 200, response.text
    upgraded = await stored_hash(ctx, "old@example.com")
    assert upgraded.startswith("$argon2id$")
    assert not ctx.passwords.needs_rehash(upgraded)  # the configured parameters, not the imported ones
    assert (await login(client, "old@example.com", OLD_PASSWORD)).status_code == 200
    assert await stored_hash(ctx, "old@example.com") == upgraded


async def test_the_import_is_an_event_of_the_user(ctx: Context, client: httpx.AsyncClient) -> None:
    await run_import(ctx, jsonl({"email": "ev@example.com", "password_hash": FORMATS["werkzeug-scrypt"]("pw")}))
    access = (await login(client, "ev@example.com", "pw")).json()["data"]["tokens"]["access"]["token"]
    events = (await client.get(f"{API}/events", headers={"authorization": f"Bearer {access}"})).json()["data"]
    imported = [event for event in events["events"] if event["type"] == "user_imported"]
    assert [event["details"] for event in imported] == [{"hash_format": "werkzeug_scrypt"}]


def test_bcrypt_checks_the_first_72_bytes_as_the_systems_that_made_the_hash_did() -> None:
    long_password = "ü" * 50  # 100 bytes in UTF-8
    made = bcrypt.hashpw(long_password.encode()[:BCRYPT_MAX_PASSWORD_BYTES], bcrypt.gensalt(rounds=4)).decode()
    assert verify_foreign(made, long_password)
    assert not verify_foreign(made, "ü" * 35)


@pytest.mark.parametrize(
    ("password_hash", "reason"),
    [
        ("5f4dcc3b5aa765d61d8327deb882cf99", "unknown password hash format"),
        ("$argon2d$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "unknown password hash format"),
        ("$2b$04$tooshort", "malformed bcrypt hash"),
        ("$2b$31$" + CHEAP_BCRYPT[7:], "bcrypt cost above 16 is too costly to verify"),
        ("$2b$03$" + CHEAP_BCRYPT[7:], "malformed bcrypt hash"),
        (CHEAP_BCRYPT[:28] + "A" + CHEAP_BCRYPT[29:], "malformed bcrypt hash"),  # the salt's unused bits set
        ("$2x$04$" + CHEAP_BCRYPT[7:], "unknown password hash format"),  # crypt_blowfish's buggy variant
        ("$argon2id$v=19$m=1024,t=0,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "malformed argon2 hash"),
        ("$argon2id$v=16$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "malformed argon2 hash"),
        ("pbkdf2_sha256$600000$salt$not-base64", "malformed Django pbkdf2_sha256 hash"),
        ("pbkdf2_sha256$0$salt$" + "A" * 43 + "=", "malformed pbkdf2 hash"),
        ("pbkdf2:sha256$salt$" + "0" * 64, "unknown password hash format"),  # Werkzeug without iterations
        ("pbkdf2:sha256:999999999$salt$" + "0" * 64, "pbkdf2 iterations too many to verify"),
        ("scrypt:1000:8:1$salt$" + "0" * 128, "malformed scrypt hash"),  # n is not a power of 2
        ("scrypt:1048576:8:1$salt$" + "0" * 128, "scrypt hash too costly to verify"),  # 1 GiB
        ("$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "argon2 hash too costly to verify"),
    ],
)
def test_an_unsupported_hash_is_refused_with_a_reason_that_does_not_quote_it(password_hash: str, reason: str) -> None:
    with pytest.raises(UnsupportedHash) as raised:
        identify(password_hash)
    assert str(raised.value) == reason
    assert not verify_foreign(password_hash, "anything")


def test_a_django_hash_of_few_iterations_is_verified_with_them() -> None:
    made = PBKDF2PasswordHasher().encode("secret", "somesalt", iterations=1000)
    assert identify(made) == "django_pbkdf2_sha256"
    assert verify_foreign(made, "secret")
    assert not verify_foreign(made, "Secret")


def _normalised(normalise: Callable[[str], str], address: str) -> str:
    try:
        return normalise(address)
    except ValueError as exc:
        return f"refused: {exc}"


ADDRESSES = [
    "Plain@Example.com",
    "  spaced@example.com ",
    "dots.in.the@middle.example",
    ".leading@example.com",
    "double..dot@example.com",
    "trailing.@example.com",
    "o'hara+tag@example.com",
    '"quoted"@example.com',
    "a@b@example.com",
    "üñí@example.com",
    "user@bücher.example",
    "user@-bad-.example",
    "user@example",
    "user@localhost",
    "user@[127.0.0.1]",
    "user@example..com",
    "user@" + "a" * 64 + ".example",
    "x" * 64 + "@example.com",
    "x" * 65 + "@example.com",
    "x" * 200 + "@" + "d" * 50 + ".com",
    "postmaster@example.com",
    "no-at-sign",
    "@example.com",
    "user@",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_import_accepts_exactly_the_addresses_registration_does(address: str) -> None:
    assert _normalised(normalise_imported_email, address) == _normalised(normalise_email, address)


@given(st.one_of(st.emails(), st.text(alphabet="ab.@-+_'\"ü ", max_size=30)))
@hypothesis_settings(max_examples=300, deadline=None)
def test_the_quick_email_check_agrees_with_the_full_one(address: str) -> None:
    assert _normalised(normalise_imported_email, address) == _normalised(normalise_email, address)


# --------------------------------------------------------------------------- bad lines


def _bad_lines() -> tuple[bytes, dict[int, str]]:
    good = {"password_hash": CHEAP_BCRYPT}
    data = (
        jsonl(
            {"email": "First@Example.com", **good},  # 1
            b'{"email": "cut@example.com", "password_hash": "$2b$04$abc',  # 2: truncated
            {"email": "md5@example.com", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"},  # 3
            {"email": "first@example.com", **good},  # 4: the same email as line 1, once normalised
            b'{"email": "latin1@example.com", "name": "Jos\xe9", "password_hash": "' + CHEAP_BCRYPT.encode() + b'"}',
            b"   ",  # 6: blank, ignored
            b'{"email": "big@example.com", "name": "' + b"x" * 70_000 + b'"}',  # 7
            {"email": "second@example.com", "password_hash": FORMATS["werkzeug-scrypt"]("pw")},  # 8
            {"email": "not an address", **good},  # 9
            {"email": "role@example.com", "role": "root", **good},  # 10
            {"email": "when@example.com", "created_at": "yesterday", **good},  # 11
            {"email": "nul@example.com", "name": "a\u0000b", **good},  # 12
            b"[1, 2]",  # 13
            {"email": "nohash@example.com"},  # 14
            {"email": "verified@example.com", "email_verified": "yes", **good},  # 15
            {"email": "epoch@example.com", "created_at": 1700000000, **good},  # 16
        )
        + json.dumps(  # 17: the last line, without a newline
            {
                "email": "third@example.com",
                "role": "admin",
                "email_verified": True,
                "created_at": "2020-01-02T03:04:05+02:00",
            }
            | good
        ).encode()
    )
    reasons = {
        2: "not valid JSON: EOF while parsing a string at column 57",
        3: "password_hash: unknown password hash format",
        4: "duplicate email in the file (first on line 1)",
        5: "not valid UTF-8 (byte 45)",
        7: "longer than 65536 bytes",
        9: "email: Email is not a valid email address",
        10: "role: Input should be 'user' or 'admin'",
        11: "created_at: must be an ISO 8601 date and time",
        12: "name: String should match pattern '^[^\\x00]*$'",
        13: "Input should be an object",
        14: "password_hash: Field required",
        15: "email_verified: Input should be a valid boolean",
        16: "created_at: must be an ISO 8601 date and time",
    }
    return data, reasons


async def test_bad_lines_are_rejected_by_number_and_reason_and_the_rest_goes_in(ctx: Context) -> None:
    data, reasons = _bad_lines()
    summary, rejected = await run_import(ctx, data)
    assert rejected == reasons
    assert (summary.imported, summary.updated, summary.skipped, summary.rejected) == (3, 0, 0, len(reasons))
    assert not any(CHEAP_BCRYPT[7:20] in reason for reason in rejected.values())
    async with ctx.db.read() as conn:
        rows = (await conn.execute(text("SELECT email, role, email_verified_at, created_at FROM users"))).all()
        events = (await conn.execute(text("SELECT type FROM audit_events"))).scalars().all()
    assert sorted(row.email for row in rows) == ["first@example.com", "second@example.com", "third@example.com"]
    assert events == ["user_imported"] * 3
    third = next(row for row in rows if row.email == "third@example.com")
    assert third.role == "admin"
    assert third.email_verified_at is not None
    assert str(third.created_at).startswith("2020-01-02 01:04:05")


class _HugeFirstLine(io.RawIOBase):
    """A first line of ``size`` bytes, made as it is read (never held whole), then ``rest``."""

    _CHUNK = memoryview(b"x" * (1 << 20))

    def __init__(self, size: int, rest: bytes) -> None:
        self._left, self._rest = size, io.BytesIO(b"\n" + rest)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left == 0:
            return self._rest.readinto(buffer)
        count = min(len(buffer), self._left, len(self._CHUNK))
        buffer[:count] = self._CHUNK[:count]
        self._left -= count
        return count


async def test_a_one_gigabyte_line_is_rejected_without_being_held_in_memory(ctx: Context) -> None:
    stream = io.BufferedReader(
        _HugeFirstLine(1 << 30, jsonl({"email": "after@example.com", "password_hash": CHEAP_BCRYPT}))
    )
    tracemalloc.start()
    try:
        summary, rejected = await run_import(ctx, stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rejected == {1: "longer than 65536 bytes"}
    assert summary.imported == 1
    assert peak < 16 * 1024 * 1024


async def test_a_line_the_database_refuses_is_rejected_alone(ctx: Context, backend: str) -> None:
    # A trigger stands for whatever a database may refuse that the checks let through.
    if backend == "postgres":
        ddl = [
            "CREATE FUNCTION refuse_import() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.name = 'refuse me' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;"
            " RETURN NEW; END $$",
            "CREATE TRIGGER refuse_import BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_import()",
        ]
        cleanup = ["DROP TRIGGER refuse_import ON users", "DROP FUNCTION refuse_import()"]
    else:
        ddl = [
            "CREATE TRIGGER refuse_import BEFORE INSERT ON users WHEN NEW.name = 'refuse me'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        cleanup = []
    async with ctx.db.write() as conn:
        for statement in ddl:
            await conn.exec_driver_sql(statement)
    try:
        lines = [{"email": f"u{n}@example.com", "password_hash": CHEAP_BCRYPT} for n in range(3)]
        lines[1]["name"] = "refuse me"
        summary, rejected = await run_import(ctx, jsonl(*lines))
    finally:
        async with ctx.db.write() as conn:
            for statement in cleanup:
                await conn.exec_driver_sql(statement)
    assert rejected == {2: "refused by the database"}
    assert (summary.imported, summary.rejected) == (2, 1)
    assert await user_count(ctx) == 2


# --------------------------------------------------------------------------- existing emails, batches


async def test_an_existing_email_is_skipped_and_update_replaces_it(ctx: Context, client: httpx.AsyncClient) -> None:
    registered = await client.post(f"{API}/register", json={"email": "kept@example.com", "password": "registered pw"})
    user_id = registered.json()["data"]["user"]["id"]
    line = {
        "email": "KEPT@example.com",
        "password_hash": FORMATS["bcrypt-2b"](OLD_PASSWORD),
        "name": "Imported",
        "role": "admin",
        "email_verified": True,
    }
    summary, _ = await run_import(ctx, jsonl(line))
    assert (summary.imported, summary.updated, summary.skipped) == (0, 0, 1)
    assert (await login(client, "kept@example.com", "registered pw")).status_code == 200

    summary, _ = await run_import(ctx, jsonl(line), update=True)
    assert (summary.imported, summary.updated, summary.skipped) == (0, 1, 0)
    assert (await login(client, "kept@example.com", "registered pw")).status_code == 401
    response = await login(client, "kept@example.com", OLD_PASSWORD)
    assert response.status_code == 200
    user = response.json()["data"]["user"]
    assert (user["id"], user["name"], user["role"]) == (user_id, "Imported", "admin")
    assert user["email_verified_at"] is not None
    assert user["created_at"] == registered.json()["data"]["user"]["created_at"]  # none given: kept


async def test_many_users_go_in_batches(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "BATCH_SIZE", 100)
    lines = [{"email": f"user{n}@example.com", "password_hash": CHEAP_BCRYPT} for n in range(250)]
    calls: list[int] = []
    summary = Summary()
    stream = io.BytesIO(jsonl(*lines, lines[7]))
    await import_users(
        ctx, stream, update=False, summary=summary, reject=lambda *_: None, progress=lambda: calls.append(1)
    )
    assert (summary.imported, summary.rejected) == (250, 1)
    assert len(calls) == 3  # after each full batch and at the end
    assert await user_count(ctx) == 250
    again, _ = await run_import(ctx, jsonl(*lines))
    assert (again.imported, again.skipped) == (0, 250)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**keep, **TEST_ENV, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "var")}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "users", "import", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_command_prints_a_summary_and_the_rejected_lines(cli_env: dict[str, str], tmp_path: Path) -> None:
    data, reasons = _bad_lines()
    (tmp_path / "users.jsonl").write_bytes(data)
    result = cli(cli_env, str(tmp_path / "users.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"imported 3, updated 0, skipped 0, rejected {len(reasons)}\n"
    assert result.stderr.splitlines() == [f"line {number}: {reason}" for number, reason in reasons.items()]
    again = cli(cli_env, str(tmp_path / "users.jsonl"), "--update")
    assert again.stdout == f"imported 0, updated 3, skipped 0, rejected {len(reasons)}\n"


def test_a_one_gigabyte_line_in_a_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as file:
        file.truncate(1 << 30)  # a sparse gigabyte of NUL bytes: one line, no newline in it
    with path.open("ab") as file:
        file.write(b"\n" + jsonl({"email": "after@example.com", "password_hash": CHEAP_BCRYPT}))
    result = cli(cli_env, str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "line 1: longer than 65536 bytes\n"
    assert result.stdout == "imported 1, updated 0, skipped 0, rejected 1\n"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 512 * 1024  # KiB: far less than the line


def test_the_command_shows_progress_on_a_terminal_only(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(jsonl({"email": "tty@example.com", "password_hash": CHEAP_BCRYPT}, b"{"))
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [SCRIPT, "users", "import", str(path)],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=60,
            check=False,
        )
        os.close(follower)
        shown = _read_all(leader)
    finally:
        os.close(leader)
    assert process.returncode == 0
    assert process.stdout == b"imported 1, updated 0, skipped 0, rejected 1\n"
    assert "importing" in shown
    assert "100%" in shown
    assert "line 2: not valid JSON" in shown
    assert "importing" not in cli(cli_env, str(path)).stderr


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_a_file_that_cannot_be_read_fails_in_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    for target in (tmp_path / "missing.jsonl", tmp_path):
        result = cli(cli_env, str(target))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"sessionward: cannot read {target}: "), result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_a_database_that_is_down_stops_the_import_and_says_so(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(jsonl({"email": "down@example.com", "password_hash": CHEAP_BCRYPT}))
    env = {**cli_env, "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{unused_port()}/none", "DATABASE_TIMEOUT": "1s"}
    result = cli(env, str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("imported 0, updated 0, skipped 0, rejected 0 before it stopped; run it again")
    assert result.stderr == "sessionward: Service temporarily unavailable, please retry\n"


def test_the_command_has_help(cli_env: dict[str, str]) -> None:
    users = subprocess.run([SCRIPT, "users", "--help"], env=cli_env, capture_output=True, text=True, check=False)
    assert users.returncode == 0
    assert "import" in users.stdout
    own = cli(cli_env, "--help")
    assert own.returncode == 0
    assert "FILE" in own.stdout
    assert "--update" in own.stdout


@contextmanager
def unmigrated_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend != "postgres":
        yield f"sqlite:///{tmp_path / 'never-migrated.db'}"
        return
    name = f"sessionward_unmigrated_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_postgres(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(POSTGRES_ADMIN_URL, name)
    finally:
        asyncio.run(_postgres(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_database_without_its_tables_stops_the_import_rejecting_no_line(
    cli_env: dict[str, str], tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(jsonl({"email": "early@example.com", "password_hash": CHEAP_BCRYPT}))
    with unmigrated_database(backend, tmp_path) as url:
        result = cli({**cli_env, "DATABASE_URL": url}, str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "line 1" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    if backend == "postgres":
        assert result.stderr == 'sessionward: database error: relation "users" does not exist\n'
