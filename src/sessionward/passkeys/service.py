"""Passkeys (WebAuthn) by py_webauthn: registration, the list, and assertions for a sign-in, a second factor or a
step-up. Every challenge is stored hashed and used once; a counter that goes backwards is refused and audited."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record
from sessionward.errors import AppError, ErrorCode, not_found
from sessionward.passkeys import store
from sessionward.sessions.devices import Device
from sessionward.tokens.service import Principal
from sessionward.users import service as users


class Purpose(StrEnum):
    REGISTER = "register"
    LOGIN = "login"  # a sign-in with a passkey, or a step-up
    MFA = "mfa"  # the second stage of a password login


CEREMONY_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = int(CEREMONY_LIFETIME.total_seconds() * 1000)
# RFC 8176: a key the authenticator keeps to itself, or one synced between devices (a backed-up passkey).
HARDWARE_KEY, SOFTWARE_KEY = "hwk", "swk"


@dataclass(frozen=True, slots=True)
class PasskeyUse:
    user: Record
    name: str
    user_verified: bool
    method: str  # HARDWARE_KEY or SOFTWARE_KEY


def _unverified() -> AppError:
    return AppError(ErrorCode.FORBIDDEN, "This passkey could not be verified")


def _digest(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def relying_party(ctx: Context) -> tuple[str, list[str]]:
    """The RP id (``WEBAUTHN_RP_ID``, else the host of ``PUBLIC_URL``) and the origins a ceremony may come from."""
    settings = ctx.settings
    rp_id = settings.webauthn_rp_id or urlsplit(settings.public_url).hostname or "localhost"
    return rp_id, [settings.public_url, *sorted(settings.cors_allowed_origins)]


async def _challenge(ctx: Context, conn: AsyncConnection, purpose: Purpose, user_id: int | None) -> bytes:
    challenge = secrets.token_bytes(32)
    now = ctx.clock.now()
    await store.insert_challenge(
        conn,
        challenge_hash=_digest(challenge),
        purpose=purpose.value,
        user_id=user_id,
        now=now,
        expires_at=now + CEREMONY_LIFETIME,
    )
    return challenge


_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}


def _descriptor(row: Record) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in row.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=row.credential_id, transports=transports or None)


def listed(row: Record) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at) if row.last_used_at else None,
        "transports": list(row.transports),
        "backed_up": row.backed_up,
    }


# ---------------------------------------------------------------- parsing what the browser sent

# The request models checked the credential's shape (else 400). What it holds is py_webauthn's to read: on bytes
# that do not decode (truncated CBOR, client data that is not JSON) it raises its own errors or Python's, each
# the client's fault: the passkey is not verified (403), never a 500.
_MALFORMED = (Exception,)


def _registration(credential: dict[str, Any]) -> tuple[RegistrationCredential, bytes]:
    try:
        parsed = parse_registration_credential_json(credential)
        return parsed, parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        raise _unverified() from None


def _assertion(credential: dict[str, Any]) -> tuple[AuthenticationCredential, bytes]:
    try:
        parsed = parse_authentication_credential_json(credential)
        return parsed, parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        raise _unverified() from None


# ---------------------------------------------------------------- registration


async def registration_options(ctx: Context, principal: Principal) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptions`` (resident key and user verification preferred), the user's passkeys
    excluded."""
    rp_id, _ = relying_party(ctx)
    async with ctx.db.transaction() as tx:
        user = await users.find(tx.conn, user_id=principal.user_id)
        if user is None:
            raise not_found("User")
        existing = await store.of_user(tx.conn, principal.user_id)
        challenge = await _challenge(ctx, tx.conn, Purpose.REGISTER, principal.user_id)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=ctx.settings.jwt_issuer,
        user_id=str(user.id).encode(),
        user_name=user.email,
        user_display_name=user.name or user.email,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        exclude_credentials=[_descriptor(row) for row in existing],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
    )
    return options_to_json_dict(options)


async def register(
    ctx: Context, principal: Principal, *, credential: dict[str, Any], name: str | None, device: Device
) -> dict[str, Any]:
    parsed, challenge = _registration(credential)
    rp_id, origins = relying_party(ctx)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:  # the challenge is spent whatever follows
        taken = await store.take_challenge(
            tx.conn, challenge_hash=_digest(challenge), purpose=Purpose.REGISTER, now=now
        )
    if taken is None or taken.user_id != principal.user_id:
        raise _unverified()
    try:
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origins
        )
    except _MALFORMED:
        raise _unverified() from None
    transports = [t.value for t in parsed.response.transports or []]
    try:
        async with ctx.db.transaction() as tx:
            row = await store.insert_passkey(
                tx.conn,
                user_id=principal.user_id,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=transports,
                backed_up=verified.credential_backed_up,
                name=name or f"Passkey added {now:%Y-%m-%d}",
                created_at=now,
            )
            details = {"passkey": row.name}
            await record(
                tx.conn,
                user_id=principal.user_id,
                type=EventType.PASSKEY_ADDED,
                now=now,
                session_id=principal.session_id,
                device=device,
                details=details,
            )
    except sa_exc.IntegrityError as exc:
        raise AppError(ErrorCode.CONFLICT, "This passkey is registered already") from exc
    return listed(row)


async def of_user(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    async with ctx.db.read() as conn:
        return [listed(row) for row in await store.of_user(conn, principal.user_id)]


async def count(conn: AsyncConnection, user_id: int) -> int:
    return await store.count(conn, user_id)


async def rename(ctx: Context, principal: Principal, *, passkey_id: int, name: str) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        row = await store.rename(tx.conn, user_id=principal.user_id, passkey_id=passkey_id, name=name)
        if row is None:
            raise not_found("Passkey")
    return listed(row)


async def remove(ctx: Context, principal: Principal, *, passkey_id: int, device: Device) -> None:
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        if not await store.remove(tx.conn, user_id=principal.user_id, passkey_id=passkey_id):
            raise not_found("Passkey")
        await record(
            tx.conn,
            user_id=principal.user_id,
            type=EventType.PASSKEY_REMOVED,
            now=now,
            session_id=principal.session_id,
            device=device,
            details={"passkey_id": passkey_id},
        )


# ---------------------------------------------------------------- assertions


async def login_options(ctx: Context, *, email: str | None) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptions``. No email: any discoverable passkey of this RP. An email: that account's
    passkeys; for an address without any, one made-up credential id derived from the address, so the answer does
    not tell which addresses have an account."""
    async with ctx.db.transaction() as tx:
        user = await users.find(tx.conn, email=email) if email else None
        rows = await store.of_user(tx.conn, user.id) if user is not None else []
        challenge = await _challenge(ctx, tx.conn, Purpose.LOGIN, user.id if rows and user else None)
    allowed = [_descriptor(row) for row in rows]
    if email and not allowed:
        allowed = [PublicKeyCredentialDescriptor(id=ctx.vault.mac(b"passkey of " + email.encode())[:16])]
    return _request_options(ctx, challenge, allowed)


async def mfa_options(ctx: Context, conn: AsyncConnection, user_id: int) -> dict[str, Any]:
    """The request options of a password login's second stage: the user's passkeys."""
    rows = await store.of_user(conn, user_id)
    challenge = await _challenge(ctx, conn, Purpose.MFA, user_id)
    return _request_options(ctx, challenge, [_descriptor(row) for row in rows])


def _request_options(ctx: Context, challenge: bytes, allowed: list[PublicKeyCredentialDescriptor]) -> dict[str, Any]:
    rp_id, _ = relying_party(ctx)
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json_dict(options)


async def verify_assertion(
    ctx: Context, credential: dict[str, Any], *, purpose: Purpose, user_id: int | None, device: Device
) -> PasskeyUse:
    """A passkey's answer to a challenge of ``purpose`` we made (once), from our origins and RP id, by a passkey
    of ``user_id`` when given; ``403`` otherwise. A valid signature whose counter did not go up is refused and
    recorded as ``passkey_clone_suspected``."""
    parsed, challenge = _assertion(credential)
    rp_id, origins = relying_party(ctx)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:  # the challenge is spent whatever follows
        taken = await store.take_challenge(tx.conn, challenge_hash=_digest(challenge), purpose=purpose, now=now)
        row = await store.by_credential(tx.conn, parsed.raw_id)
    if taken is None or row is None or (user_id is not None and row.user_id != user_id):
        raise _unverified()
    if taken.user_id is not None and taken.user_id != row.user_id:
        raise _unverified()
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=row.public_key,
            credential_current_sign_count=0,  # compared below, so that a clone is told from a bad signature
        )
    except _MALFORMED:
        raise _unverified() from None
    if (verified.new_sign_count or row.sign_count) and verified.new_sign_count <= row.sign_count:
        async with ctx.db.transaction() as tx:
            details = {"passkey": row.name, "counter": verified.new_sign_count, "last_counter": row.sign_count}
            await record(
                tx.conn,
                user_id=row.user_id,
                type=EventType.PASSKEY_CLONE_SUSPECTED,
                now=now,
                device=device,
                details=details,
            )
        raise _unverified()
    async with ctx.db.transaction() as tx:
        await store.used(
            tx.conn,
            passkey_id=row.id,
            sign_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
            now=now,
        )
        user = await users.find(tx.conn, user_id=row.user_id)
    if user is None:  # erased meanwhile
        raise _unverified()
    method = SOFTWARE_KEY if verified.credential_backed_up else HARDWARE_KEY
    return PasskeyUse(user, row.name, verified.user_verified, method)
