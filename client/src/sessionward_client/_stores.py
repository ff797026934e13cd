"""Where the tokens of a session live between calls (and between runs of a program)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from sessionward_client._models import TokenSet

log = logging.getLogger("sessionward_client")


@runtime_checkable
class TokenStore(Protocol):
    """Keeps one :class:`TokenSet`. Implement these three methods for your own store (e.g. the OS keyring).

    ``save`` must be durable when it returns: the client saves a rotated refresh token before it uses it,
    and the previous one stops working soon after. ``TokenSet.to_dict``/``from_dict`` give a JSON form.
    """

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet) -> None: ...

    def clear(self) -> None: ...


class MemoryTokenStore:
    """The default: tokens live as long as the object (the program signs in again after a restart)."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self._tokens = tokens

    def load(self) -> TokenSet | None:
        return self._tokens

    def save(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None


class FileTokenStore:
    """A JSON file, readable by its owner only (mode 0600), replaced atomically on every save.

    A program that restarts with the same file continues the same session. Several processes may share
    the file: a refresh re-reads it first, and the service's grace interval covers two processes that
    rotate the same token at once.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    def load(self) -> TokenSet | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return TokenSet.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError):
            log.warning("token file %s is not readable; treating it as signed out", self.path)
            return None

    def save(self, tokens: TokenSet) -> None:
        data = json.dumps(tokens.to_dict(), indent=2).encode()
        folder = self.path.parent
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # mkstemp creates the file with mode 0600 and O_EXCL: no window where others can read it.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_folder(folder)

    def clear(self) -> None:
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            _fsync_folder(self.path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
