"""The command line, run as real subprocesses in a scratch folder; and the migrations against the tables."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import sessionward.audit.tables
import sessionward.sessions.tables
import sessionward.tokens.tables
import sessionward.users.tables  # noqa: F401 - registers every table on the metadata
from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.config import load_settings
from sessionward.context import Context
from sessionward.db import metadata
from sessionward.migrations import upgrade_sync
from tests.conftest import API, PASSWORD, TEST_ENV

BIN = Path(sys.executable).parent
SCRIPT = str(BIN / "sessionward")
TABLE_NAMES = {"users", "sessions", "refresh_tokens", "token_blacklist", "audit_events", "alembic_version"}
COMMANDS = [
    ([], ["serve", "migrate", "cleanup", "users", "keys", "mail"]),
    (["serve"], ["--host", "--port", "--workers"]),
    (["migrate"], []),
    (["cleanup"], []),
    (["users"], ["create"]),
    (["users", "create"], ["--email", "--password", "--admin", "--verified"]),
    (["keys"], ["rotate"]),
    (["keys", "rotate"], []),
    (["mail"], ["test"]),
    (["mail", "test"], ["--to"]),
    (["service-keys"], ["create", "list", "revoke"]),
    (["service-keys", "create"], ["--name", "--scope"]),
]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Only what the commands need: a database and data folder in the scratch folder, cheap argon2."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "SYSTEMROOT") if name in os.environ}
    return {
        **keep,
        **TEST_ENV,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli' / 'sessionward.db'}",
        "DATA_DIR": str(tmp_path / "cli"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def migrated(cli_env: dict[str, str], migrated_template: Path) -> dict[str, str]:
    """``cli_env`` whose database is already migrated (a copy of the session's template: no subprocess)."""
    target = Path(cli_env["DATABASE_URL"].removeprefix("sqlite:///"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_template, target)
    return cli_env


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, module: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sessionward", *args] if module else [SCRIPT, *args]
    return subprocess.run(
        command,
        env=env,
        cwd=Path.cwd(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,  # no controlling terminal: getpass reads the piped stdin
    )


def run_all(*calls: tuple[dict[str, str], list[str]], module: bool = False) -> list[subprocess.CompletedProcess[str]]:
    """Several independent invocations at once (each one is a fresh interpreter: they add up)."""
    processes = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "sessionward", *args] if module else [SCRIPT, *args],
                env=env,
                cwd=Path.cwd(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            ),
        )
        for env, args in calls
    ]
    results = []
    for args, process in processes:
        out, err = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return results


def assert_clean_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Non-zero exit, one line on stderr (ignoring blank ones) that says what is wrong, no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tables(database_url: str) -> set[str]:
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def settings_for(env: dict[str, str]) -> Any:
    return load_settings(database_url=env["DATABASE_URL"], data_dir=env["DATA_DIR"])


async def try_login(env: dict[str, str], email: str, password: str) -> httpx.Response:
    ctx = Context.build(settings_for(env))
    try:
        transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(f"{API}/login", json={"email": email, "password": password})
    finally:
        await ctx.close()


# --------------------------------------------------------------------------- help


def test_every_command_has_help(cli_env: dict[str, str]) -> None:
    results = run_all(*[(cli_env, [*args, "--help"]) for args, _ in COMMANDS])
    for (args, mentions), result in zip(COMMANDS, results, strict=True):
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage: sessionward" in result.stdout, args
        assert "Traceback" not in result.stderr
        for word in mentions:
            assert word in result.stdout, (args, word)


def test_python_dash_m_works_like_the_console_script(cli_env: dict[str, str]) -> None:
    calls = [(cli_env, ["--help"]), (cli_env, ["users", "create", "--help"])]
    scripts, modules = run_all(*calls), run_all(*calls, module=True)
    for script, module in zip(scripts, modules, strict=True):
        assert module.returncode == script.returncode == 0
        assert module.stdout == script.stdout
        assert "Usage: sessionward" in module.stdout


def test_no_arguments_prints_usage(cli_env: dict[str, str]) -> None:
    result = run(cli_env)
    assert "Usage: sessionward" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- migrate


def test_migrate_creates_the_tables_and_is_idempotent(cli_env: dict[str, str]) -> None:
    url = cli_env["DATABASE_URL"]
    first = run(cli_env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout
    assert tables(url) >= TABLE_NAMES
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, role, created_at, updated_at)"
            " VALUES ('kept@example.com', 'x', 'user', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
        )
    second = run(cli_env, "migrate")
    assert second.returncode == 0, second.stderr
    assert tables(url) >= TABLE_NAMES
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT email FROM users").fetchall() == [("kept@example.com",)]
        assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1


def test_migrated_schema_matches_the_table_definitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade_sync(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migrate_reads_dotenv_in_the_working_directory(cli_env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "from-dotenv" / "db.sqlite"
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{target}\n")
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"}
    result = run(env, "migrate")
    assert result.returncode == 0, result.stderr
    assert tables(f"sqlite:///{target}") >= TABLE_NAMES


# --------------------------------------------------------------------------- users create


def test_users_create_admin_verified_can_log_in_as_admin(migrated: dict[str, str]) -> None:
    result = run(
        migrated, "users", "create", "--email", " Boss@Example.COM ", "--password", PASSWORD, "--admin", "--verified"
    )
    assert result.returncode == 0, result.stderr
    assert "boss@example.com" in result.stdout
    assert "role=admin" in result.stdout
    response = asyncio.run(try_login(migrated, "boss@example.com", PASSWORD))
    assert response.status_code == 200, response.text
    user = response.json()["data"]["user"]
    assert user["role"] == "admin"
    assert user["email_verified_at"] is not None


def test_users_create_defaults_to_an_unverified_user(migrated: dict[str, str]) -> None:
    result = run(migrated, "users", "create", "--email", "plain@example.com", "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "role=user" in result.stdout
    user = asyncio.run(try_login(migrated, "plain@example.com", PASSWORD)).json()["data"]["user"]
    assert (user["role"], user["email_verified_at"]) == ("user", None)


def test_users_create_prompts_for_the_password_twice(migrated: dict[str, str]) -> None:
    result = run(migrated, "users", "create", "--email", "prompted@example.com", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert asyncio.run(try_login(migrated, "prompted@example.com", PASSWORD)).status_code == 200


def test_users_create_refuses_mismatched_prompted_passwords(migrated: dict[str, str]) -> None:
    result = run(migrated, "users", "create", "--email", "typo@example.com", stdin=f"{PASSWORD}\n{PASSWORD}x\n")
    assert result.returncode != 0
    assert "do not match" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(migrated["DATABASE_URL"].removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_users_create_duplicate_email_fails_clearly(migrated: dict[str, str]) -> None:
    assert run(migrated, "users", "create", "--email", "twice@example.com", "--password", PASSWORD).returncode == 0
    again = run(migrated, "users", "create", "--email", "TWICE@example.com", "--password", "another password")
    assert_clean_failure(again, "already exists")
    assert asyncio.run(try_login(migrated, "twice@example.com", PASSWORD)).status_code == 200


def test_users_create_rejects_bad_input_in_one_line(migrated: dict[str, str]) -> None:
    bad_email, weak = run_all(
        (migrated, ["users", "create", "--email", "not-an-email", "--password", PASSWORD]),
        (migrated, ["users", "create", "--email", "short@example.com", "--password", "short"]),
    )
    assert_clean_failure(bad_email, "mail")
    assert_clean_failure(weak, "between")


# --------------------------------------------------------------------------- cleanup


async def _old_activity(env: dict[str, str]) -> None:
    """An account that registered and logged in 100 days ago (so every row of it is past retention)."""
    clock = FrozenClock()
    clock.advance(-timedelta(days=100))
    ctx = Context.build(settings_for(env), clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = {"email": "old@example.com", "password": PASSWORD}
            assert (await client.post(f"{API}/register", json=body)).status_code == 201
            assert (await client.post(f"{API}/login", json=body)).status_code == 200
    finally:
        await ctx.close()


def test_cleanup_prints_the_count_per_table(migrated: dict[str, str]) -> None:
    asyncio.run(_old_activity(migrated))
    result = run(migrated, "cleanup")
    assert result.returncode == 0, result.stderr
    counts = dict(line.split(": ") for line in result.stdout.splitlines() if line.strip())
    assert counts == {
        "refresh_tokens": "1",
        "sessions": "1",
        "token_blacklist": "0",
        "audit_events": "2",
        "mail_tokens": "0",
        "mfa_challenges": "0",
        "webauthn_challenges": "0",
        "outbox": "0",
        "sealed_successors_wiped": "0",
    }
    again = run(migrated, "cleanup")
    assert set(dict(line.split(": ") for line in again.stdout.splitlines() if line.strip()).values()) == {"0"}


# --------------------------------------------------------------------------- bad configuration


COMMANDS_THAT_LOAD_SETTINGS = [
    ["migrate"],
    ["cleanup"],
    ["serve"],
    ["keys", "rotate"],
    ["users", "create", "--email", "a@example.com", "--password", PASSWORD],
]


def test_a_bad_setting_exits_non_zero_with_one_line_naming_it(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ACCESS_TOKEN_EXPIRES_IN": "abc"}
    for result in run_all(*[(env, args) for args in COMMANDS_THAT_LOAD_SETTINGS]):
        assert_clean_failure(result, "ACCESS_TOKEN_EXPIRES_IN")


def test_a_bad_setting_in_dotenv_is_reported_the_same_way(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REFRESH_TOKEN_REUSE_INTERVAL=-5m\n")
    assert_clean_failure(run(cli_env, "migrate"), "REFRESH_TOKEN_REUSE_INTERVAL")


def test_production_without_jwt_secret_refuses_to_start(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "JWT_SECRET"} | {"ENV": "production"}
    for result in run_all((env, ["migrate"]), (env, ["serve"])):
        assert_clean_failure(result, "JWT_SECRET")


def test_keys_rotate_with_hs256_explains_itself(cli_env: dict[str, str]) -> None:
    assert_clean_failure(run(cli_env, "keys", "rotate"), "JWT_ALGORITHM")


def test_keys_rotate_with_eddsa_makes_a_new_active_key(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "JWT_ALGORITHM": "EdDSA"}
    first = run(env, "keys", "rotate")
    assert first.returncode == 0, first.stderr
    second = run(env, "keys", "rotate")
    assert second.returncode == 0, second.stderr
    new_kid = first.stdout.split()[2].rstrip(";")
    assert new_kid in second.stdout  # the previous key is named as staying published
    assert second.stdout.split()[2].rstrip(";") != new_kid


def _unreachable(tmp_path: Path) -> str:
    (tmp_path / "blocker").write_text("a file where the database folder should be")
    return f"sqlite:///{tmp_path / 'blocker' / 'sessionward.db'}"


def test_an_unreachable_database_fails_in_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "DATABASE_URL": _unreachable(tmp_path)}
    commands = [["migrate"], ["cleanup"], ["users", "create", "--email", "a@example.com", "--password", PASSWORD]]
    for result in run_all(*[(env, args) for args in commands]):
        assert_clean_failure(result)


# --------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.live
def test_serve_migrates_and_answers_until_stopped(cli_env: dict[str, str]) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [SCRIPT, "serve", "--port", str(port)],
        env=cli_env,
        cwd=Path.cwd(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None, "serve never answered"
        assert ready.status_code == 200
        assert ready.headers["x-request-id"]
        register = httpx.post(
            f"http://127.0.0.1:{port}{API}/register", json={"email": "live@example.com", "password": PASSWORD}
        )
        assert register.status_code == 201, register.text
        assert tables(cli_env["DATABASE_URL"]) >= TABLE_NAMES  # AUTO_MIGRATE
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert process.returncode is not None
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{port}" in out


# --------------------------------------------------------------------------- mail


def test_mail_test_sends_through_smtp_and_says_what_happened(cli_env: dict[str, str], tmp_path: Path) -> None:
    from tests.smtp import SmtpServer

    server = SmtpServer(tmp_path).start()
    try:
        sent = run({**cli_env, "SMTP_URL": server.url}, "mail", "test", "--to", "Ops@Example.com")
        assert sent.returncode == 0, sent.stderr
        assert f"sent to ops@example.com via smtp://127.0.0.1:{server.port}: " in sent.stdout
        [mail] = server.inbox.to("ops@example.com")
        assert mail["Subject"] == "sessionward test mail"
        server.inbox.refuse = "550 5.1.1 no such mailbox"
        refused = run({**cli_env, "SMTP_URL": server.url}, "mail", "test", "--to", "ops@example.com")
        assert refused.returncode == 2
        assert "not sent via smtp://127.0.0.1" in refused.stderr
        assert "550 5.1.1 no such mailbox" in refused.stderr
    finally:
        server.stop()
    down = run({**cli_env, "SMTP_URL": server.url}, "mail", "test", "--to", "ops@example.com")
    assert down.returncode == 2
    assert "Traceback" not in down.stderr


def test_mail_test_without_smtp_url_writes_a_file(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "mail", "test", "--to", "ops@example.com")
    assert result.returncode == 0, result.stderr
    assert "via files in" in result.stdout
    [path] = (Path(cli_env["DATA_DIR"]) / "mail").glob("*.eml")
    assert "Subject: sessionward test mail" in path.read_text()


# --------------------------------------------------------------------------- service keys


def test_service_keys_are_made_listed_and_revoked(migrated: dict[str, str]) -> None:
    env = migrated
    made = run(
        env, "service-keys", "create", "--name", "shop", "--scope", "sessions:issue", "--scope", "tokens:introspect"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("swk_")
    assert "created service key 1 (shop): sessions:issue tokens:introspect" in made.stderr
    listed = run(env, "service-keys", "list")
    assert listed.stdout.startswith("1\tshop\tsessions:issue tokens:introspect\t")
    assert key not in listed.stdout
    assert listed.stdout.rstrip().endswith("active")
    assert run(env, "service-keys", "revoke", "1").stdout.strip() == "revoked service key 1"
    again = run(env, "service-keys", "revoke", "1")
    assert again.returncode == 2
    assert "no active service key 1" in again.stderr
    assert "\trevoked " in run(env, "service-keys", "list").stdout
    bad = run(env, "service-keys", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
    assert "unknown scope" in bad.stderr
