"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step either side) by pyotp, its enrolment QR code by segno, and
recovery codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
from datetime import datetime

import pyotp
import segno

RECOVERY_CODES = 10
_RECOVERY_BYTES = 10  # 80 bits: 16 base32 characters, shown as four groups of four
_DIGITS = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits (RFC 4226 §4 recommends at least that)


def enrolment(secret: str, *, account: str, issuer: str) -> tuple[str, str]:
    """The ``otpauth://`` URI an authenticator app takes, and its QR code as inline SVG."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)
    svg = io.BytesIO()  # with its namespace, so it is an image as well as inline markup
    segno.make(uri, error="m").save(svg, kind="svg", xmldecl=False, svgns=True, nl=False, scale=4, border=2)
    return uri, svg.getvalue().decode()


def matching_step(secret: str, code: str, *, now: datetime) -> int | None:
    """The time step whose code ``code`` is (this step, the one before or the one after), or ``None``."""
    code = code.replace(" ", "")
    if not _DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        text = base64.b32encode(secrets.token_bytes(_RECOVERY_BYTES)).decode().lower()
        codes.append("-".join(text[i : i + 4] for i in range(0, len(text), 4)))
    return codes


def recovery_hash(code: str) -> str:
    """What is stored of a recovery code; the code as typed: case, spaces and dashes do not matter."""
    normal = code.lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).hexdigest()
