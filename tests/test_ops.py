"""Operations: health, readiness, metrics, the OpenAPI document, request ids, a locked database,
what the logs may contain, and the configuration loader."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from sessionward import logs
from sessionward.app import create_app
from sessionward.audit.tables import audit_events
from sessionward.clock import FrozenClock
from sessionward.config import ConfigError, load_settings
from sessionward.context import Context
from sessionward.jobs.cleanup import cleanup
from sessionward.outbox import store as outbox_store
from sessionward.sessions.tables import sessions
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.tables import refresh_tokens, token_blacklist
from sessionward.users.tables import users as users_table
from tests.conftest import API, FIREFOX_LINUX, PASSWORD, TEST_ENV, Users, refresh, refresh_status
from tests.postgres import postgres_table_locks

TABLES = {
    "users": users_table,
    "sessions": sessions,
    "refresh_tokens": refresh_tokens,
    "token_blacklist": token_blacklist,
    "audit_events": audit_events,
}
GENERATED_ID = re.compile(r"^[0-9a-f]{16}$")


async def row_counts(ctx: Context) -> dict[str, int]:
    async with ctx.db.read() as conn:
        return {
            name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for name, table in TABLES.items()
        }


@contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Another connection holds the write lock (as a long write, a migration or a backup would)."""
    if database_url.startswith("postgresql"):
        with postgres_table_locks(database_url):
            yield
        return
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.rollback()
        other.close()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "error"
    assert set(body) == {"status", "message"}
    assert response.headers["retry-after"].isdigit()
    assert int(response.headers["retry-after"]) >= 1
    for leak in ("locked", "sqlite", "SELECT", "UPDATE", "INSERT", "Traceback", "unable to open"):
        assert leak not in response.text


@asynccontextmanager
async def serve(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx), client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
    ) as client:
        yield client


# --------------------------------------------------------------------------- health and readiness


async def test_healthz_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_with_a_reachable_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _file_in_the_way(tmp_path: Path) -> str:
    (tmp_path / "not-a-folder").write_text("a file where the database folder should be")
    return f"sqlite:///{tmp_path / 'not-a-folder' / 'sessionward.db'}"


def _folder_as_database(tmp_path: Path) -> str:
    (tmp_path / "a-folder").mkdir()
    return f"sqlite:///{tmp_path / 'a-folder'}"


def _unwritable_location(tmp_path: Path) -> str:
    return "sqlite:////proc/sessionward-nowhere/sessionward.db"


@pytest.mark.parametrize("broken_url", [_file_in_the_way, _folder_as_database, _unwritable_location])
async def test_unreachable_database_gives_503_on_readyz_and_api_but_healthz_stays_up(
    tmp_path: Path, clock: FrozenClock, broken_url: Any
) -> None:
    settings = load_settings(database_url=broken_url(tmp_path), data_dir=tmp_path / "var")
    ctx = Context.build(settings, clock=clock)  # the process starts; the database is simply not there
    try:
        async with serve(ctx) as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["retry-after"].isdigit()
            assert ready.json()["status"] == "error"
            assert_unavailable(await client.post(f"{API}/login", json={"email": "a@example.com", "password": "x"}))
            assert_unavailable(
                await client.post(f"{API}/register", json={"email": "a@example.com", "password": PASSWORD})
            )
    finally:
        await ctx.close()


# --------------------------------------------------------------------------- metrics


def requests_total(text: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "sessionward_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
    return 0.0


async def test_metrics_is_prometheus_text_and_counts_requests(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.get("/healthz")).status_code == 200
    assert (await client.get(f"{API}/me")).status_code == 401
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert "# TYPE sessionward_http_requests_total counter" in after
    assert "# TYPE sessionward_http_request_duration_seconds histogram" in after
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert requests_total(after, **healthz) - requests_total(before, **healthz) == 3
    me = {"method": "GET", "route": f"{API}/me", "status": "401"}
    assert requests_total(after, **me) - requests_total(before, **me) == 1


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value in a scrape (``name`` as written, e.g. ``sessionward_refreshes_total``); 0 if absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def test_metrics_count_refresh_outcomes_sign_ins_and_revocations_by_reason(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    before = (await client.get("/metrics")).text
    login = await users.signed_in()
    first = login.refresh
    assert await refresh_status(client, login) == 200  # rotated
    assert (await refresh(client, first, login.session_id)).status_code == 200  # the parent again, in grace: grace
    assert (await refresh(client, "x" * 43, login.session_id)).status_code == 401  # refused
    wrong = await client.post(f"{API}/login", json={"email": login.email, "password": PASSWORD + "!"})
    assert wrong.status_code == 401
    other = await users.signed_in()
    assert (await client.post(f"{API}/logout", json={}, headers=other.auth)).status_code == 200
    after = (await client.get("/metrics")).text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("sessionward_refreshes_total", outcome="rotated") == 1
    assert grew("sessionward_refreshes_total", outcome="grace") == 1
    assert grew("sessionward_refreshes_total", outcome="refused") == 1
    assert grew("sessionward_logins_total", outcome="succeeded") == 2
    assert grew("sessionward_logins_total", outcome="failed") == 1
    assert grew("sessionward_sessions_revoked_total", reason="logout") == 1
    for reason in ("revoked", "evicted", "reused", "password_changed", "password_reset", "admin"):
        assert f'sessionward_sessions_revoked_total{{reason="{reason}"}}' in after
    assert sample(after, "sessionward_db_connections_in_use") == 0
    async with ctx.db.read() as conn:
        waiting = await outbox_store.pending(conn)
    assert waiting["mail"][0] >= 2  # the two accounts' verification mails, not sent here (no sender runs)
    assert sample(after, "sessionward_outbox_pending", kind="mail") == waiting["mail"][0]
    assert 'sessionward_outbox_oldest_age_seconds{kind="mail"}' in after


async def test_a_reused_refresh_token_is_counted_as_reused(client: httpx.AsyncClient, users: Users) -> None:
    before = (await client.get("/metrics")).text
    login = await users.signed_in()
    first = login.refresh
    assert await refresh_status(client, login) == 200
    assert await refresh_status(client, login) == 200  # the first token's successor is retired too: no grace left
    assert (await refresh(client, first, login.session_id)).status_code == 401
    after = (await client.get("/metrics")).text
    reused = sample(after, "sessionward_refreshes_total", outcome="reused")
    assert reused - sample(before, "sessionward_refreshes_total", outcome="reused") == 1
    ended = sample(after, "sessionward_sessions_revoked_total", reason="reused")
    assert ended - sample(before, "sessionward_sessions_revoked_total", reason="reused") == 1


async def test_every_metric_the_grafana_dashboard_queries_is_in_a_scrape(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    dashboard = orjson.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_bytes())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"sessionward_[a-z_]+", target["expr"])
    }
    assert (await client.get("/healthz")).status_code == 200
    await cleanup(ctx)  # its counters have a label per table, made on its first run
    scraped = {s.name for f in text_string_to_metric_families((await client.get("/metrics")).text) for s in f.samples}
    assert len(queried) >= 10
    assert queried <= scraped, queried - scraped


async def test_metrics_labels_use_route_templates_not_raw_paths(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    await client.get("/no-such-page-7f3a9c")
    await client.delete(f"{API}/sessions/{'b' * 64}", headers=login.auth)
    text = (await client.get("/metrics")).text
    assert "7f3a9c" not in text
    assert "b" * 64 not in text
    assert requests_total(text, route=f"{API}/sessions/{{session_id}}", status="404") >= 1
    assert requests_total(text, route="unmatched", status="404") >= 1


# --------------------------------------------------------------------------- OpenAPI

API_MD_ENDPOINTS = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/auth/me"),
    ("DELETE", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/sessions"),
    ("DELETE", "/api/v1/auth/sessions/{}"),
    ("DELETE", "/api/v1/auth/sessions"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password"),
    ("GET", "/api/v1/auth/events"),
    ("GET", "/api/v1/admin/users/{}/sessions"),
    ("DELETE", "/api/v1/admin/users/{}/sessions"),
    ("POST", "/api/v1/auth/revoke"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}
PROTECTED = {
    (m, p)
    for m, p in API_MD_ENDPOINTS
    if p.startswith("/api/v1/admin") or p in {f"{API}/me", f"{API}/sessions", f"{API}/sessions/{{}}"}
} | {("POST", f"{API}/logout"), ("POST", f"{API}/password"), ("GET", f"{API}/events")}
JSON_BODIES = {
    ("POST", f"{API}/register"),
    ("POST", f"{API}/login"),
    ("POST", f"{API}/refresh"),
    ("POST", f"{API}/logout"),
    ("POST", f"{API}/password"),
    ("DELETE", f"{API}/me"),
}


async def openapi_operations(client: httpx.AsyncClient) -> dict[tuple[str, str], dict[str, Any]]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path)): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def test_openapi_lists_every_endpoint_of_api_md(client: httpx.AsyncClient) -> None:
    operations = await openapi_operations(client)
    assert set(operations) >= API_MD_ENDPOINTS, API_MD_ENDPOINTS - set(operations)


async def test_openapi_marks_protected_endpoints_with_bearer_and_401(client: httpx.AsyncClient) -> None:
    operations = await openapi_operations(client)
    for key in PROTECTED:
        assert operations[key].get("security") == [{"HTTPBearer": []}], key
        assert "401" in operations[key]["responses"], key
    public = {key for key, operation in operations.items() if "security" not in operation}
    assert public >= API_MD_ENDPOINTS - PROTECTED, (API_MD_ENDPOINTS - PROTECTED) - public
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "An access token from login or refresh."}
    }


async def test_openapi_documents_json_bodies_and_the_body_guard_answers(client: httpx.AsyncClient) -> None:
    operations = await openapi_operations(client)
    for key in JSON_BODIES:
        operation = operations[key]
        assert "application/json" in operation["requestBody"]["content"], key
        assert {"400", "413", "415"} <= set(operation["responses"]), key
    revoke = operations[("POST", f"{API}/revoke")]
    assert "application/x-www-form-urlencoded" in revoke["requestBody"]["content"]
    assert "503" in operations[("GET", "/readyz")]["responses"]


# --------------------------------------------------------------------------- request ids


@pytest.mark.parametrize("given", ["abc-123_X.y", "0" * 64, "7f3a9c"])
async def test_a_valid_incoming_request_id_is_echoed(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/healthz", headers={"x-request-id": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize("junk", ["has space", "a" * 65, "<script>", "id\twith\ttab", "../../etc", "", "ünïcode"])
async def test_a_junk_request_id_is_replaced(client: httpx.AsyncClient, junk: str) -> None:
    response = await client.get("/healthz", headers={"x-request-id": junk.encode("utf-8")})
    assert GENERATED_ID.match(response.headers["x-request-id"]), response.headers["x-request-id"]


@pytest.mark.parametrize("settings_overrides", [{"database_timeout": "300ms"}])
async def test_every_response_carries_a_request_id_and_they_differ(
    client: httpx.AsyncClient, ctx: Context, database_url: str, users: Users
) -> None:
    login = await users.signed_in()
    responses = [
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/metrics"),
        await client.get("/openapi.json"),
        await client.get(f"{API}/me", headers=login.auth),
        await client.get(f"{API}/me"),
        await client.get("/missing"),
        await client.put(f"{API}/login"),
        await client.post(f"{API}/login", content=b"x", headers={"content-type": "text/plain"}),
        await client.post(f"{API}/login", json={"email": "a@example.com", "password": "x" * 5000}),
        await client.post(f"{API}/login", content=b"{" * (65 * 1024), headers={"content-type": "application/json"}),
    ]
    with write_lock(database_url):
        responses.append(await refresh(client, login.refresh, login.session_id))
    statuses = {r.status_code for r in responses}
    assert {200, 400, 401, 404, 405, 413, 415, 503} <= statuses
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(rid and GENERATED_ID.match(rid) for rid in ids), ids
    assert len(set(ids)) == len(ids)


# --------------------------------------------------------------------------- a locked database


class TestLockedDatabase:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"database_timeout": "300ms"}

    async def test_refresh_during_a_write_lock_is_503_and_rotates_nothing(
        self, client: httpx.AsyncClient, ctx: Context, database_url: str, users: Users
    ) -> None:
        login = await users.signed_in()
        before = await row_counts(ctx)
        with write_lock(database_url):
            assert_unavailable(await refresh(client, login.refresh, login.session_id))
        assert await row_counts(ctx) == before
        again = await refresh(client, login.refresh, login.session_id)
        assert again.status_code == 200, again.text
        successor = again.json()["data"]["refresh"]["token"]
        assert successor != login.refresh
        # A plain first rotation, not a grace replay or reuse: the successor works in turn.
        assert (await refresh(client, successor, login.session_id)).status_code == 200

    async def test_login_during_a_write_lock_is_503_and_creates_no_session(
        self, client: httpx.AsyncClient, ctx: Context, database_url: str, users: Users
    ) -> None:
        email = await users.register()
        before = await row_counts(ctx)
        with write_lock(database_url):
            locked = await client.post(f"{API}/login", json={"email": email, "password": PASSWORD})
            assert_unavailable(locked)
            # Reads still work under a writer (WAL): the service is up, only writes wait.
            assert (await client.get("/readyz")).status_code == 200
        assert await row_counts(ctx) == before
        await users.login(email)

    async def test_logout_during_a_write_lock_is_503_and_the_session_survives(
        self, client: httpx.AsyncClient, ctx: Context, database_url: str, users: Users
    ) -> None:
        login = await users.signed_in()
        before = await row_counts(ctx)
        with write_lock(database_url):
            assert_unavailable(await client.post(f"{API}/logout", json={}, headers=login.auth))
        assert await row_counts(ctx) == before
        assert (await client.get(f"{API}/me", headers=login.auth)).status_code == 200
        assert (await refresh(client, login.refresh, login.session_id)).status_code == 200


# --------------------------------------------------------------------------- logs


class JsonLines(logging.Handler):
    """Formats each record as it is emitted, like the service's stream handler does."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """The service's logging set up as ``serve`` does with its most verbose LOG_LEVEL, captured as text."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    watched = [logging.getLogger(name) for name in ("aiosqlite", "sqlalchemy", "sqlalchemy.engine", "uvicorn.access")]
    saved_levels = [(logger.level, logger.disabled) for logger in watched]
    logs.configure("DEBUG")
    handler = JsonLines()
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for logger, (level, disabled) in zip(watched, saved_levels, strict=True):
            logger.setLevel(level)
            logger.disabled = disabled


class TestLogs:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"database_timeout": "300ms", "refresh_token_reuse_interval": "10s"}

    async def test_a_full_flow_logs_json_lines_with_request_ids_and_no_secrets(
        self, client: httpx.AsyncClient, ctx: Context, database_url: str, log_lines: list[str]
    ) -> None:
        secrets: set[str] = {PASSWORD, TEST_ENV["JWT_SECRET"]}
        seen_ids: set[str] = set()

        async def call(response: Any) -> httpx.Response:
            answer: httpx.Response = await response
            seen_ids.add(answer.headers["x-request-id"])
            return answer

        email = "logged@example.com"
        wrong, weak = "Wr0ng-Passw0rd-Guess", "Zq9!x"
        secrets |= {wrong, weak}
        await call(client.post(f"{API}/register", json={"email": email, "password": weak}))
        assert (await call(client.post(f"{API}/register", json={"email": email, "password": PASSWORD}))).is_success
        failed = await call(client.post(f"{API}/login", json={"email": email, "password": wrong}))
        assert failed.status_code == 401
        await call(client.post(f"{API}/login", json={"email": "ghost@example.com", "password": wrong}))
        login = (await call(client.post(f"{API}/login", json={"email": email, "password": PASSWORD}))).json()["data"]
        access, first = login["tokens"]["access"]["token"], login["tokens"]["refresh"]["token"]
        session_id = login["session"]["id"]
        auth = {"authorization": f"Bearer {access}"}
        rotated = (await call(refresh(client, first, session_id))).json()["data"]
        second, access2 = rotated["refresh"]["token"], rotated["access"]["token"]
        await call(client.get(f"{API}/me", headers=auth))
        await call(client.get(f"{API}/me", headers={"authorization": f"Bearer {access}x"}))
        await call(refresh(client, "not-a-real-token-at-all", session_id))
        with write_lock(database_url):
            assert (await call(refresh(client, second, session_id))).status_code == 503
        changed = await call(
            client.post(f"{API}/password", json={"current_password": wrong, "new_password": weak}, headers=auth)
        )
        assert changed.status_code in (400, 403)
        assert (await call(client.post(f"{API}/logout", json={}, headers=auth))).status_code == 200
        await asyncio.sleep(2 * logs.AccessLog.DELAY_SECONDS)  # the access log's lines are written in batches

        async with ctx.db.read() as conn:
            password_hash = (await conn.execute(select(users_table.c.password_hash))).scalar_one()
        for token in (first, second):
            secrets |= {token, hash_token(token)}
        for jwt in (access, access2):
            secrets |= {jwt, jwt.rsplit(".", 1)[1]}
        secrets.add(password_hash)
        secrets.add(password_hash.rsplit("$", 1)[1])

        assert log_lines, "nothing was logged"
        for line in log_lines:
            assert "\n" not in line
            entry = orjson.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(entry)
            for secret in secrets:
                assert secret not in line, (secret[:12], line[:300])
        service_lines = [
            orjson.loads(line) for line in log_lines if orjson.loads(line)["logger"].startswith("sessionward")
        ]
        assert service_lines
        assert all(entry.get("request_id") for entry in service_lines)
        request_lines = [entry for entry in service_lines if entry["msg"] == "request"]
        assert {entry["request_id"] for entry in request_lines} == seen_ids
        assert {entry["status"] for entry in request_lines} >= {200, 201, 400, 401, 503}
        assert any(entry["level"] == "warning" and entry["msg"] == "unavailable" for entry in service_lines)


async def test_log_records_keep_their_request_id_when_formatted_later(client: httpx.AsyncClient) -> None:
    """A record handed to another thread or a queue (QueueHandler) is formatted outside the request."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("sessionward")
    keep = Keep(logging.INFO)
    saved_level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        response = await client.get("/healthz", headers={"x-request-id": "later-formatted-1"})
        logs.access.flush()
    finally:
        logger.removeHandler(keep)
        logger.setLevel(saved_level)
    assert response.status_code == 200
    entries = [orjson.loads(logs.JsonFormatter().format(record)) for record in records]
    assert any(entry.get("request_id") == "later-formatted-1" for entry in entries), entries


_APART = 0.02


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[_Kept]:
    logger = logging.getLogger("sessionward.test-access")
    handler = _Kept()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_access_lines_are_written_within_the_delay_with_their_own_time_and_request_id(kept: _Kept) -> None:
    access = logs.AccessLog(logging.getLogger("sessionward.test-access"))
    access.add("first-id", {"method": "GET", "path": "/a", "status": 200, "ms": 0.1})
    assert kept.records == []  # batched: nothing yet
    await asyncio.sleep(_APART)
    access.add("second-id", {"method": "POST", "path": "/b", "status": 401, "ms": 0.2})
    await asyncio.sleep(2 * logs.AccessLog.DELAY_SECONDS)
    entries = [orjson.loads(logs.JsonFormatter().format(record)) for record in kept.records]
    assert [(e["request_id"], e["msg"], e["method"], e["status"]) for e in entries] == [
        ("first-id", "request", "GET", 200),
        ("second-id", "request", "POST", 401),
    ]
    first, second = kept.records
    assert second.created - first.created >= _APART * 0.9  # stamped when each request ended, not when written


async def test_a_full_batch_of_access_lines_is_written_at_once(kept: _Kept) -> None:
    access = logs.AccessLog(logging.getLogger("sessionward.test-access"))
    for n in range(logs.AccessLog.BATCH):
        access.add(f"id-{n}", {"status": 200})
    assert len(kept.records) == logs.AccessLog.BATCH
    access.add("after", {"status": 200})
    assert len(kept.records) == logs.AccessLog.BATCH
    access.flush()
    assert kept.records[-1].request_id == "after"  # type: ignore[attr-defined]


async def test_access_lines_are_not_kept_when_info_is_off(kept: _Kept) -> None:
    logger = logging.getLogger("sessionward.test-access")
    logger.setLevel(logging.WARNING)
    access = logs.AccessLog(logger)
    access.add("quiet", {"status": 200})
    access.flush()
    assert kept.records == []


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("30d", timedelta(days=30)),
        ("10s", timedelta(seconds=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("900", timedelta(seconds=900)),
        ("2w", timedelta(weeks=2)),
        (" 15M ", timedelta(minutes=15)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_durations_are_parsed_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: timedelta
) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRES_IN", text)
    assert load_settings().access_token_expires_in == expected


@pytest.mark.parametrize("text", ["abc", "0s", "-5m", "0", "", "5 minutes", "1.5h", "m", "15x", "1h-30m"])
def test_bad_durations_raise_a_one_line_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRES_IN", text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "ACCESS_TOKEN_EXPIRES_IN" in message
    assert "\n" not in message
    assert caught.value.__cause__ is None or "Traceback" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REFRESH_TOKEN_REUSE_INTERVAL", "never"),
        ("SESSION_IDLE_TIMEOUT", "-1d"),
        ("LOGIN_RATE_LIMIT", "lots"),
        ("REGISTER_RATE_LIMIT", "5 per fortnight"),
        ("CLEANUP_SCHEDULE", "61 * * * *"),
        ("CLEANUP_SCHEDULE", "every hour"),
        ("CLEANUP_BATCH_SIZE", "0"),
        ("MAX_SESSIONS_PER_USER", "many"),
        ("RATE_LIMIT_ENABLED", "perhaps"),
        ("JWT_ALGORITHM", "none"),
        ("SESSION_IP_VALIDATION", "sometimes"),
        ("ENV", "staging"),
        ("JWT_SECRET", "too short"),
        ("ARGON2_MEMORY_KIB", "8"),
        ("LOG_LEVEL", "CHATTY"),
    ],
)
def test_invalid_settings_raise_a_one_line_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message
    if variable == "JWT_SECRET":
        assert value not in message  # a secret is never repeated back


@pytest.mark.parametrize("schedule", ["off", "OFF", "0 * * * *", "*/5 * * * *", "* * * * *", "30 3 * * 1-5"])
def test_valid_cleanup_schedules_are_accepted(monkeypatch: pytest.MonkeyPatch, schedule: str) -> None:
    monkeypatch.setenv("CLEANUP_SCHEDULE", schedule)
    assert load_settings().cleanup_schedule == schedule


def test_production_without_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.delenv("JWT_SECRET")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", TEST_ENV["JWT_SECRET"])
    assert load_settings().env.value == "production"


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Path.cwd() == tmp_path
    (tmp_path / ".env").write_text("ACCESS_TOKEN_EXPIRES_IN=7m\nMAX_SESSIONS_PER_USER=9\nLOGIN_RATE_LIMIT=4/hour\n")
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "3")
    settings = load_settings()
    assert settings.access_token_expires_in == timedelta(minutes=7)
    assert settings.login_rate_limit == "4/hour"
    assert settings.max_sessions_per_user == 3


def test_a_bad_value_in_dotenv_is_reported_like_one_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SESSION_EXPIRES_IN=forever\n")
    with pytest.raises(ConfigError, match="SESSION_EXPIRES_IN"):
        load_settings()


# --------------------------------------------------------------------------- the in-process cleanup schedule


def schedule_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__qualname__", "") == "run_schedule"]


@pytest.mark.parametrize(("schedule", "runs"), [("* * * * *", True), ("off", False)])
async def test_lifespan_starts_the_cleanup_schedule_unless_off_and_cancels_it_on_shutdown(
    make_settings: Any, clock: FrozenClock, schedule: str, runs: bool
) -> None:
    ctx = Context.build(make_settings(cleanup_schedule=schedule), clock=clock)
    app = create_app(ctx).app
    before = set(schedule_tasks())
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)
        started = [task for task in schedule_tasks() if task not in before]
        assert len(started) == (1 if runs else 0)
        assert all(not task.done() for task in started)
    if started:
        await asyncio.wait(started, timeout=5)
        assert started[0].cancelled()
