"""A model of sessions and tokens, and a hypothesis state machine that checks the service against it (issue 6.2).

The model is written from API.md, not from the code: sessions (idle and absolute expiry, the cap with
least-recently-active eviction), refresh tokens (rotation, the grace retry of the immediate parent that returns
the same successor, reuse after the grace revoking the session, expiry never past the session's), access tokens
(15 minutes with at most 1 s of leeway, dead at once with their session, blacklisted by logout and RFC 7009),
and activity tracking (at most one write a minute). Hypothesis drives the real app (ASGI, real database, a
frozen clock it advances) through logins, refreshes (the live token, a retry within the grace, a replay after
it, a token presented with the wrong session, expired ones), revoking one session or the others, every logout
variant, password changes, RFC 7009 revocation and clock jumps past the grace, access, idle, refresh and
absolute expiry. After every step:

- every access token that may still work (and a few dead ones) is presented: 200 exactly when the model says so;
- an administrator lists each user's active sessions: exactly the model's, in the model's order;
- the stored refresh tokens are exactly the model's, each with the model's state (rotated, revoked, expiry),
  so no hidden successor exists;

and at the end of each run every refresh token ever issued is presented once, in an order where each answer
is predictable, and each answer must be the model's (200 with the expected token, or 401).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import jwt
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, update

from sessionward.app import create_app
from sessionward.audit.tables import audit_events
from sessionward.clock import FrozenClock
from sessionward.config import Settings, load_settings
from sessionward.context import Context
from sessionward.sessions import service as sessions_service
from sessionward.sessions.tables import sessions
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.tables import refresh_tokens, token_blacklist
from sessionward.users.tables import users as users_table
from tests.conftest import API, FIREFOX_LINUX, PASSWORD, TEST_ENV
from tests.test_fuzz import unmeasured  # noqa: F401 - a fixture: coverage paused
from tests.test_ops import log_lines  # noqa: F401 - a fixture: the service's logs at DEBUG, captured

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "25"))
STEPS = int(os.environ.get("MODEL_STEPS", "30"))

ACCESS = timedelta(minutes=15)
GRACE = timedelta(seconds=10)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(minutes=40)
REFRESH = timedelta(minutes=20)  # shorter than a session: a refresh token can expire while its session lives
CAP = 3
WRITE_INTERVAL = min(timedelta(seconds=60), IDLE / 4)  # API.md: activity writes are coalesced to this
LEEWAY = 1  # seconds past exp an access token is still accepted
START = datetime(2031, 3, 4, 5, 6, 7, 500_000, tzinfo=UTC)  # a half second: exp/iat are floored
PASSWORDS = (PASSWORD, "another correct horse", "a third correct horse")
WRONG_PASSWORD = "surely not the password"
# Within the grace, at its edge, just past it, past the activity interval; then past the refresh lifetime (in
# two), at and past the access lifetime, at and past the idle timeout, past the absolute lifetime.
SHORT_JUMPS = [1, 9, 10, 11, 61]
LONG_JUMPS = [601, 899, 901, 1799, 1800, 2401]
EXERCISED = [
    "refresh: rotate",
    "refresh: grace",
    "refresh: reuse",
    "refresh: invalid",
    "refresh: with another session",
    "session evicted at the cap",
    "session past its idle timeout",
    "session past its absolute expiry while in use",
    "refresh token past its expiry in a live session",
]
SEEN: Counter[str] = Counter()
SECRETS: set[str] = set()  # every secret the runs used, looked for in the logs at the end
ACTIONS = [
    "me",
    "list own sessions",
    "revoke one session",
    "revoke an unknown session",
    "revoke other sessions",
    "logout (no body)",
    "logout {}",
    "logout everywhere",
    "logout of a named session",
    "change password",
    "change password with a wrong current one",
]
# Which token, session or chain a rule takes: one of the last few most often, any of them sometimes.
PICK = st.integers(0, 2) | st.integers(0, 10_000)


def _recent(items: list[Any], pick: int) -> Any:
    return items[
        -1 - pick % len(items)
    ]  # what the runs exercised, across all examples (asserted and printed at the end)


# --------------------------------------------------------------------------- the model


@dataclass
class MSession:
    id: str
    user: int
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    revoked: bool = False

    def active(self, now: datetime) -> bool:
        return not self.revoked and self.expires_at > now and self.last_activity > now - IDLE


@dataclass
class MRefresh:
    token: str
    session: str
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked: bool = False
    child: MRefresh | None = None


@dataclass
class MAccess:
    token: str
    session: str
    user: int
    exp: int
    blacklisted: bool = False
    known_dead: bool = False  # once refused, an access token is never accepted again


@dataclass
class Model:
    now: datetime
    passwords: dict[int, str]
    sessions: dict[str, MSession] = field(default_factory=dict)
    refresh: list[MRefresh] = field(default_factory=list)
    access: list[MAccess] = field(default_factory=list)

    # ---- access tokens

    def access_valid(self, token: MAccess) -> bool:
        session = self.sessions[token.session]
        return not token.blacklisted and self.now.timestamp() < token.exp + LEEWAY and session.active(self.now)

    def authenticate(self, token: MAccess) -> bool:
        """An authenticated request: refused, or accepted and (at most once a minute) recorded as activity."""
        if not self.access_valid(token):
            return False
        session = self.sessions[token.session]
        if self.now - session.last_activity >= WRITE_INTERVAL:
            session.last_activity = self.now
        return True

    def issue_access(self, session: MSession, token: str) -> MAccess:
        issued = MAccess(token, session.id, session.user, int(self.now.timestamp()) + int(ACCESS.total_seconds()))
        self.access.append(issued)
        return issued

    # ---- sessions

    def end(self, session: MSession) -> None:
        session.revoked = True
        for token in self.refresh:
            if token.session == session.id:
                token.revoked = True

    def active_of(self, user: int) -> list[MSession]:
        """Most recently active first; then the newer; then by id (API.md's order, the list's tie-break)."""
        listed = [s for s in self.sessions.values() if s.user == user and s.active(self.now)]
        listed.sort(key=lambda s: s.id)
        listed.sort(key=lambda s: (s.last_activity, s.created_at), reverse=True)
        return listed

    def login(self, user: int, session_id: str, refresh: str, access: str) -> MAccess:
        session = MSession(session_id, user, self.now, self.now, self.now + ABSOLUTE)
        self.sessions[session_id] = session
        self.refresh.append(MRefresh(refresh, session_id, min(self.now + REFRESH, session.expires_at)))
        issued = self.issue_access(session, access)
        # The cap: the least recently active go (the older on a tie, then the smaller id); never the new session.
        others = [s for s in self.sessions.values() if s.user == user and s.id != session_id and s.active(self.now)]
        others.sort(key=lambda s: (s.last_activity, s.created_at, s.id), reverse=True)
        for evicted in others[CAP - 1 :]:
            SEEN["session evicted at the cap"] += 1
            self.end(evicted)
        return issued

    # ---- refresh

    def verdict(self, token: MRefresh, session_id: str) -> str:
        """``rotate`` (the live token), ``grace`` (its parent, retried within the interval: the same successor),
        ``reuse`` (any other rotated token of a live session: the session dies), ``invalid`` (nothing changes)."""
        session = self.sessions.get(session_id)
        if session is None or not session.active(self.now):
            return "invalid"
        if token.session != session_id or token.revoked or token.expires_at <= self.now:
            return "invalid"
        if token.rotated_at is None:
            return "rotate"
        child = token.child
        live_child = (
            child is not None and child.rotated_at is None and not child.revoked and child.expires_at > self.now
        )
        return "grace" if live_child and self.now - token.rotated_at <= GRACE else "reuse"


# --------------------------------------------------------------------------- the machine


class SessionIds:
    """Session ids from a counter instead of the CSPRNG, for this test only: the cap's last tie-break is the
    id, and hypothesis must be able to replay a run exactly to shrink it. Still 64 hex characters."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return hashlib.sha256(f"model session {self.issued}".encode()).hexdigest()


class Service:
    """The app in an event loop of its own (hypothesis's rules are synchronous)."""

    def __init__(self, portal: Any, settings_: Settings) -> None:
        self.portal = portal
        self.clock = FrozenClock(START)
        self.ctx = Context.build(settings_, clock=self.clock)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(self.ctx), client=("203.0.113.7", 50000)),
            base_url="http://testserver",
            headers={"user-agent": FIREFOX_LINUX},
        )

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        SEEN["requests"] += 1
        url = path if path.startswith("/api/") else f"{API}{path}"
        response: httpx.Response = self.portal.call(lambda: self.client.request(method, url, headers=headers, **kwargs))
        assert response.status_code < 500, (method, path, response.text)
        return response

    def run(self, coroutine_function: Any) -> Any:
        return self.portal.call(coroutine_function)

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self.portal.call(self.ctx.close)


class SessionsAndTokens(RuleBasedStateMachine):
    def __init__(self, portal: Any, settings_: Settings, session_ids: SessionIds) -> None:
        super().__init__()
        session_ids.issued = 0
        self.service = Service(portal, settings_)
        SEEN["runs"] += 1
        self.service.run(self._empty_database)
        self.model = Model(now=START, passwords={})
        self.user_ids: dict[int, int] = {}
        self.emails: dict[int, str] = {}
        self.admin_token: str | None = None
        self.admin_since = START
        self.steps = 0

    async def _empty_database(self) -> None:
        async with self.service.ctx.db.write() as conn:
            for table in (audit_events, token_blacklist, refresh_tokens, sessions, users_table):
                await conn.execute(delete(table))

    # ---- set-up

    @initialize()
    def accounts(self) -> None:
        for user in (0, 1):
            email = f"model{user}@example.com"
            response = self.service.request("POST", "/register", json={"email": email, "password": PASSWORD})
            assert response.status_code == 201, response.text
            self.user_ids[user] = response.json()["data"]["user"]["id"]
            self.emails[user] = email
            self.model.passwords[user] = PASSWORD
        admin = self.service.request("POST", "/register", json={"email": "admin@example.com", "password": PASSWORD})
        assert admin.status_code == 201, admin.text

        async def promote() -> None:
            async with self.service.ctx.db.write() as conn:
                await conn.execute(
                    update(users_table).where(users_table.c.email == "admin@example.com").values(role="admin")
                )

        self.service.run(promote)

    def teardown(self) -> None:
        try:
            if self.user_ids:
                self.present_every_refresh_token()
                self.no_secret_is_stored()
        finally:
            self.service.close()

    def no_secret_is_stored(self) -> None:
        """Issue 6.6: no password, refresh token (the sealed successors are refresh tokens too), access token or
        the JWT secret of this run is anywhere in the database, in plain text."""
        secrets = {TEST_ENV["JWT_SECRET"], *PASSWORDS, WRONG_PASSWORD}
        secrets |= {token.token for token in self.model.refresh}
        secrets |= {part for token in self.model.access for part in (token.token, token.token.rsplit(".", 1)[1])}

        async def dump() -> str:
            async with self.service.ctx.db.read() as conn:
                tables = (users_table, sessions, refresh_tokens, token_blacklist, audit_events)
                return repr([(await conn.execute(select(table))).all() for table in tables])

        stored = self.service.run(dump)
        for secret in secrets:
            assert secret not in stored, secret[:12]
        SECRETS.update(secrets)
        SECRETS.update(hash_token(token.token) for token in self.model.refresh)  # not even hashed, in the logs

    # ---- rules: logging in

    @rule(user=st.sampled_from([0, 1]), wrong=st.sampled_from([False, False, False, True]))
    def login(self, user: int, wrong: bool) -> None:
        password = self.model.passwords[user]
        if wrong:  # an old password after a change, or a guess: 401, and nothing changes
            password = next(p for p in PASSWORDS if p != password)
        response = self.service.request("POST", "/login", json={"email": self.emails[user], "password": password})
        if wrong:
            assert response.status_code == 401, response.text
            return
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["user"]["id"] == self.user_ids[user]
        issued = self.model.login(
            user, data["session"]["id"], data["tokens"]["refresh"]["token"], data["tokens"]["access"]["token"]
        )
        assert jwt.decode(issued.token, options={"verify_signature": False})["exp"] == issued.exp
        assert data["tokens"]["refresh"]["expires_in"] == int(min(REFRESH, ABSOLUTE).total_seconds())

    # ---- rules: refreshing

    def _chain(self, pick: int, length: int) -> list[MRefresh] | None:
        """The refresh tokens of one session (with at least ``length`` of them), oldest first; recent sessions
        are picked more often."""
        chains = [[t for t in self.model.refresh if t.session == session_id] for session_id in self.model.sessions]
        chains = [chain for chain in chains if len(chain) >= length]
        return _recent(chains, pick) if chains else None

    @precondition(lambda self: bool(self.model.refresh))
    @rule(pick=PICK)
    def refresh_with_the_newest_token(self, pick: int) -> None:
        chain = self._chain(pick, 1)
        assert chain is not None
        self._present(chain[-1], chain[-1].session)

    @precondition(lambda self: any(t.rotated_at is not None for t in self.model.refresh))
    @rule(pick=PICK)
    def retry_with_the_parent_of_the_newest_token(self, pick: int) -> None:
        """A retry (a lost answer, a second tab): within the grace the same successor, after it reuse."""
        chain = self._chain(pick, 2)
        assert chain is not None
        self._present(chain[-2], chain[-2].session)

    @precondition(lambda self: any(t.child is not None and t.child.rotated_at is not None for t in self.model.refresh))
    @rule(pick=PICK, back=st.integers(3, 6))
    def replay_an_older_token(self, pick: int, back: int) -> None:
        """A grandparent or older: reuse whenever its session still lives, within the grace or not."""
        chain = self._chain(pick, 3)
        assert chain is not None
        token = chain[-min(back, len(chain))]
        self._present(token, token.session)

    @precondition(lambda self: bool(self.model.refresh))
    @rule(pick=PICK, wrong_session=PICK | st.none())
    def refresh_with_any_token(self, pick: int, wrong_session: int | None) -> None:
        """Any refresh token ever issued (live, retried, replayed, expired, revoked), with its own session or
        with another one (of either user)."""
        token = _recent(self.model.refresh, pick)
        session_id = token.session
        if wrong_session is not None:
            session_id = _recent(list(self.model.sessions), wrong_session)
        self._present(token, session_id)

    def _present(self, token: MRefresh, session_id: str) -> None:
        verdict = self.model.verdict(token, session_id)
        SEEN[f"refresh: {verdict}"] += 1
        if session_id != token.session:
            SEEN["refresh: with another session"] += 1
        response = self.service.request(
            "POST", "/refresh", json={"refresh_token": token.token, "session_id": session_id}
        )
        if verdict in ("invalid", "reuse"):
            assert response.status_code == 401, (verdict, response.text)
            if verdict == "reuse":
                self.model.end(self.model.sessions[session_id])
            return
        assert response.status_code == 200, (verdict, response.text)
        data = response.json()["data"]
        session = self.model.sessions[session_id]
        session.last_activity = self.model.now
        issued = self.model.issue_access(session, data["access"]["token"])
        assert data["access"]["expires_in"] == int(ACCESS.total_seconds())
        assert jwt.decode(issued.token, options={"verify_signature": False})["exp"] == issued.exp
        presented = data["refresh"]["token"]
        if verdict == "grace":
            assert token.child is not None
            assert presented == token.child.token  # byte for byte the same successor
            successor = token.child
        else:
            assert presented not in {known.token for known in self.model.refresh}
            successor = MRefresh(presented, session_id, min(self.model.now + REFRESH, session.expires_at))
            token.rotated_at, token.child = self.model.now, successor
            self.model.refresh.append(successor)
        assert data["refresh"]["expires_in"] == int((successor.expires_at - self.model.now).total_seconds())

    # ---- rules: authenticated requests, with any access token ever issued (most often a recent one)

    @precondition(lambda self: bool(self.model.access))
    @rule(pick=PICK, action=st.sampled_from(ACTIONS), other=PICK)
    def authenticated_request(self, pick: int, action: str, other: int) -> None:
        SEEN[f"request: {action}"] += 1
        token = _recent(self.model.access, pick)
        expected = self.model.authenticate(token)  # every one of them is activity when it is accepted
        if action == "me":
            response = self.service.request("GET", "/me", token.token)
        elif action == "list own sessions":
            response = self.service.request("GET", "/sessions", token.token)
        elif action == "revoke one session":
            session_id = _recent(list(self.model.sessions), other)
            response = self.service.request("DELETE", f"/sessions/{session_id}", token.token)
        elif action == "revoke an unknown session":
            session_id = "f" * 64
            response = self.service.request("DELETE", f"/sessions/{session_id}", token.token)
        elif action == "revoke other sessions":
            response = self.service.request("DELETE", "/sessions", token.token)
        elif action == "logout of a named session":
            session_id = _recent(list(self.model.sessions), other)
            response = self.service.request("POST", "/logout", token.token, json={"session_id": session_id})
        elif action.startswith("logout"):
            body = {"logout (no body)": None, "logout {}": {}, "logout everywhere": {"logout_all": True}}[action]
            response = self.service.request("POST", "/logout", token.token, json=body)
        else:
            right = action == "change password"
            current = self.model.passwords[token.user] if right else WRONG_PASSWORD
            new = next(p for p in PASSWORDS if p != self.model.passwords[token.user])
            body = {"current_password": current, "new_password": new}
            response = self.service.request("POST", "/password", token.token, json=body)
        if not expected:
            assert response.status_code == 401, (action, response.text)
            return
        if action == "me":
            assert response.status_code == 200, response.text
            assert response.json()["data"]["user"]["id"] == self.user_ids[token.user]
        elif action == "list own sessions":
            self._check_own_list(token, response)
        elif action in ("revoke one session", "revoke an unknown session", "logout of a named session"):
            self._check_ended_one(token, session_id, response)
        elif action == "revoke other sessions":
            assert response.status_code == 200, response.text
            ended = [
                s
                for s in self.model.sessions.values()
                if s.user == token.user and s.id != token.session and not s.revoked
            ]
            for session in ended:
                self.model.end(session)
            assert response.json()["data"]["revoked"] == len(ended)
        elif action.startswith("logout"):
            assert response.status_code == 200, response.text
            for session in list(self.model.sessions.values()):
                ends = session.id == token.session or (action == "logout everywhere" and session.user == token.user)
                if ends and not session.revoked:
                    self.model.end(session)
            token.blacklisted = True
        elif action == "change password":
            assert response.status_code == 200, response.text
            self.model.passwords[token.user] = new
            for session in self.model.sessions.values():
                if session.user == token.user and session.id != token.session and not session.revoked:
                    self.model.end(session)
        else:
            assert response.status_code == 403, response.text  # a wrong current password changes nothing

    def _check_own_list(self, token: MAccess, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        active = self.model.active_of(token.user)
        current = next((s for s in active if s.id == token.session), None)
        assert (data["current_session"] or {}).get("id") == (current.id if current else None)
        assert [s["id"] for s in data["other_sessions"]] == [s.id for s in active if s is not current]

    def _check_ended_one(self, token: MAccess, session_id: str, response: httpx.Response) -> None:
        """A session of the caller that is not revoked yet: 200 and it ends; anything else (the other user's,
        an already revoked one, none at all): 404 and nothing changes."""
        session = self.model.sessions.get(session_id)
        if session is None or session.user != token.user or session.revoked:
            assert response.status_code == 404, response.text
            return
        assert response.status_code == 200, response.text
        self.model.end(session)

    # ---- rules: RFC 7009

    @precondition(lambda self: bool(self.model.refresh))
    @rule(kind=st.sampled_from(["refresh", "access"]), pick=PICK)
    def revoke_a_token(self, kind: str, pick: int) -> None:
        """Any refresh token of a session (even rotated or expired) ends it; an unexpired access token of a
        session not yet revoked is blacklisted. Always 200."""
        if kind == "refresh":
            token = _recent(self.model.refresh, pick)
            response = self.service.request("POST", "/revoke", data={"token": token.token})
            assert response.status_code == 200, response.text
            session = self.model.sessions[token.session]
            if not session.revoked:
                self.model.end(session)
            return
        access = _recent(self.model.access, pick)
        data = {"token": access.token, "token_type_hint": "access_token"}
        response = self.service.request("POST", "/revoke", data=data)
        assert response.status_code == 200, response.text
        if self.model.now.timestamp() < access.exp + LEEWAY and not self.model.sessions[access.session].revoked:
            access.blacklisted = True

    # ---- rules: time

    @rule(seconds=st.sampled_from(SHORT_JUMPS))
    def a_moment_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @rule(seconds=st.sampled_from(LONG_JUMPS))
    def time_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @precondition(lambda self: bool(self.model.refresh))
    @rule(pick=PICK, times=st.integers(2, 5))
    def a_client_refreshes_every_ten_minutes(self, pick: int, times: int) -> None:
        """Kept in use, a session still ends at its absolute expiry."""
        for _ in range(times):
            self._advance(600)
            chain = self._chain(pick, 1)
            assert chain is not None
            self._present(chain[-1], chain[-1].session)

    def _advance(self, seconds: int) -> None:
        before = [s for s in self.model.sessions.values() if s.active(self.model.now)]
        self.service.clock.advance(timedelta(seconds=seconds))
        self.model.now += timedelta(seconds=seconds)
        for session in before:
            if session.last_activity <= self.model.now - IDLE:
                SEEN["session past its idle timeout"] += 1
            elif session.expires_at <= self.model.now:
                SEEN["session past its absolute expiry while in use"] += 1
        for token in self.model.refresh:
            live = (
                token.rotated_at is None
                and not token.revoked
                and self.model.sessions[token.session].active(self.model.now)
            )
            if live and token.expires_at <= self.model.now:
                SEEN["refresh token past its expiry in a live session"] += 1

    # ---- after every step

    @invariant()
    def access_tokens_work_exactly_when_the_model_says(self) -> None:
        if not self.user_ids:
            return
        self.steps += 1
        SEEN["steps"] += 1
        dead = [token for token in self.model.access if token.known_dead]
        probed = [token for token in self.model.access if not token.known_dead] + dead[self.steps % 5 :: 5]
        for token in probed:
            expected = self.model.authenticate(token)
            response = self.service.request("GET", "/me", token.token)
            assert response.status_code == (200 if expected else 401), (token.session[:8], response.text)
            if not expected:
                token.known_dead = True

    @invariant()
    def each_users_active_sessions_are_the_models(self) -> None:
        if not self.user_ids:
            return
        admin = self._admin()
        for user, user_id in self.user_ids.items():
            response = self.service.request("GET", f"/api/v1/admin/users/{user_id}/sessions", admin)
            assert response.status_code == 200, response.text
            listed = [s["id"] for s in response.json()["data"]["sessions"]]
            assert listed == [s.id for s in self.model.active_of(user)]

    @invariant()
    def stored_refresh_tokens_are_exactly_the_models(self) -> None:
        if not self.user_ids:
            return

        async def stored() -> list[Any]:
            async with self.service.ctx.db.read() as conn:
                return list((await conn.execute(select(refresh_tokens))).all())

        rows = {row.token_hash: row for row in self.service.run(stored)}
        modelled = {hash_token(token.token): token for token in self.model.refresh}
        admin_rows = {h for h, row in rows.items() if row.user_id not in self.user_ids.values()}
        assert set(rows) - admin_rows == set(modelled)
        for token_hash, token in modelled.items():
            row = rows[token_hash]
            assert row.session_id == token.session
            assert (row.rotated_at is not None) == (token.rotated_at is not None), token.token[:8]
            assert (row.revoked_at is not None) == token.revoked, token.token[:8]
            assert row.expires_at == token.expires_at
        for session in self.model.sessions.values():  # never two live successors
            live = [t for t in self.model.refresh if t.session == session.id and t.rotated_at is None and not t.revoked]
            assert len(live) <= 1

    def _admin(self) -> str:
        if self.admin_token is None or self.model.now - self.admin_since >= timedelta(minutes=10):
            response = self.service.request("POST", "/login", json={"email": "admin@example.com", "password": PASSWORD})
            assert response.status_code == 200, response.text
            self.admin_token = response.json()["data"]["tokens"]["access"]["token"]
            self.admin_since = self.model.now
        return self.admin_token

    # ---- at the end of every run

    def present_every_refresh_token(self) -> None:
        """Each refresh token ever issued, once, in an order where every answer is predictable: first those
        that change nothing (refused, or a grace retry), then the live ones (they rotate), last the replays
        that revoke their session. The order is worked out again after each answer."""
        order = {"invalid": 0, "grace": 1, "rotate": 2, "reuse": 3}
        pending = list(self.model.refresh)
        while pending:
            pending.sort(key=lambda token: order[self.model.verdict(token, token.session)])
            token = pending.pop(0)
            self._present(token, token.session)


@pytest.fixture
def portal() -> Iterator[Any]:
    with anyio.from_thread.start_blocking_portal() as running:
        yield running


def test_the_service_answers_like_the_model_of_sessions_and_tokens(
    portal: Any,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: list[str],  # noqa: F811 - the fixture imported above
    unmeasured: None,  # noqa: F811 - the fixture imported above
) -> None:
    session_ids = SessionIds()
    monkeypatch.setattr(sessions_service, "new_session_id", session_ids)
    model_settings = load_settings(
        database_url=database_url,
        data_dir=tmp_path / "var",
        access_token_expires_in=ACCESS,
        refresh_token_reuse_interval=GRACE,
        session_idle_timeout=IDLE,
        session_expires_in=ABSOLUTE,
        refresh_token_expires_in=REFRESH,
        max_sessions_per_user=CAP,
        rate_limit_enabled=False,
    )
    SEEN.clear()
    SECRETS.clear()
    run_state_machine_as_test(
        lambda: SessionsAndTokens(portal, model_settings, session_ids),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not os.environ.get("MODEL_RANDOM"),
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    # Issue 6.6: the logs of every run (at DEBUG, the service's most verbose level) hold none of its secrets.
    logged = "\n".join(log_lines)
    assert len(log_lines) >= SEEN["requests"]  # one line per request at least: the capture worked
    leaked = [secret[:12] for secret in SECRETS if secret in logged]
    assert not leaked, leaked
    print("MODEL_SEEN", dict(SEEN))
    # The runs did reach every situation the model describes (a model that is never exercised proves nothing).
    for situation in EXERCISED:
        assert SEEN[situation], (situation, dict(SEEN))
