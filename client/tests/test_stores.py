"""Token stores: memory, an atomic 0600 file that survives restarts, and your own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import PASSWORD, Server, register
from sessionward_client import FileTokenStore, MemoryTokenStore, SessionwardClient, TokenSet, TokenStore


def _tokens(n: int = 0) -> TokenSet:
    return TokenSet(
        session_id="a" * 64,
        access_token=f"access-{n}",
        refresh_token=f"refresh-{n}",
        access_expires_in=900,
        refresh_expires_in=2592000,
        obtained_at=1_700_000_000.5,
    )


def test_the_file_store_round_trips_tokens_in_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "app" / "tokens.json")
    assert store.load() is None
    store.save(_tokens(1))
    store.save(_tokens(2))
    assert store.load() == _tokens(2)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert os.listdir(store.path.parent) == ["tokens.json"]  # no temporary file left behind
    store.clear()
    assert store.load() is None
    store.clear()


def test_the_file_store_replaces_the_file_instead_of_rewriting_it(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(_tokens(1))
    first = os.stat(store.path).st_ino
    store.save(_tokens(2))
    assert os.stat(store.path).st_ino != first  # a reader sees the old file or the new one, never half of one


def test_an_unreadable_token_file_counts_as_signed_out(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    assert FileTokenStore(path).load() is None


def test_token_repr_hides_the_tokens() -> None:
    text = repr(_tokens(7))
    assert "access-7" not in text
    assert "refresh-7" not in text
    assert "a" * 64 in text


def test_the_builtin_stores_satisfy_the_store_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryTokenStore(), TokenStore)
    assert isinstance(FileTokenStore(tmp_path / "t.json"), TokenStore)


class KeyringLikeStore:
    """A store of one's own, as one would write for the OS keyring: strings in, strings out."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], str] = {}

    def load(self) -> TokenSet | None:
        raw = self.secrets.get(("my-app", "sessionward"))
        return None if raw is None else TokenSet.from_dict(json.loads(raw))

    def save(self, tokens: TokenSet) -> None:
        self.secrets[("my-app", "sessionward")] = json.dumps(tokens.to_dict())

    def clear(self) -> None:
        self.secrets.pop(("my-app", "sessionward"), None)


def test_a_store_of_ones_own_keeps_the_session(server: Server, email: str) -> None:
    register(server, email)
    store = KeyringLikeStore()
    with SessionwardClient(server.base_url, store=store) as client:
        client.login(email, PASSWORD)
        client.auth.refresh()
    with SessionwardClient(server.base_url, store=store) as later:
        assert later.me().email == email
        later.logout()
    assert store.secrets == {}


_PROCESS = textwrap.dedent(
    """
    import json, sys
    from sessionward_client import FileTokenStore, SessionwardClient

    base_url, path, step, email, password = sys.argv[1:]
    with SessionwardClient(base_url, store=FileTokenStore(path)) as client:
        if step == "login":
            client.login(email, password)
        else:
            client.auth.refresh()  # two rotations: the first refresh token is now past any grace
            client.auth.refresh()
        current = client.sessions().current
        logins = [e for e in client.events() if e.type == "login_succeeded"]
        print(json.dumps({"session": current.id if current else None, "logins": len(logins)}))
    """
)


def _run(server: Server, path: Path, step: str, email: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS, server.base_url, str(path), step, email, PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_restarted_process_with_a_file_store_continues_the_same_session(
    server: Server, email: str, tmp_path: Path
) -> None:
    register(server, email)
    path = tmp_path / "tokens.json"
    first = _run(server, path, "login", email)
    second = _run(server, path, "continue", email)
    third = _run(server, path, "continue", email)  # only works if the second process saved its rotations
    assert first["session"] is not None
    assert first["session"] == second["session"] == third["session"]
    assert third["logins"] == 1


def test_the_default_store_is_in_memory(server: Server) -> None:
    with SessionwardClient(server.base_url) as client:
        assert isinstance(client.store, MemoryTokenStore)
        assert client.tokens is None
