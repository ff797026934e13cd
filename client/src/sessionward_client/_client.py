"""``SessionwardClient`` and ``AsyncSessionwardClient``: the service's account and session endpoints."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

import httpx

from sessionward_client._auth import DEFAULT_USER_AGENT, SessionwardAuth
from sessionward_client._errors import CallKind, Unauthorized, error_from_response
from sessionward_client._models import Event, LoginResult, MfaRequired, SessionList, TokenSet, User
from sessionward_client._stores import TokenStore

API = "/api/v1/auth"


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    protected: bool = True
    kind: CallKind = "other"


def _data(response: httpx.Response, kind: CallKind) -> dict[str, Any]:
    if not response.is_success:
        raise error_from_response(response, kind=kind)
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def _register(email: str, password: str, name: str | None) -> _Call:
    body: dict[str, Any] = {"email": email, "password": password}
    if name is not None:
        body["name"] = name
    return _Call("POST", f"{API}/register", json=body, protected=False)


def _login(email: str, password: str) -> _Call:
    return _Call("POST", f"{API}/login", json={"email": email, "password": password}, protected=False, kind="login")


def _login_mfa(challenge: str, totp: str | None, recovery_code: str | None) -> _Call:
    body = {"challenge": challenge, **_proof(totp=totp, recovery_code=recovery_code)}
    return _Call("POST", f"{API}/login/mfa", json=body, protected=False)


def _proof(**given: str | None) -> dict[str, str]:
    """The one proof given (``/login/mfa``, ``/reauthenticate``): the service refuses none or several."""
    return {name: value for name, value in given.items() if value is not None}


def _reauthenticate(password: str | None, totp: str | None, recovery_code: str | None) -> _Call:
    return _Call(
        "POST", f"{API}/reauthenticate", json=_proof(password=password, totp=totp, recovery_code=recovery_code)
    )


def _logout(everywhere: bool) -> _Call:
    return _Call("POST", f"{API}/logout", json={"logout_all": True} if everywhere else {})


def _events(limit: int | None, before: int | None) -> _Call:
    params = {name: value for name, value in (("limit", limit), ("before", before)) if value is not None}
    return _Call("GET", f"{API}/events", params=params)


_ME = _Call("GET", f"{API}/me")
_SESSIONS = _Call("GET", f"{API}/sessions")
_REVOKE_OTHERS = _Call("DELETE", f"{API}/sessions")


def _revoke(session_id: str) -> _Call:
    return _Call("DELETE", f"{API}/sessions/{session_id}")


def _password(current: str, new: str) -> _Call:
    return _Call("POST", f"{API}/password", json={"current_password": current, "new_password": new})


class _Base:
    def __init__(self, base_url: str | httpx.URL, store: TokenStore | None, user_agent: str, refresh_margin: float):
        self.base_url = httpx.URL(str(base_url))
        self.user_agent = user_agent
        #: Attach it to your own httpx clients: they then share this client's tokens and single-flight refresh.
        self.auth = SessionwardAuth(self.base_url, store=store, user_agent=user_agent, refresh_margin=refresh_margin)

    @property
    def store(self) -> TokenStore:
        return self.auth.store

    @property
    def tokens(self) -> TokenSet | None:
        """The tokens of the signed-in session, or ``None``."""
        return self.auth.tokens

    @property
    def session_id(self) -> str | None:
        tokens = self.auth.tokens
        return None if tokens is None else tokens.session_id

    @property
    def signed_in(self) -> bool:
        return self.auth.tokens is not None

    def _logged_in(self, data: dict[str, Any], obtained_at: float) -> LoginResult:
        result = LoginResult.from_json(data, obtained_at=obtained_at)
        self.auth.set_tokens(result.tokens)
        return result

    def _first_stage(self, data: dict[str, Any], obtained_at: float) -> LoginResult | MfaRequired:
        if data.get("mfa_required") is True:
            return MfaRequired.from_json(data)
        return self._logged_in(data, obtained_at)

    def _reauthenticated(self, data: dict[str, Any], obtained_at: float) -> None:
        """The fresh access token of ``/reauthenticate`` in place of the stored one (the refresh token stays)."""
        tokens = self.auth.tokens
        if tokens is None:  # signed out meanwhile
            return
        access = data["access"]
        refresh_at = tokens.refresh_expires_at
        self.auth.set_tokens(
            replace(
                tokens,
                access_token=str(access["token"]),
                access_expires_in=float(access["expires_in"]),
                refresh_expires_in=None if refresh_at is None else refresh_at - obtained_at,
                obtained_at=obtained_at,
            )
        )


class SessionwardClient(_Base):
    """A blocking client for the sessionward service at ``base_url``.

    Protected calls refresh the access token as needed (see :class:`SessionwardAuth`); ``self.auth`` can
    be given to your own ``httpx.Client`` to call your APIs with the same session. Errors are
    :class:`SessionwardError` subclasses; network failures stay ``httpx.TransportError``.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        store: TokenStore | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 10.0,
        refresh_margin: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, store, user_agent, refresh_margin)
        self._http = httpx.Client(
            base_url=self.base_url, headers={"user-agent": user_agent}, timeout=timeout, transport=transport
        )
        self.auth._use_clients(sync=self._http)

    def _send(self, call: _Call) -> dict[str, Any]:
        response = self._http.request(
            call.method,
            call.path,
            json=call.json,
            params=call.params,
            auth=self.auth if call.protected else None,
        )
        return _data(response, call.kind)

    def register(self, email: str, password: str, name: str | None = None) -> User:
        """Create an account (does not sign in)."""
        return User.from_json(self._send(_register(email, password, name))["user"])

    def login(self, email: str, password: str) -> LoginResult | MfaRequired:
        """Sign in: a new session whose tokens go to the token store; for a user with two-step verification,
        :class:`MfaRequired` (finish with ``login_mfa``)."""
        obtained_at = time.time()
        return self._first_stage(self._send(_login(email, password)), obtained_at)

    def login_mfa(self, challenge: str, *, totp: str | None = None, recovery_code: str | None = None) -> LoginResult:
        """The second stage of a login: the challenge of :class:`MfaRequired` and a code (``Forbidden``: wrong)."""
        obtained_at = time.time()
        return self._logged_in(self._send(_login_mfa(challenge, totp, recovery_code)), obtained_at)

    def reauthenticate(
        self, *, password: str | None = None, totp: str | None = None, recovery_code: str | None = None
    ) -> None:
        """Confirm it's you (after :class:`StepUpRequired`): the session's sign-in becomes recent, and of two
        factors with ``totp`` or ``recovery_code``; the new access token goes to the token store."""
        obtained_at = time.time()
        self._reauthenticated(self._send(_reauthenticate(password, totp, recovery_code)), obtained_at)

    def logout(self, all: bool = False) -> None:
        """End this session (``all=True``: every session of the user) and clear the token store.

        Already signed out (no tokens, or the service no longer knows the session) is not an error.
        """
        if self.auth.tokens is None:
            return
        with contextlib.suppress(Unauthorized):  # the session is over already
            self._send(_logout(all))
        self.auth.clear()

    def me(self) -> User:
        return User.from_json(self._send(_ME)["user"])

    def sessions(self) -> SessionList:
        """The caller's active sessions: this one and the others, most recently active first."""
        return SessionList.from_json(self._send(_SESSIONS))

    def revoke_session(self, session_id: str) -> None:
        """End one session of the caller (``NotFound`` if it is not an active session of the caller)."""
        self._send(_revoke(session_id))

    def revoke_other_sessions(self) -> int:
        """End every session of the caller but this one; returns how many were ended."""
        return int(self._send(_REVOKE_OTHERS).get("revoked", 0))

    def change_password(self, current_password: str, new_password: str) -> None:
        """Change the password; the service ends the other sessions. ``Forbidden``: wrong ``current_password``."""
        self._send(_password(current_password, new_password))

    def events(self, limit: int | None = None, before: int | None = None) -> list[Event]:
        """The caller's security events, newest first (``before``: an event id, for the next page)."""
        return [Event.from_json(item) for item in self._send(_events(limit, before)).get("events", [])]

    def close(self) -> None:
        self._http.close()
        self.auth.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSessionwardClient(_Base):
    """The asyncio twin of :class:`SessionwardClient` (same methods, awaited)."""

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        store: TokenStore | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 10.0,
        refresh_margin: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, store, user_agent, refresh_margin)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"user-agent": user_agent}, timeout=timeout, transport=transport
        )
        self.auth._use_clients(async_=self._http)

    async def _send(self, call: _Call) -> dict[str, Any]:
        response = await self._http.request(
            call.method,
            call.path,
            json=call.json,
            params=call.params,
            auth=self.auth if call.protected else None,
        )
        return _data(response, call.kind)

    async def register(self, email: str, password: str, name: str | None = None) -> User:
        """Create an account (does not sign in)."""
        return User.from_json((await self._send(_register(email, password, name)))["user"])

    async def login(self, email: str, password: str) -> LoginResult | MfaRequired:
        """Sign in: a new session whose tokens go to the token store; for a user with two-step verification,
        :class:`MfaRequired` (finish with ``login_mfa``)."""
        obtained_at = time.time()
        return self._first_stage(await self._send(_login(email, password)), obtained_at)

    async def login_mfa(
        self, challenge: str, *, totp: str | None = None, recovery_code: str | None = None
    ) -> LoginResult:
        """The second stage of a login: the challenge of :class:`MfaRequired` and a code (``Forbidden``: wrong)."""
        obtained_at = time.time()
        return self._logged_in(await self._send(_login_mfa(challenge, totp, recovery_code)), obtained_at)

    async def reauthenticate(
        self, *, password: str | None = None, totp: str | None = None, recovery_code: str | None = None
    ) -> None:
        """Confirm it's you (after :class:`StepUpRequired`): the session's sign-in becomes recent, and of two
        factors with ``totp`` or ``recovery_code``; the new access token goes to the token store."""
        obtained_at = time.time()
        self._reauthenticated(await self._send(_reauthenticate(password, totp, recovery_code)), obtained_at)

    async def logout(self, all: bool = False) -> None:
        """End this session (``all=True``: every session of the user) and clear the token store.

        Already signed out (no tokens, or the service no longer knows the session) is not an error.
        """
        if self.auth.tokens is None:
            return
        with contextlib.suppress(Unauthorized):  # the session is over already
            await self._send(_logout(all))
        self.auth.clear()

    async def me(self) -> User:
        return User.from_json((await self._send(_ME))["user"])

    async def sessions(self) -> SessionList:
        """The caller's active sessions: this one and the others, most recently active first."""
        return SessionList.from_json(await self._send(_SESSIONS))

    async def revoke_session(self, session_id: str) -> None:
        """End one session of the caller (``NotFound`` if it is not an active session of the caller)."""
        await self._send(_revoke(session_id))

    async def revoke_other_sessions(self) -> int:
        """End every session of the caller but this one; returns how many were ended."""
        return int((await self._send(_REVOKE_OTHERS)).get("revoked", 0))

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Change the password; the service ends the other sessions. ``Forbidden``: wrong ``current_password``."""
        await self._send(_password(current_password, new_password))

    async def events(self, limit: int | None = None, before: int | None = None) -> list[Event]:
        """The caller's security events, newest first (``before``: an event id, for the next page)."""
        return [Event.from_json(item) for item in (await self._send(_events(limit, before))).get("events", [])]

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.auth.aclose()
        self.auth.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
