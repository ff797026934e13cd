"""Signing keys: the HS256 secret, or EdDSA / ES256 key pairs with a ``kid`` and a JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from sessionward.clock import iso
from sessionward.config import Settings

log = logging.getLogger(__name__)

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
_RELOAD_EVERY_SECONDS = 5.0
_REFRESH_EVERY_SECONDS = 60.0


class KeysError(Exception):
    """Keys cannot be loaded or rotated; the message says why in one line."""


@dataclass(frozen=True)
class KeySet:
    algorithm: str
    kid: str
    signing_key: Any
    verification_keys: dict[str, Any]
    public_jwks: list[dict[str, str]] = field(default_factory=list)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": self.public_jwks}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(key: PrivateKey) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        jwk: dict[str, str] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return jwk


def thumbprint(key: PrivateKey) -> str:
    """RFC 7638 JWK thumbprint of the public key: the ``kid``."""
    jwk = _public_jwk(key)
    members = {name: jwk[name] for name in sorted(jwk) if name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _generate(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _load_pem(path: Path, algorithm: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeysError(f"cannot read private key {path}: {exc.__class__.__name__}") from None
    wanted = ed25519.Ed25519PrivateKey if algorithm == "EdDSA" else ec.EllipticCurvePrivateKey
    if not isinstance(key, wanted) or (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1"):
        raise KeysError(f"private key {path} does not fit JWT_ALGORITHM={algorithm}")
    return key


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _hs256(settings: Settings) -> KeySet:
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode()
    else:
        path = settings.data_dir / "jwt_secret"
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(48).encode())
            log.warning("JWT_SECRET is not set: generated one in the data folder (set JWT_SECRET in production)")
        secret = path.read_bytes().strip()
    kid = _b64(hashlib.sha256(b"sessionward kid:" + secret).digest())[:16]
    return KeySet("HS256", kid, secret, {kid: secret})


class _Keyring:
    """``DATA_DIR/keys/<alg>/``: one PEM per key and ``keyring.json`` naming the active and retired ones."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.folder = settings.data_dir / "keys" / self.algorithm
        self.index = self.folder / "keyring.json"

    def read(self) -> dict[str, Any]:
        if not self.index.exists():
            return {"active": None, "retired": {}}
        return dict(json.loads(self.index.read_text()))

    def write(self, ring: dict[str, Any]) -> None:
        _write_private(self.index, json.dumps(ring, indent=2).encode())

    def add(self) -> str:
        key = _generate(self.algorithm)
        kid = thumbprint(key)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.folder / f"{kid}.pem", pem)
        return kid

    def load(self, kid: str) -> PrivateKey:
        return _load_pem(self.folder / f"{kid}.pem", self.algorithm)


def _asymmetric(settings: Settings, *, now: datetime) -> KeySet:
    if settings.jwt_private_key_file is not None:
        key = _load_pem(settings.jwt_private_key_file, settings.jwt_algorithm)
        kid = thumbprint(key)
        return _keyset(settings.jwt_algorithm, kid, key, {kid: key})
    ring_store = _Keyring(settings)
    ring = ring_store.read()
    if ring["active"] is None:
        ring["active"] = ring_store.add()
        ring_store.write(ring)
        log.info("generated a %s signing key in the data folder", settings.jwt_algorithm)
    active = ring_store.load(ring["active"])
    keys: dict[str, PrivateKey] = {ring["active"]: active}
    for kid, retired_at in ring["retired"].items():
        if datetime.fromisoformat(retired_at) + _publish_after_retirement(settings) > now:
            keys[kid] = ring_store.load(kid)
    return _keyset(settings.jwt_algorithm, ring["active"], active, keys)


def _publish_after_retirement(settings: Settings) -> timedelta:
    # A retired key signed tokens until the moment of rotation: publish it until they have expired.
    return settings.access_token_expires_in + timedelta(minutes=1)


def _keyset(algorithm: str, kid: str, signing: PrivateKey, keys: dict[str, PrivateKey]) -> KeySet:
    public = {k: key.public_key() for k, key in keys.items()}
    jwks = [{**_public_jwk(key), "kid": k, "alg": algorithm, "use": "sig"} for k, key in keys.items()]
    return KeySet(algorithm, kid, signing, public, jwks)


def load_keys(settings: Settings, *, now: datetime) -> KeySet:
    if settings.jwt_algorithm == "HS256":
        return _hs256(settings)
    return _asymmetric(settings, now=now)


def rotate_keys(settings: Settings, *, now: datetime) -> tuple[str, str | None]:
    """Make a new active key; the old one stays published until its tokens have expired."""
    if settings.jwt_algorithm == "HS256":
        raise KeysError("keys rotate needs JWT_ALGORITHM=EdDSA or ES256 (HS256 uses JWT_SECRET)")
    if settings.jwt_private_key_file is not None:
        raise KeysError("keys come from JWT_PRIVATE_KEY_FILE: replace that file to rotate")
    ring_store = _Keyring(settings)
    ring = ring_store.read()
    old = ring["active"]
    if old is not None:
        ring["retired"][old] = iso(now)
    ring["retired"] = {
        kid: at
        for kid, at in ring["retired"].items()
        if datetime.fromisoformat(at) + _publish_after_retirement(settings) > now
    }
    ring["active"] = ring_store.add()
    ring_store.write(ring)
    return ring["active"], old


class Keys:
    """The key set in use. Re-read from disk every minute (a ``keys rotate`` reaches running processes,
    and retired keys leave the JWKS on time), and at once (at most every 5 s) when a token names a
    ``kid`` this process does not know yet."""

    def __init__(self, settings: Settings, *, now: datetime) -> None:
        self._settings = settings
        self.algorithm: str = settings.jwt_algorithm
        self._load(now)

    def _load(self, now: datetime) -> KeySet:
        self._current = load_keys(self._settings, now=now)
        self._loaded_at = time.monotonic()
        return self._current

    def current(self, *, now: datetime) -> KeySet:
        if time.monotonic() - self._loaded_at > _REFRESH_EVERY_SECONDS:
            return self._load(now)
        return self._current

    def verification_key(self, kid: str, *, now: datetime) -> Any | None:
        key = self.current(now=now).verification_keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > _RELOAD_EVERY_SECONDS:
            key = self._load(now).verification_keys.get(kid)
        return key
