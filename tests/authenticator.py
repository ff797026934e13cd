"""A software WebAuthn authenticator for the API tests (the browser tests use Chromium's virtual one): an ES256 key
per credential, "none" attestation, a signature counter the test can set (a cloned authenticator is one whose
counter lags), and the JSON a browser's ``PublicKeyCredential.toJSON()`` gives."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40  # authenticator data flags (WebAuthn §6.1): user present, verified; attested data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    rp_id: str
    user_handle: bytes
    id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    counter: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def auth_data(self, flags: int, *, attested: bool = False) -> bytes:
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.counter)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.id)) + self.id + self.cose_key()
        return data


def client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()


def create(
    options: dict[str, Any], *, origin: str, verified: bool = True, credential: Credential | None = None
) -> tuple[Credential, dict[str, Any]]:
    """``navigator.credentials.create()`` for these options: a new credential (or ``credential`` again, as a second
    authenticator holding the same key would) and the registration JSON."""
    credential = credential or Credential(rp_id=options["rp"]["id"], user_handle=unb64url(options["user"]["id"]))
    flags = UP | AT | (UV if verified else 0)
    attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": credential.auth_data(flags, attested=True)})
    data = client_data("webauthn.create", options["challenge"], origin)
    return credential, {
        "id": b64url(credential.id),
        "rawId": b64url(credential.id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(data),
            "attestationObject": b64url(attestation),
            "transports": ["internal"],
        },
        "clientExtensionResults": {},
        "authenticatorAttachment": "platform",
    }


def get(
    credential: Credential, options: dict[str, Any], *, origin: str, verified: bool = True, step: int = 1
) -> dict[str, Any]:
    """``navigator.credentials.get()``: an assertion of ``credential`` over these options; the counter goes up by
    ``step`` first (0 or less: a clone that lags)."""
    credential.counter += step
    auth_data = credential.auth_data(UP | (UV if verified else 0))
    data = client_data("webauthn.get", options["challenge"], origin)
    signature = credential.key.sign(auth_data + hashlib.sha256(data).digest(), ec.ECDSA(hashes.SHA256()))
    return {
        "id": b64url(credential.id),
        "rawId": b64url(credential.id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
            "userHandle": b64url(credential.user_handle),
        },
        "clientExtensionResults": {},
        "authenticatorAttachment": "platform",
    }
