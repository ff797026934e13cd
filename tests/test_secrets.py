"""Secrets stay secret (issue 6.6), for a real server process: its whole log file, at DEBUG, and its whole
database (for SQLite the raw bytes of the database and journal files, free pages included) hold no password,
refresh token, access token or JWT secret that the flow below used, and no answer repeats a secret the request
carried where it does not belong. The flow goes through every path that touches a secret, the failing ones
too. tests/test_model.py checks the same on the database and the logs of every state-machine run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sessionward.audit.tables import audit_events
from sessionward.db import Database
from sessionward.sessions.tables import sessions
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.tables import refresh_tokens, token_blacklist
from sessionward.users.tables import users as users_table
from tests.conftest import API, FIREFOX_LINUX, TEST_ENV
from tests.live import LiveServer

pytestmark = pytest.mark.live

PASSWORDS = {
    "first": "first correct horse battery",
    "second": "second correct horse battery",
    "wrong": "Wr0ng-but-plausible-guess",
    "weak": "Zq9!x",
    "erase": "the password that erases",
}


class Flow:
    """A client that remembers every secret it was handed or sent, and every answer it got."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.refresh_tokens: set[str] = set()
        self.access_tokens: set[str] = set()
        self.answers: list[httpx.Response] = []

    async def send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await self.client.request(method, path if path.startswith("/") else f"{API}/{path}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 500, (path, response.text)
        self.answers.append(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            data = response.json().get("data") or {}
            tokens = data.get("tokens", data)
            if isinstance(tokens, dict) and "refresh" in tokens and "access" in tokens:
                if "token" in tokens["refresh"]:
                    self.refresh_tokens.add(tokens["refresh"]["token"])
                self.access_tokens.add(tokens["access"]["token"])
        return response

    async def login(self, email: str, password: str) -> tuple[str, str, str]:
        response = await self.send("POST", "login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        return data["tokens"]["access"]["token"], data["tokens"]["refresh"]["token"], data["session"]["id"]

    async def refresh(self, token: str, session_id: str) -> httpx.Response:
        return await self.send("POST", "refresh", json={"refresh_token": token, "session_id": session_id})


async def _every_path_that_touches_a_secret(flow: Flow) -> None:
    email = "secret-keeper@example.com"
    await flow.send("POST", "register", json={"email": email, "password": PASSWORDS["weak"]})  # 400
    await flow.send("POST", "register", json={"email": email, "password": PASSWORDS["first"]})
    await flow.send("POST", "login", json={"email": email, "password": PASSWORDS["wrong"]})  # 401
    await flow.send("POST", "login", json={"email": "ghost@example.com", "password": PASSWORDS["wrong"]})
    access, token, session_id = await flow.login(email, PASSWORDS["first"])
    other_access, other_token, other_id = await flow.login(email, PASSWORDS["first"])
    bearer = {"authorization": f"Bearer {access}"}

    rotated = (await flow.refresh(token, session_id)).json()["data"]["refresh"]["token"]
    assert (await flow.refresh(token, session_id)).status_code == 200  # a grace retry: the sealed successor
    newest = (await flow.refresh(rotated, session_id)).json()["data"]["refresh"]["token"]
    await flow.refresh(token, session_id)  # a grandparent: reuse, the session ends
    await flow.refresh(newest, session_id)

    access, token, session_id = await flow.login(email, PASSWORDS["first"])
    bearer = {"authorization": f"Bearer {access}"}
    await flow.send("GET", "me", headers=bearer)
    # Tokens where they do not belong: in the query, in odd headers, in malformed or oversized bodies.
    await flow.send("GET", f"me?access_token={access}&refresh_token={token}")
    await flow.send("GET", "me", headers={"authorization": f"Bearer {access}x"})
    await flow.send("GET", "me", headers={"authorization": f"Bearer {access}{'A' * 5000}"})
    await flow.send("GET", "me", headers={"authorization": token})
    await flow.send("GET", "sessions", headers={**bearer, "x-session-id": token})
    await flow.send(
        "POST", "refresh", content=f'{{"refresh_token": "{token}", ', headers={"content-type": "application/json"}
    )
    await flow.send("POST", "refresh", json={"refresh_token": token * 9, "session_id": session_id})
    await flow.send("POST", "refresh", json={"refresh_token": [token], "session_id": session_id})
    await flow.send("POST", "refresh", content=f"refresh_token={token}", headers={"content-type": "text/plain"})
    await flow.send("POST", "refresh", json={"refresh_token": token, "session_id": other_id})  # wrong session
    await flow.send("POST", "login", json={"email": email, "password": [PASSWORDS["first"]]})
    await flow.send("POST", "login", json={"email": PASSWORDS["first"], "password": PASSWORDS["first"]})
    body = {"current_password": PASSWORDS["wrong"], "new_password": PASSWORDS["second"]}
    await flow.send("POST", "password", json=body, headers=bearer)  # 403
    body = {"current_password": PASSWORDS["first"], "new_password": PASSWORDS["weak"]}
    await flow.send("POST", "password", json=body, headers=bearer)  # 400
    body = {"current_password": PASSWORDS["first"], "new_password": PASSWORDS["second"]}
    assert (await flow.send("POST", "password", json=body, headers=bearer)).status_code == 200
    await flow.send("POST", "revoke", data={"token": other_token})
    await flow.send("POST", "revoke", data={"token": other_access, "token_type_hint": "access_token"})
    await flow.send("POST", "logout", json={}, headers=bearer)

    access, token, session_id = await flow.login(email, PASSWORDS["second"])
    bearer = {"authorization": f"Bearer {access}"}
    await flow.send("DELETE", "me", json={"password": PASSWORDS["wrong"]}, headers=bearer)  # 403: kept
    await flow.send("POST", "register", json={"email": "erased@example.com", "password": PASSWORDS["erase"]})
    erased_access, _, _ = await flow.login("erased@example.com", PASSWORDS["erase"])
    await flow.send(
        "DELETE", "me", json={"password": PASSWORDS["erase"]}, headers={"authorization": f"Bearer {erased_access}"}
    )


def _sqlite_bytes(folder: Path) -> bytes:
    """The database file and whatever journal files are left: every byte, free pages included."""
    files = [path for path in folder.glob("var/sessionward.db*") if path.is_file()]
    assert files, "no database file"
    return b"\n".join(path.read_bytes() for path in files)


async def _database_text(database_url: str, folder: Path) -> bytes:
    if database_url.startswith("sqlite"):
        return _sqlite_bytes(folder)
    db = Database(database_url)
    try:
        async with db.read() as conn:
            tables = (users_table, sessions, refresh_tokens, token_blacklist, audit_events)
            return repr([(await conn.execute(select(table))).all() for table in tables]).encode()
    finally:
        await db.dispose()


async def test_a_live_servers_logs_database_and_answers_hold_none_of_the_secrets_it_handled(
    tmp_path: Path, database_url: str
) -> None:
    server = LiveServer(tmp_path, database_url=database_url, env={"LOG_LEVEL": "DEBUG", "RATE_LIMIT_ENABLED": "false"})
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers={"user-agent": FIREFOX_LINUX}) as client:
            flow = Flow(client)
            await _every_path_that_touches_a_secret(flow)
    finally:
        server.stop()
    await asyncio.sleep(0)
    assert len(flow.refresh_tokens) >= 6
    assert len(flow.access_tokens) >= 6
    issued = flow.refresh_tokens | flow.access_tokens | {token.rsplit(".", 1)[1] for token in flow.access_tokens}
    secrets = issued | set(PASSWORDS.values()) | {TEST_ENV["JWT_SECRET"]}

    logged = server.log.read_text()
    assert logged.count('"msg":"request"') >= len(flow.answers)  # every request was logged: the capture is real
    for secret in secrets | {hash_token(token) for token in flow.refresh_tokens}:
        assert secret not in logged, f"in the log: {secret[:12]}..."

    stored = await _database_text(database_url, tmp_path)
    for secret in secrets:
        assert secret.encode() not in stored, f"in the database: {secret[:12]}..."

    for response in flow.answers:  # an answer carries only the tokens it hands out, never a password
        for password in PASSWORDS.values():
            assert password not in response.text, response.request.url
        if response.status_code >= 400:
            for secret in issued:
                assert secret not in response.text, (response.request.url, response.status_code)
