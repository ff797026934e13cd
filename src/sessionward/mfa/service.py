"""Second factors (TOTP, recovery codes), the second stage of a login, step-up and re-authentication."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward import metrics
from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record
from sessionward.errors import AppError, ErrorCode, validation
from sessionward.mfa import codes, store
from sessionward.passkeys import service as passkeys
from sessionward.passkeys.service import PasskeyUse, Purpose
from sessionward.sessions.devices import Device, same_device_family
from sessionward.tokens import service as tokens
from sessionward.tokens.jwt import Aal, Strength, authenticated
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.service import Principal
from sessionward.users import service as users


class Factor(StrEnum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


# RFC 8176 method values.
PWD = "pwd"
OTP = "otp"

CHALLENGE_LIFETIME = timedelta(minutes=5)
MAX_FAILURES = 5  # wrong codes that burn a challenge


def _purpose(user_id: int) -> bytes:
    """What a sealed TOTP secret is, and whose: it opens only in its own row."""
    return f"totp secret of user {user_id}".encode()


def invalid_code() -> AppError:
    # 403, not 401: the caller of /login/mfa holds no token, and a 401 makes clients refresh.
    return AppError(ErrorCode.FORBIDDEN, "Invalid code")


def _invalid_challenge() -> AppError:
    return validation("challenge", "This sign-in has expired or is invalid; sign in again")


# ---------------------------------------------------------------- what a user has


async def factors_of(conn: AsyncConnection, user_id: int) -> list[Factor]:
    """The user's confirmed second factors, as ``data.factors`` of a login names them."""
    row = await store.totp(conn, user_id)
    factors = []
    if row is not None and row.confirmed_at is not None:
        factors.append(Factor.TOTP)
        if await store.recovery_codes_left(conn, user_id):
            factors.append(Factor.RECOVERY_CODE)
    if await passkeys.count(conn, user_id):
        factors.append(Factor.PASSKEY)
    return factors


async def status(ctx: Context, principal: Principal) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        row = await store.totp(conn, principal.user_id)
        factors = await factors_of(conn, principal.user_id)
        left = await store.recovery_codes_left(conn, principal.user_id)
    totp = None
    if row is not None:
        confirmed = iso(row.confirmed_at) if row.confirmed_at else None
        totp = {"confirmed": row.confirmed_at is not None, "created_at": iso(row.created_at), "confirmed_at": confirmed}
    return {"factors": [factor.value for factor in factors], "totp": totp, "recovery_codes_left": left}


# ---------------------------------------------------------------- step-up


async def require_step_up(ctx: Context, principal: Principal, *, password_given: bool = False) -> None:
    """A sensitive action: the session's authentication must be recent (``STEP_UP_MAX_AGE``) and, when the user
    has a second factor, of two factors; else ``403`` ``step_up_required``. ``password_given``: the action itself
    took the user's password (checked next), which is an authentication just now."""
    strength = principal.strength
    max_age = ctx.settings.step_up_max_age
    recent = password_given or strength.auth_time >= (ctx.clock.now() - max_age).timestamp()
    if recent and strength.aal is Aal.TWO:
        return  # as strong as it gets: no need to look at the user's factors
    async with ctx.db.read() as conn:
        needed = Aal.TWO if await factors_of(conn, principal.user_id) else Aal.ONE
    if recent and needed is Aal.ONE:
        return
    raise AppError(
        ErrorCode.FORBIDDEN,
        "Confirm it's you to continue",
        extra={"code": "step_up_required", "aal": needed.value, "max_age": int(max_age.total_seconds())},
    )


# ---------------------------------------------------------------- enrolment


async def start_totp(ctx: Context, principal: Principal) -> dict[str, Any]:
    """A new secret, unconfirmed until a code made from it comes back (``confirm_totp``)."""
    await require_step_up(ctx, principal)
    now = ctx.clock.now()
    secret = codes.new_secret()
    async with ctx.db.transaction() as tx:
        row = await store.totp(tx.conn, principal.user_id)
        if row is not None and row.confirmed_at is not None:
            raise AppError(ErrorCode.CONFLICT, "Two-step verification is already on; remove it first")
        user = await users.find(tx.conn, user_id=principal.user_id)
        sealed = ctx.vault.seal(secret.encode(), purpose=_purpose(principal.user_id))
        await store.put_totp(tx.conn, user_id=principal.user_id, sealed=sealed, now=now)
    uri, svg = codes.enrolment(secret, account=user.email if user else "", issuer=ctx.settings.jwt_issuer)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": svg}


async def confirm_totp(ctx: Context, principal: Principal, *, code: str, device: Device) -> dict[str, Any]:
    """The first code turns the factor on, gives the recovery codes (shown once), and makes this session one of
    two factors: the user has just used both."""
    now = ctx.clock.now()
    fresh = codes.new_recovery_codes()
    async with ctx.db.transaction() as tx:
        row = await store.totp(tx.conn, principal.user_id)
        if row is None or row.confirmed_at is not None:
            raise AppError(ErrorCode.CONFLICT, "There is no authenticator waiting to be confirmed")
        step = codes.matching_step(_secret(ctx, row), code, now=now)
        if step is None or not await store.accept_step(tx.conn, user_id=row.user_id, step=step, confirm_at=now):
            raise invalid_code()
        hashes = [codes.recovery_hash(text) for text in fresh]
        await store.replace_recovery_codes(tx.conn, user_id=row.user_id, hashes=hashes, now=now)
        details = {"factor": Factor.TOTP.value}
        await _record(tx.conn, principal, EventType.MFA_ENROLLED, device=device, now=now, details=details)
        access = await tokens.strengthen(ctx, tx, principal, methods=(OTP,), now=now)
    return {"recovery_codes": fresh, "access": access.body()}


async def remove_totp(ctx: Context, principal: Principal, *, device: Device) -> None:
    await require_step_up(ctx, principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        if not await store.delete_totp(tx.conn, user_id=principal.user_id):
            raise AppError(ErrorCode.NOT_FOUND, "Two-step verification is not on")
        await store.delete_recovery_codes(tx.conn, user_id=principal.user_id)
        details = {"factor": Factor.TOTP.value}
        await _record(tx.conn, principal, EventType.MFA_REMOVED, device=device, now=now, details=details)


async def new_recovery_codes(ctx: Context, principal: Principal, *, device: Device) -> list[str]:
    """A new set; the old one stops working."""
    await require_step_up(ctx, principal)
    now = ctx.clock.now()
    fresh = codes.new_recovery_codes()
    async with ctx.db.transaction() as tx:
        if Factor.TOTP not in await factors_of(tx.conn, principal.user_id):
            raise AppError(ErrorCode.CONFLICT, "Turn on two-step verification first")
        hashes = [codes.recovery_hash(text) for text in fresh]
        await store.replace_recovery_codes(tx.conn, user_id=principal.user_id, hashes=hashes, now=now)
        await _record(tx.conn, principal, EventType.RECOVERY_CODES_REGENERATED, device=device, now=now)
    return fresh


# ---------------------------------------------------------------- the second stage of a login


async def challenge_for(ctx: Context, user: Record, *, device: Device) -> dict[str, Any] | None:
    """For a user with a second factor, the first stage's answer: a challenge for ``/login/mfa`` (no session
    yet). ``None``: the password was enough."""
    async with ctx.db.read() as conn:
        factors = await factors_of(conn, user.id)
    if not factors:
        return None
    token = secrets.token_urlsafe(32)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        await store.insert_challenge(
            tx.conn,
            token_hash=hash_token(token),
            user_id=user.id,
            device={"browser": device.browser, "os": device.os},
            now=now,
            expires_at=now + CHALLENGE_LIFETIME,
        )
        options = await passkeys.mfa_options(ctx, tx.conn, user.id) if Factor.PASSKEY in factors else None
    expires_in = int(CHALLENGE_LIFETIME.total_seconds())
    answer = {"mfa_required": True, "challenge": token, "factors": [f.value for f in factors], "expires_in": expires_in}
    if options is not None:
        answer["passkey_options"] = options  # for navigator.credentials.get(); its answer goes in "passkey"
    return answer


class _WrongCode(Exception):
    """Rolls back the taking of a challenge: the code was wrong, and the challenge stays (until burnt)."""


async def pass_challenge(
    ctx: Context,
    *,
    challenge: str,
    totp: str | None,
    recovery_code: str | None,
    passkey: dict[str, Any] | None,
    device: Device,
) -> tuple[Record, Strength, Factor]:
    """The second stage: the user, the strength of the login and the factor it used, the challenge consumed (once,
    and only from the browser and OS family that passed the first stage). A wrong code counts against the
    challenge: the fifth burns it."""
    limits = ctx.limits
    await limits.hit(limits.login_per_ip, device.ip or "-")
    now = ctx.clock.now()
    token_hash = hash_token(challenge)
    async with ctx.db.read() as conn:
        row = await store.challenge(conn, token_hash=token_hash, now=now)
    if row is None or not same_device_family(row.device, device):
        raise _invalid_challenge()
    await limits.hit(limits.login, device.ip or "-", f"mfa:{row.user_id}")
    used = await _passkey_of(ctx, passkey, Purpose.MFA, user_id=row.user_id, device=device)
    try:
        async with ctx.db.transaction() as tx:
            if await store.take_challenge(tx.conn, token_hash=token_hash, now=now) is None:
                raise _invalid_challenge()
            factor = Factor.PASSKEY if used is not None else None
            if passkey is None:
                factor = await _verify(ctx, tx.conn, row.user_id, totp=totp, recovery_code=recovery_code, device=device)
            if factor is None:
                raise _WrongCode
            user = await users.find(tx.conn, user_id=row.user_id)
    except _WrongCode:
        metrics.LOGIN["mfa_failed"].inc()
        async with ctx.db.transaction() as tx:
            await store.count_failure(tx.conn, token_hash=token_hash, burn_at=MAX_FAILURES)
            details = {"factor": _factor_given(totp, passkey), "stage": "login"}
            await record(
                tx.conn, user_id=row.user_id, type=EventType.MFA_FAILED, now=now, device=device, details=details
            )
        raise invalid_code() from None
    if user is None:  # erased meanwhile (its challenge went with it: not reached)
        raise _invalid_challenge()
    second = used.method if used is not None else OTP
    return user, authenticated((PWD, second), at=now), factor


async def _passkey_of(
    ctx: Context, passkey: dict[str, Any] | None, purpose: Purpose, *, user_id: int, device: Device
) -> PasskeyUse | None:
    """The user's passkey that answered, or ``None`` (none given, or one that did not verify: a wrong factor)."""
    if passkey is None:
        return None
    try:
        return await passkeys.verify_assertion(ctx, passkey, purpose=purpose, user_id=user_id, device=device)
    except AppError as error:
        if error.code is not ErrorCode.FORBIDDEN:
            raise  # malformed: a 400
        return None


async def _verify(
    ctx: Context, conn: AsyncConnection, user_id: int, *, totp: str | None, recovery_code: str | None, device: Device
) -> Factor | None:
    """In the caller's transaction: the factor whose code this is, consumed (a TOTP code's step, a recovery code),
    or ``None``."""
    now = ctx.clock.now()
    if totp is not None:
        row = await store.totp(conn, user_id)
        if row is None or row.confirmed_at is None:
            return None
        step = codes.matching_step(_secret(ctx, row), totp, now=now)
        accepted = step is not None and await store.accept_step(conn, user_id=user_id, step=step)
        return Factor.TOTP if accepted else None
    if recovery_code is None or Factor.TOTP not in await factors_of(conn, user_id):
        return None
    code_hash = codes.recovery_hash(recovery_code)
    if not await store.use_recovery_code(conn, user_id=user_id, code_hash=code_hash, now=now):
        return None
    details = {"left": await store.recovery_codes_left(conn, user_id)}
    await record(conn, user_id=user_id, type=EventType.RECOVERY_CODE_USED, now=now, device=device, details=details)
    return Factor.RECOVERY_CODE


def _factor_given(totp: str | None, passkey: dict[str, Any] | None = None) -> str:
    if passkey is not None:
        return Factor.PASSKEY.value
    return Factor.TOTP.value if totp is not None else Factor.RECOVERY_CODE.value


def _secret(ctx: Context, row: Record) -> str:
    return ctx.vault.open(row.secret_sealed, purpose=_purpose(row.user_id)).decode()


# ---------------------------------------------------------------- re-authentication


async def reauthenticate(
    ctx: Context,
    principal: Principal,
    *,
    password: str | None,
    totp: str | None,
    recovery_code: str | None,
    passkey: dict[str, Any] | None,
    device: Device,
) -> dict[str, Any]:
    """Step-up: the session's ``auth_time`` becomes now (and two factors once a second one is used, or a passkey
    that verified its user); a fresh access token says so. Wrong: ``403``, counted as a failed login is. A passkey
    answers the options of ``/passkeys/login/options``."""
    limits = ctx.limits
    await limits.hit(limits.login, device.ip or "-", f"reauth:{principal.user_id}")
    now = ctx.clock.now()
    if password is not None:
        await users.confirm_password(ctx, user_id=principal.user_id, password=password)
    used = await _passkey_of(ctx, passkey, Purpose.LOGIN, user_id=principal.user_id, device=device)
    try:
        async with ctx.db.transaction() as tx:
            method, two = PWD, False
            if used is not None:
                method, two = used.method, used.user_verified
            elif password is None:
                factor = None
                if passkey is None:
                    factor = await _verify(
                        ctx, tx.conn, principal.user_id, totp=totp, recovery_code=recovery_code, device=device
                    )
                if factor is None:
                    raise _WrongCode
                method = OTP
            access = await tokens.strengthen(ctx, tx, principal, methods=(method,), now=now, two_factors=two)
            details = {"method": "password" if password is not None else _factor_given(totp, passkey)}
            await _record(tx.conn, principal, EventType.STEP_UP, device=device, now=now, details=details)
    except _WrongCode:
        async with ctx.db.transaction() as tx:
            details = {"factor": _factor_given(totp, passkey), "stage": "reauthenticate"}
            await _record(tx.conn, principal, EventType.MFA_FAILED, device=device, now=now, details=details)
        raise invalid_code() from None
    return {"access": access.body()}


async def _record(
    conn: AsyncConnection,
    principal: Principal,
    type: EventType,
    *,
    device: Device,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    await record(
        conn,
        user_id=principal.user_id,
        type=type,
        now=now,
        session_id=principal.session_id,
        device=device,
        details=details,
    )
