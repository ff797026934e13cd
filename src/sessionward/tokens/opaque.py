"""Opaque refresh tokens, session ids, and the sealed successor of the grace interval."""

from __future__ import annotations

import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SEAL_INFO = b"sessionward successor seal v1"
_NONCE_BYTES = 12


def new_refresh_token() -> str:
    """384 bits from the CSPRNG, URL-safe (64 characters)."""
    return secrets.token_urlsafe(48)


def new_session_id() -> str:
    """32 random bytes as 64 hex characters, as in the guide."""
    return secrets.token_hex(32)


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def hash_token(token: str) -> str:
    """What the database stores instead of a refresh token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _seal_key(parent: str) -> bytes:
    # HKDF with its own label: the stored SHA-256 hash of the parent does not give this key.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(parent.encode())


def seal(parent: str, successor: str) -> bytes:
    """Encrypt ``successor`` so that only a holder of ``parent`` can read it back."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_seal_key(parent)).encrypt(nonce, successor.encode(), None)


def unseal(parent: str, sealed: bytes | None) -> str | None:
    """The successor, or ``None`` if there is none or ``parent`` is not the token it was sealed for."""
    if not sealed:
        return None
    try:
        plain = AESGCM(_seal_key(parent)).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
    except (InvalidTag, ValueError):
        return None
    return plain.decode()
