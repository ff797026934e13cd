"""Service keys: how an app's own backend calls the endpoints that act for its users. Scoped; only the SHA-256 of
a key is stored, and the key is shown once, when it is made."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sessionward.apps import store
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.errors import AppError, ErrorCode
from sessionward.tokens.opaque import hash_token

KEY_PREFIX = "swk_"
_MAX_KEY_LENGTH = 100


class Scope(StrEnum):
    SESSIONS_ISSUE = "sessions:issue"
    SESSIONS_READ = "sessions:read"
    SESSIONS_REVOKE = "sessions:revoke"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TOKENS_INTROSPECT = "tokens:introspect"


@dataclass(frozen=True, slots=True)
class ServiceKey:
    id: int
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts for a user: an app's backend by its key, or an administrator."""

    key: ServiceKey | None = None
    admin_id: int | None = None

    def details(self) -> dict[str, Any]:
        """What the audit event says of it."""
        if self.key is not None:
            return {"key_id": self.key.id, "key": self.key.name}
        return {"by_admin": self.admin_id}


def _listed(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scopes": row.scopes,
        "created_at": iso(row.created_at),
        "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
    }


async def create(ctx: Context, *, name: str, scopes: list[Scope]) -> tuple[str, dict[str, Any]]:
    """A new key (``swk_`` and 256 random bits) and its record; the key itself is never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    wanted = sorted({scope.value for scope in scopes})
    async with ctx.db.transaction() as tx:
        row = await store.insert_key(tx.conn, name=name, key_hash=hash_token(key), scopes=wanted, now=ctx.clock.now())
    return key, _listed(row)


async def listed(ctx: Context) -> list[dict[str, Any]]:
    async with ctx.db.read() as conn:
        return [_listed(row) for row in await store.list_keys(conn)]


async def revoke(ctx: Context, key_id: int) -> bool:
    async with ctx.db.transaction() as tx:
        return await store.revoke_key(tx.conn, key_id, now=ctx.clock.now())


async def authenticate(ctx: Context, presented: str) -> ServiceKey:
    """The live key presented, or ``401`` (unknown and revoked look the same)."""
    row = None
    if len(presented) <= _MAX_KEY_LENGTH:
        async with ctx.db.read() as conn:
            row = await store.live_key(conn, hash_token(presented))
    if row is None:
        raise AppError(ErrorCode.INVALID_TOKEN, "Invalid service key")
    return ServiceKey(row.id, row.name, frozenset(row.scopes))
