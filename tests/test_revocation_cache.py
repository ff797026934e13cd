"""The in-process session cache that access-token verification reads, as a unit."""

from __future__ import annotations

import types
from datetime import UTC, datetime

import pytest

from sessionward.tokens import revocation
from sessionward.tokens.revocation import RevocationCache, SessionState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Monotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def monotonic(self) -> float:
        return self.value


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> _Monotonic:
    fake = _Monotonic()
    monkeypatch.setattr(revocation, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def state() -> SessionState:
    return SessionState(user_id=1, expires_at=NOW, last_activity=NOW, revoked=False, user={})


def test_an_entry_lives_for_the_ttl_only(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    cache.put("s", state())
    ticks.value += 0.9
    assert cache.get("s") is not None
    ticks.value += 0.2
    assert cache.get("s") is None
    assert cache.get("s") is None


def test_a_revocation_made_while_a_state_was_loading_still_applies(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    loading = state()  # read from the database before the revocation committed
    cache.revoke_sessions(["s"])
    cache.put("s", loading)
    entry = cache.get("s")
    assert entry is not None
    assert entry.revoked


def test_a_blacklisting_made_while_a_state_was_loading_still_applies(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    loading = state()
    cache.blacklist("s", "jti-1")
    cache.blacklist("s", "jti-2")
    cache.put("s", loading)
    entry = cache.get("s")
    assert entry is not None
    assert entry.blacklisted == {"jti-1", "jti-2"}
    assert not entry.revoked


def test_revoking_a_session_after_blacklisting_keeps_it_revoked(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    cache.revoke_sessions(["s"])
    cache.blacklist("s", "jti")
    cache.put("s", state())
    entry = cache.get("s")
    assert entry is not None
    assert entry.revoked


def test_cached_states_are_updated_in_place(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    cache.put("s", state())
    cache.blacklist("s", "jti")
    cache.touch("s", NOW.replace(year=2027))
    cache.touch("s", NOW)  # never moves activity back
    cache.touch("unknown", NOW)
    cache.revoke_sessions(["s", "unknown"])
    entry = cache.get("s")
    assert entry is not None
    assert entry.revoked
    assert entry.blacklisted == {"jti"}
    assert entry.last_activity.year == 2027


def test_the_recent_log_forgets_after_a_minute(ticks: _Monotonic) -> None:
    cache = RevocationCache(ttl_seconds=1.0)
    cache.revoke_sessions(["old"])
    ticks.value += 61
    cache.revoke_sessions(["new"])  # prunes what is older than a minute
    cache.put("old", state())
    cache.put("new", state())
    old, new = cache.get("old"), cache.get("new")
    assert old is not None
    assert not old.revoked
    assert new is not None
    assert new.revoked


def test_a_full_cache_starts_over(ticks: _Monotonic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocation, "_MAX_ENTRIES", 2)
    cache = RevocationCache(ttl_seconds=1.0)
    for name in ("a", "b", "c"):
        cache.put(name, state())
    assert cache.get("a") is None
    assert cache.get("c") is not None
