"""Resources for the tests: a migrated database per test (SQLite file, or PostgreSQL with
``--backend postgres``), a frozen clock, the app over ASGI."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.config import Settings, load_settings
from sessionward.context import Context
from sessionward.migrations import upgrade_sync

if TYPE_CHECKING:
    from tests.live import RedisServer

FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
PASSWORD = "correct horse battery"
API = "/api/v1/auth"

# Cheap argon2 for tests: the parameters, not the algorithm, make it slow.
TEST_ENV = {
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_TIME_COST": "1",
    "ARGON2_PARALLELISM": "1",
    "CLEANUP_SCHEDULE": "off",
    "JWT_SECRET": "test-secret-with-at-least-32-bytes-of-entropy",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings come only from what a test sets: no developer .env, no stray variables."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)


POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = "service_keys, outbox, mail_tokens, audit_events, token_blacklist, refresh_tokens, sessions, users"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["sqlite", "postgres"],
        default=os.environ.get("TEST_BACKEND", "sqlite"),
        help="database the suite runs on (PostgreSQL at TEST_POSTGRES_URL, a database created per run)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"sessionward backend: {config.getoption('--backend')}"


# A test that uses one of these runs on the backend of the pass; any other runs the same whatever the backend.
BACKEND_FIXTURES = {"database_url", "backend", "postgres_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass runs only the tests whose database is the pass's: the others ran, identically, in the
    SQLite pass (``make test`` runs both), and are deselected here rather than run twice."""
    if config.getoption("--backend") != "postgres":
        return
    kept = [item for item in items if BACKEND_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in set(kept)])
        items[:] = kept


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--backend"))


async def _postgres(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _with_database(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """A database of its own, migrated, dropped at the end."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_postgres(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    url = _with_database(POSTGRES_ADMIN_URL, name)
    try:
        upgrade_sync(url)
        yield url
    finally:
        asyncio.run(_postgres(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url(backend: str) -> Iterator[str]:
    """A database of this run's own, migrated once, dropped at the end."""
    if backend != "postgres":
        pytest.fail("postgres_url needs --backend postgres")
    with new_postgres_database("sessionward_test") as url:
        yield url


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unused_port() -> int:
    """A local port nothing listens on: a Redis that is down."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the tests may use. Required in CI (``CI`` or ``REQUIRE_REDIS`` set): there a missing
    Redis fails the tests that need it; on a developer's machine without one they are skipped."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2).close()
    except OSError:
        message = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("CI") or os.environ.get("REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_sync(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """An empty, migrated database for this test."""
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        asyncio.run(_postgres(url, f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        return url
    path = tmp_path / "var" / "sessionward.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(request.getfixturevalue("migrated_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return load_settings(database_url=database_url, data_dir=tmp_path / "var", **overrides)

    return make


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with ``@pytest.mark.parametrize``) to change the settings."""
    return {}


@pytest.fixture
async def ctx(
    make_settings: Callable[..., Settings], settings_overrides: dict[str, Any], clock: FrozenClock
) -> AsyncIterator[Context]:
    context = Context.build(make_settings(**settings_overrides), clock=clock)
    yield context
    await context.close()


@pytest.fixture
async def client(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
    ) as c:
        yield c


@dataclass
class Login:
    user_id: int
    email: str
    access: str
    refresh: str
    session_id: str
    body: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access}"}


class Users:
    """Factory: accounts and logins over the API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.count = 0

    async def register(self, email: str | None = None, password: str = PASSWORD) -> str:
        self.count += 1
        email = email or f"user{self.count}@example.com"
        response = await self.client.post(f"{API}/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return email

    async def login(self, email: str, password: str = PASSWORD, *, user_agent: str = FIREFOX_LINUX) -> Login:
        response = await self.client.post(
            f"{API}/login", json={"email": email, "password": password}, headers={"user-agent": user_agent}
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        return Login(
            user_id=data["user"]["id"],
            email=email,
            access=data["tokens"]["access"]["token"],
            refresh=data["tokens"]["refresh"]["token"],
            session_id=data["session"]["id"],
            body=data,
        )

    async def signed_in(self, **kwargs: Any) -> Login:
        return await self.login(await self.register(), **kwargs)


@pytest.fixture
def users(client: httpx.AsyncClient) -> Users:
    return Users(client)


async def refresh(client: httpx.AsyncClient, token: str, session_id: str, **kwargs: Any) -> httpx.Response:
    return await client.post(f"{API}/refresh", json={"refresh_token": token, "session_id": session_id}, **kwargs)


async def me_status(client: httpx.AsyncClient, login: Login) -> int:
    return (await client.get(f"{API}/me", headers=login.auth)).status_code


async def refresh_status(client: httpx.AsyncClient, login: Login) -> int:
    """Refreshes this login; on success it keeps the successor, so it can be checked again later."""
    response = await refresh(client, login.refresh, login.session_id)
    if response.status_code == 200:
        login.refresh = response.json()["data"]["refresh"]["token"]
    return response.status_code


async def works(client: httpx.AsyncClient, login: Login) -> bool:
    """Both the access token and the refresh token of this login are still accepted."""
    return await me_status(client, login) == 200 and await refresh_status(client, login) == 200


async def dead(client: httpx.AsyncClient, login: Login) -> bool:
    """Both the access token and the refresh token of this login are refused with 401."""
    return await me_status(client, login) == 401 and await refresh_status(client, login) == 401


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop and start again."""
    from tests.live import RedisServer

    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed"
        if os.environ.get("CI") or os.environ.get("REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, binary)
    server.start()
    yield server
    server.stop()
