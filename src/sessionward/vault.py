"""Secrets at rest (TOTP secrets): AES-256-GCM under a key ring, each value naming the key that sealed it.

The ring comes from ``DATA_ENCRYPTION_KEY`` (base64url keys of 32 bytes, comma-separated, the first one seals) or,
without it, from ``DATA_DIR/data_keys`` (one key a line, made on first use). A value is ``kid || nonce || AES-GCM``
with associated data naming what it is and whose (a sealed secret moved to another row does not open there).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sessionward.config import Settings

log = logging.getLogger(__name__)

KEY_BYTES = 32
KID_BYTES = 8
NONCE_BYTES = 12
_MAC_INFO = b"sessionward data mac v1"


class VaultError(Exception):
    """The key ring cannot be read, or a value does not open under it; the message says why in one line."""


def _kid(key: bytes) -> bytes:
    return hashlib.sha256(b"sessionward data key id:" + key).digest()[:KID_BYTES]


def _decode_key(text: str, *, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise VaultError(f"{where}: a key is not base64url") from None
    if len(key) != KEY_BYTES:
        raise VaultError(f"{where}: a key must be {KEY_BYTES} bytes")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()


def _from_folder(path: Path) -> list[str]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_text() + "\n")
        try:
            os.link(tmp, path)  # the first process to make one wins; the others read it
            log.warning("DATA_ENCRYPTION_KEY is not set: generated a data key in the data folder")
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class Vault:
    """The key ring, read on first use (a data folder gets its key only once something is sealed)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ring: tuple[tuple[bytes, AESGCM], dict[bytes, AESGCM]] | None = None
        self._mac_key = b""

    def _keys(self) -> tuple[tuple[bytes, AESGCM], dict[bytes, AESGCM]]:
        if self._ring is None:
            settings = self._settings
            if settings.data_encryption_key is not None:
                secret = settings.data_encryption_key.get_secret_value()
                texts, where = [p.strip() for p in secret.split(",") if p.strip()], "DATA_ENCRYPTION_KEY"
            else:
                path = settings.data_dir / "data_keys"
                texts, where = _from_folder(path), str(path)
            keys = [_decode_key(text, where=where) for text in texts]
            if not keys:
                raise VaultError(f"{where}: no key")
            self._ring = (_kid(keys[0]), AESGCM(keys[0])), {_kid(key): AESGCM(key) for key in keys}
            self._mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(keys[0])
        return self._ring

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 under a key derived from the sealing key: a stable stand-in that only this service can make."""
        self._keys()
        return hmac.new(self._mac_key, data, hashlib.sha256).digest()

    def seal(self, plaintext: bytes, *, purpose: bytes) -> bytes:
        kid, aead = self._keys()[0]
        nonce = os.urandom(NONCE_BYTES)
        return kid + nonce + aead.encrypt(nonce, plaintext, purpose)

    def open(self, sealed: bytes, *, purpose: bytes) -> bytes:
        kid, nonce, body = (
            sealed[:KID_BYTES],
            sealed[KID_BYTES : KID_BYTES + NONCE_BYTES],
            sealed[KID_BYTES + NONCE_BYTES :],
        )
        aead = self._keys()[1].get(kid)
        if aead is None:
            raise VaultError("a stored secret was sealed with a data key that is not in the key ring")
        try:
            return aead.decrypt(nonce, body, purpose)
        except InvalidTag:
            raise VaultError("a stored secret does not open under its data key") from None
