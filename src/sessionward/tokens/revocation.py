"""The in-process view of session state that token verification reads instead of the database.

Revocations made in this process update it at once. Entries live ``SESSION_CACHE_TTL`` (1 s by
default), which bounds how long another process's revocation can go unseen here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_MAX_ENTRIES = 100_000
# Longer than any database read can take (pool and statement time-outs are 10 s): a state loaded
# while a revocation committed is corrected by this log when it is put in the cache.
_RECENT_SECONDS = 60.0


@dataclass(slots=True)
class SessionState:
    user_id: int
    expires_at: datetime
    last_activity: datetime
    revoked: bool
    user: dict[str, Any]
    blacklisted: set[str] = field(default_factory=set)
    loaded_at: float = 0.0


class RevocationCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._states: dict[str, SessionState] = {}
        self._recent: dict[str, tuple[float, set[str] | None]] = {}
        self._pruned_at = time.monotonic()
        # Set by the Redis bus: tells the other processes of each revocation made here.
        self.publish: Callable[[dict[str, Any]], None] | None = None
        # Told of every session revocation, made here or (through the bus) elsewhere: the revocation stream.
        self.listeners: list[Callable[[], None]] = []

    def get(self, session_id: str) -> SessionState | None:
        state = self._states.get(session_id)
        if state is not None and time.monotonic() - state.loaded_at > self.ttl_seconds:
            del self._states[session_id]
            return None
        return state

    def stamp(self) -> float:
        """Take it before reading a state: the TTL counts from the read, not from its end."""
        return time.monotonic()

    def put(self, session_id: str, state: SessionState, *, read_at: float | None = None) -> None:
        recent = self._recent.get(session_id)
        if recent is not None:
            jtis = recent[1]
            if jtis is None:
                state.revoked = True
            else:
                state.blacklisted |= jtis
        if len(self._states) >= _MAX_ENTRIES:
            self._states.clear()
        state.loaded_at = time.monotonic() if read_at is None else read_at
        self._states[session_id] = state

    def touch(self, session_id: str, now: datetime) -> None:
        """Activity written elsewhere (a refresh): the cached state must not go on thinking the session idle."""
        state = self._states.get(session_id)
        if state is not None and state.last_activity < now:
            state.last_activity = now

    def forget_user(self, user_id: int) -> None:
        """The user's account changed (its address, its verification): their sessions' states are read anew, here
        at once and elsewhere within the TTL. Rare, so a walk over the entries is cheap enough."""
        self._states = {sid: state for sid, state in self._states.items() if state.user_id != user_id}

    def revoke_sessions(self, session_ids: Iterable[str], *, remote: bool = False) -> None:
        session_ids = list(session_ids)
        if self.publish is not None and not remote and session_ids:
            self.publish({"sessions": session_ids})
        now = self._prune()
        for session_id in session_ids:
            self._recent[session_id] = (now, None)
            state = self._states.get(session_id)
            if state is not None:
                state.revoked = True
        for listener in self.listeners:
            listener()

    def blacklist(self, session_id: str, jti: str, *, remote: bool = False) -> None:
        if self.publish is not None and not remote:
            self.publish({"blacklist": [session_id, jti]})
        now = self._prune()
        _, jtis = self._recent.get(session_id, (now, set()))
        if jtis is not None:
            jtis.add(jti)
            self._recent[session_id] = (now, jtis)
        state = self._states.get(session_id)
        if state is not None:
            state.blacklisted.add(jti)

    def _prune(self) -> float:
        now = time.monotonic()
        if now - self._pruned_at > _RECENT_SECONDS:
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] <= _RECENT_SECONDS}
            self._pruned_at = now
        return now
