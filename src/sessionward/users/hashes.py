"""Password hashes made by other systems, kept until the user's next login (then replaced by argon2id).

Each format is recognised by its prefix and its documented structure; the crypto is the libraries' own
(argon2-cffi, bcrypt, hashlib), never written here. Costs are bounded at import, so that a hash with absurd
parameters cannot tie up the hashing pool at login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import bcrypt


class HashFormat(StrEnum):
    ARGON2 = "argon2"
    BCRYPT = "bcrypt"
    DJANGO_PBKDF2_SHA256 = "django_pbkdf2_sha256"
    WERKZEUG_PBKDF2_SHA256 = "werkzeug_pbkdf2_sha256"
    WERKZEUG_SCRYPT = "werkzeug_scrypt"


class UnsupportedHash(ValueError):
    """A hash that is not importable. The message says why and never quotes the hash."""


# The largest costs accepted: each is several seconds of one core (or 256 MiB) per login attempt.
MAX_ARGON2_MEMORY_KIB = 256 * 1024
MAX_ARGON2_TIME_COST = 20
MAX_BCRYPT_COST = 16
MAX_PBKDF2_ITERATIONS = 10_000_000
MAX_SCRYPT_MEMORY_BYTES = 256 * 1024 * 1024
MAX_PARALLELISM = 16
BCRYPT_MAX_PASSWORD_BYTES = 72

_B64 = "[A-Za-z0-9+/]"
_SALT = r"([\x21-\x23\x25-\x7e]{1,128})"  # printable ASCII but `$`: what Django and Werkzeug write
_ARGON2 = re.compile(
    rf"\$argon2(?:id|i)\$v=19\$m=([0-9]{{1,10}}),t=([0-9]{{1,10}}),p=([0-9]{{1,3}})\${_B64}{{11,}}\${_B64}{{16,}}"
)
# bcrypt: $2b$<cost>$<22 characters of salt><31 of hash>, in bcrypt's base64 ("./A-Za-z0-9"). The salt's last
# character carries 2 bits of the 128: one of the 4 characters whose other 4 bits are zero (the library refuses others).
_BCRYPT = re.compile(r"\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}")
# Django: pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte PBKDF2-HMAC-SHA256>
_DJANGO = re.compile(rf"pbkdf2_sha256\$([0-9]{{1,9}})\${_SALT}\$({_B64}{{43}}=)")
# Werkzeug's generate_password_hash: <method>$<salt>$<hex digest>
_WERKZEUG_PBKDF2 = re.compile(rf"pbkdf2:sha256:([0-9]{{1,9}})\${_SALT}\$([0-9a-f]{{64}})")
_WERKZEUG_SCRYPT = re.compile(rf"scrypt:([0-9]{{1,8}}):([0-9]{{1,3}}):([0-9]{{1,3}})\${_SALT}\$([0-9a-f]{{128}})")


@dataclass(frozen=True)
class _Scheme:
    format: HashFormat
    label: str
    prefixes: tuple[str, ...]
    pattern: re.Pattern[str]
    too_costly: Callable[[re.Match[str]], str | None]


def _argon2_cost(match: re.Match[str]) -> str | None:
    memory_kib, time_cost, parallelism = int(match[1]), int(match[2]), int(match[3])
    if not 1 <= parallelism <= MAX_PARALLELISM or time_cost < 1 or memory_kib < 8 * parallelism:
        return "malformed argon2 hash"  # RFC 9106 §3.1: p in 1..2^24-1 (bounded lower here), m >= 8p, t >= 1
    if memory_kib > MAX_ARGON2_MEMORY_KIB or time_cost > MAX_ARGON2_TIME_COST:
        return "argon2 hash too costly to verify"
    return None


def _bcrypt_cost(match: re.Match[str]) -> str | None:
    cost = int(match[1])
    if cost < 4:
        return "malformed bcrypt hash"
    return f"bcrypt cost above {MAX_BCRYPT_COST} is too costly to verify" if cost > MAX_BCRYPT_COST else None


def _pbkdf2_cost(match: re.Match[str]) -> str | None:
    iterations = int(match[1])
    if iterations < 1:
        return "malformed pbkdf2 hash"
    return "pbkdf2 iterations too many to verify" if iterations > MAX_PBKDF2_ITERATIONS else None


def _scrypt_cost(match: re.Match[str]) -> str | None:
    n, r, p = int(match[1]), int(match[2]), int(match[3])
    if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= MAX_PARALLELISM:
        return "malformed scrypt hash"
    return "scrypt hash too costly to verify" if _scrypt_memory(n, r, p) > MAX_SCRYPT_MEMORY_BYTES else None


def _scrypt_memory(n: int, r: int, p: int) -> int:
    # RFC 7914: V is n blocks of 128 * r bytes, B is p of them (OpenSSL checks the sum against maxmem).
    return 128 * r * (n + p + 2)


_SCHEMES = (
    _Scheme(HashFormat.ARGON2, "argon2", ("$argon2id$", "$argon2i$"), _ARGON2, _argon2_cost),
    _Scheme(HashFormat.BCRYPT, "bcrypt", ("$2a$", "$2b$", "$2y$"), _BCRYPT, _bcrypt_cost),
    _Scheme(HashFormat.DJANGO_PBKDF2_SHA256, "Django pbkdf2_sha256", ("pbkdf2_sha256$",), _DJANGO, _pbkdf2_cost),
    _Scheme(
        HashFormat.WERKZEUG_PBKDF2_SHA256, "Werkzeug pbkdf2:sha256", ("pbkdf2:sha256:",), _WERKZEUG_PBKDF2, _pbkdf2_cost
    ),
    _Scheme(HashFormat.WERKZEUG_SCRYPT, "Werkzeug scrypt", ("scrypt:",), _WERKZEUG_SCRYPT, _scrypt_cost),
)


def _match(password_hash: str) -> tuple[_Scheme, re.Match[str]]:
    for scheme in _SCHEMES:
        if password_hash.startswith(scheme.prefixes):
            match = scheme.pattern.fullmatch(password_hash)
            if match is None:
                raise UnsupportedHash(f"malformed {scheme.label} hash")
            return scheme, match
    raise UnsupportedHash("unknown password hash format")


def identify(password_hash: str) -> HashFormat:
    """The format of an importable hash, or ``UnsupportedHash`` saying why it is not one."""
    scheme, match = _match(password_hash)
    if reason := scheme.too_costly(match):
        raise UnsupportedHash(reason)
    return scheme.format


def format_of(password_hash: str) -> HashFormat:
    """The format of a hash that ``identify`` accepted, by its prefix alone."""
    return next(scheme.format for scheme in _SCHEMES if password_hash.startswith(scheme.prefixes))


def verify_foreign(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches a bcrypt, Django or Werkzeug hash (argon2 is the ``Passwords``' own)."""
    try:
        scheme, match = _match(password_hash)
        secret = password.encode()
    except (UnsupportedHash, UnicodeEncodeError):
        return False
    if scheme.too_costly(match):
        return False
    verify = _VERIFIERS.get(scheme.format)
    return verify is not None and verify(match, secret)


def _verify_bcrypt(match: re.Match[str], secret: bytes) -> bool:
    # bcrypt reads at most 72 bytes, and the systems that made these hashes cut the password there too
    # (the bcrypt package refuses a longer one instead). $2y$ is PHP's name for the same algorithm as $2b$.
    try:
        return bcrypt.checkpw(secret[:BCRYPT_MAX_PASSWORD_BYTES], match.string.encode())
    except ValueError:  # the library refusing what the pattern let through: a failed login, never a 500
        return False


def _verify_django(match: re.Match[str], secret: bytes) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", secret, match[2].encode(), int(match[1]))
    return hmac.compare_digest(base64.b64encode(digest), match[3].encode())


def _verify_werkzeug_pbkdf2(match: re.Match[str], secret: bytes) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", secret, match[2].encode(), int(match[1]))
    return hmac.compare_digest(digest.hex(), match[3])


def _verify_werkzeug_scrypt(match: re.Match[str], secret: bytes) -> bool:
    n, r, p = int(match[1]), int(match[2]), int(match[3])
    maxmem = _scrypt_memory(n, r, p) + 1024 * 1024
    digest = hashlib.scrypt(secret, salt=match[4].encode(), n=n, r=r, p=p, maxmem=maxmem, dklen=64)
    return hmac.compare_digest(digest.hex(), match[5])


_VERIFIERS: dict[HashFormat, Callable[[re.Match[str], bytes], bool]] = {
    HashFormat.BCRYPT: _verify_bcrypt,
    HashFormat.DJANGO_PBKDF2_SHA256: _verify_django,
    HashFormat.WERKZEUG_PBKDF2_SHA256: _verify_werkzeug_pbkdf2,
    HashFormat.WERKZEUG_SCRYPT: _verify_werkzeug_scrypt,
}
