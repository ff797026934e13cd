"""Two-step verification (API.md "Stronger sign-in"): TOTP enrolment, the two-stage login, recovery codes, each
session's strength, step-up and re-authentication. Codes are computed here from the secret and the frozen clock."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from sqlalchemy import select

from sessionward.clock import FrozenClock, iso
from sessionward.context import Context
from sessionward.mfa.tables import mfa_challenges, recovery_codes, totp_factors
from sessionward.sessions.tables import sessions
from tests.conftest import API, CHROME_WINDOWS, PASSWORD, Login, Users, refresh

STEP = timedelta(seconds=30)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_enabled": False}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


class Enrolled:
    """A user with TOTP on: the secret (as the authenticator app has it) and the recovery codes."""

    def __init__(self, login: Login, secret: str, codes: list[str], access: str) -> None:
        self.login = login
        self.secret = secret
        self.codes = codes
        self.access = access  # the enrolling session's token after confirming (aal2)

    def code(self, clock: FrozenClock, *, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(clock.now() + steps * STEP)


async def enrol(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> Enrolled:
    login = await users.signed_in()
    started = await client.post(f"{API}/mfa/totp", headers=login.auth)
    assert started.status_code == 200, started.text
    secret = started.json()["data"]["secret"]
    code = pyotp.TOTP(secret).at(clock.now())
    confirmed = await client.post(f"{API}/mfa/totp/confirm", json={"code": code}, headers=login.auth)
    assert confirmed.status_code == 200, confirmed.text
    data = confirmed.json()["data"]
    clock.advance(STEP)  # the next code is a new one
    return Enrolled(login, secret, data["recovery_codes"], data["access"]["token"])


async def first_stage(client: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    response = await client.post(f"{API}/login", json={"email": email, "password": PASSWORD}, headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def second_stage(client: httpx.AsyncClient, challenge: str, **factor: str) -> httpx.Response:
    return await client.post(f"{API}/login/mfa", json={"challenge": challenge, **factor})


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- enrolment


async def test_enrolment_gives_a_qr_code_and_an_otpauth_uri_and_turns_on_with_a_first_code(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    started = (await client.post(f"{API}/mfa/totp", headers=login.auth)).json()["data"]
    before = (await client.get(f"{API}/mfa", headers=login.auth)).json()["data"]
    code = pyotp.TOTP(started["secret"]).at(clock.now())
    confirmed = await client.post(f"{API}/mfa/totp/confirm", json={"code": code}, headers=login.auth)
    after = (await client.get(f"{API}/mfa", headers=login.auth)).json()["data"]

    parsed = pyotp.parse_uri(started["otpauth_uri"])
    assert parsed.secret == started["secret"]
    assert parsed.name == login.email
    assert parsed.issuer == "sessionward"
    assert started["qr_svg"].startswith("<svg")
    assert "http" not in started["qr_svg"].replace("http://www.w3", "")
    assert before == {"factors": [], "totp": before["totp"], "recovery_codes_left": 0}
    assert before["totp"]["confirmed"] is False
    assert confirmed.status_code == 200
    codes = confirmed.json()["data"]["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert after["factors"] == ["totp", "recovery_code"]
    assert after["recovery_codes_left"] == 10
    assert after["totp"]["confirmed"] is True


async def test_confirming_makes_the_enrolling_session_two_factor(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    listed = (await client.get(f"{API}/sessions", headers=bearer(user.access))).json()["data"]["current_session"]

    assert claims(user.access)["aal"] == "aal2"
    assert claims(user.access)["amr"] == ["pwd", "otp", "mfa"]
    assert listed["aal"] == "aal2"
    assert listed["amr"] == ["pwd", "otp", "mfa"]


async def test_a_wrong_first_code_leaves_it_off(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    secret = (await client.post(f"{API}/mfa/totp", headers=login.auth)).json()["data"]["secret"]
    wrong = pyotp.TOTP(secret).at(clock.now() + 10 * STEP)
    confirmed = await client.post(f"{API}/mfa/totp/confirm", json={"code": wrong}, headers=login.auth)
    state = (await client.get(f"{API}/mfa", headers=login.auth)).json()["data"]

    assert confirmed.status_code == 403
    assert confirmed.json()["message"] == "Invalid code"
    assert state["factors"] == []
    assert state["totp"]["confirmed"] is False
    assert (await first_stage(client, login.email)).get("mfa_required") is None


async def test_enrolling_twice_or_confirming_nothing_is_a_conflict(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    other = await users.signed_in()

    again = await client.post(f"{API}/mfa/totp", headers=bearer(user.access))
    nothing = await client.post(f"{API}/mfa/totp/confirm", json={"code": "123456"}, headers=other.auth)
    no_codes = await client.post(f"{API}/mfa/recovery-codes", headers=other.auth)

    assert again.status_code == 409
    assert nothing.status_code == 409
    assert no_codes.status_code == 409


async def test_the_secret_is_stored_sealed_never_in_plain_text(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock, ctx: Context
) -> None:
    user = await enrol(client, users, clock)
    async with ctx.db.read() as conn:
        sealed = (await conn.execute(select(totp_factors.c.secret_sealed))).scalar_one()
        hashes = (await conn.execute(select(recovery_codes.c.code_hash))).scalars().all()

    assert user.secret.encode() not in sealed
    assert base64.b32decode(user.secret) not in sealed
    assert not any(code.replace("-", "") in h for code in user.codes for h in hashes)
    assert len(hashes) == 10


# ---------------------------------------------------------------- the two-stage login


async def test_a_login_with_a_second_factor_answers_a_challenge_and_no_session(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock, ctx: Context
) -> None:
    user = await enrol(client, users, clock)
    async with ctx.db.read() as conn:
        before = len((await conn.execute(select(sessions.c.id))).all())
    data = await first_stage(client, user.login.email)
    async with ctx.db.read() as conn:
        after = len((await conn.execute(select(sessions.c.id))).all())

    assert data["mfa_required"] is True
    assert data["factors"] == ["totp", "recovery_code"]
    assert data["expires_in"] == 300
    assert len(data["challenge"]) >= 43
    assert "tokens" not in data
    assert "user" not in data
    assert after == before


async def test_the_second_stage_with_a_totp_code_signs_in_with_two_factors_kept_across_refreshes(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    challenge = (await first_stage(client, user.login.email))["challenge"]
    done = await second_stage(client, challenge, totp=user.code(clock))
    body = done.json()["data"]
    signed_in_at = int(clock.now().timestamp())
    clock.advance(timedelta(minutes=20))
    refreshed = (await refresh(client, body["tokens"]["refresh"]["token"], body["session"]["id"])).json()["data"]
    token = refreshed["access"]["token"]
    listed = (await client.get(f"{API}/sessions", headers=bearer(token))).json()["data"]["current_session"]

    assert done.status_code == 200
    assert body["user"]["email"] == user.login.email
    first = claims(body["tokens"]["access"]["token"])
    assert (first["aal"], first["amr"], first["auth_time"]) == ("aal2", ["pwd", "otp", "mfa"], signed_in_at)
    again = claims(token)
    assert (again["aal"], again["amr"], again["auth_time"]) == ("aal2", ["pwd", "otp", "mfa"], signed_in_at)
    assert listed["aal"] == "aal2"
    assert listed["auth_time"] == iso(datetime.fromtimestamp(signed_in_at, UTC))


async def test_a_password_only_login_is_one_factor(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=1))
    refreshed = (await refresh(client, login.refresh, login.session_id)).json()["data"]

    assert claims(login.access)["aal"] == "aal1"
    assert claims(login.access)["amr"] == ["pwd"]
    assert claims(refreshed["access"]["token"])["auth_time"] == claims(login.access)["auth_time"]


async def test_a_totp_code_is_accepted_once(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    user = await enrol(client, users, clock)
    code = user.code(clock)
    first = await second_stage(client, (await first_stage(client, user.login.email))["challenge"], totp=code)
    replay = await second_stage(client, (await first_stage(client, user.login.email))["challenge"], totp=code)

    assert first.status_code == 200
    assert replay.status_code == 403
    assert replay.json()["message"] == "Invalid code"


async def test_codes_one_step_either_side_are_accepted_and_further_ones_are_not(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    clock.advance(STEP)  # the step before now is not the one enrolment used
    results = {}
    for steps in (-3, -2, 2, 3, -1):
        challenge = (await first_stage(client, user.login.email))["challenge"]
        results[steps] = (await second_stage(client, challenge, totp=user.code(clock, steps=steps))).status_code

    assert results == {-3: 403, -2: 403, 2: 403, 3: 403, -1: 200}


async def test_an_earlier_step_than_the_last_accepted_is_refused(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    ahead = await second_stage(
        client, (await first_stage(client, user.login.email))["challenge"], totp=user.code(clock, steps=1)
    )
    behind = await second_stage(
        client, (await first_stage(client, user.login.email))["challenge"], totp=user.code(clock)
    )

    assert ahead.status_code == 200
    assert behind.status_code == 403


async def test_five_wrong_codes_burn_the_challenge(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock, ctx: Context
) -> None:
    user = await enrol(client, users, clock)
    challenge = (await first_stage(client, user.login.email))["challenge"]
    wrong = [(await second_stage(client, challenge, totp="000000")).status_code for _ in range(5)]
    after = await second_stage(client, challenge, totp=user.code(clock))
    async with ctx.db.read() as conn:
        left = (await conn.execute(select(mfa_challenges.c.token_hash))).all()
    failed = [e for e in await events(client, user.access) if e["type"] == "mfa_failed"]

    assert wrong == [403] * 5
    assert after.status_code == 400
    assert after.json()["errors"][0]["field"] == "challenge"
    assert left == []
    assert len(failed) == 5
    assert failed[0]["details"] == {"factor": "totp", "stage": "login"}


async def test_four_wrong_codes_then_the_right_one_signs_in(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    challenge = (await first_stage(client, user.login.email))["challenge"]
    for _ in range(4):
        await second_stage(client, challenge, totp="000000")

    assert (await second_stage(client, challenge, totp=user.code(clock))).status_code == 200


async def test_a_challenge_is_single_use_and_lives_five_minutes(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    used = (await first_stage(client, user.login.email))["challenge"]
    assert (await second_stage(client, used, totp=user.code(clock))).status_code == 200
    clock.advance(STEP)
    twice = await second_stage(client, used, totp=user.code(clock))
    late = (await first_stage(client, user.login.email))["challenge"]
    clock.advance(timedelta(minutes=5))
    expired = await second_stage(client, late, totp=user.code(clock))

    assert twice.status_code == 400
    assert expired.status_code == 400
    assert (
        twice.json()["message"] == expired.json()["message"] == "This sign-in has expired or is invalid; sign in again"
    )


async def test_a_challenge_is_bound_to_its_user_and_browser(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    other = await enrol(client, users, clock)
    mine = (await first_stage(client, user.login.email))["challenge"]
    with_other_code = await second_stage(client, mine, totp=other.code(clock))
    elsewhere = await client.post(
        f"{API}/login/mfa",
        json={"challenge": mine, "totp": user.code(clock)},
        headers={"user-agent": CHROME_WINDOWS},
    )
    here = await second_stage(client, mine, totp=user.code(clock))

    assert with_other_code.status_code == 403
    assert elsewhere.status_code == 400
    assert here.status_code == 200
    assert here.json()["data"]["user"]["email"] == user.login.email


@pytest.mark.parametrize(
    "body",
    [
        {"challenge": "x" * 43},
        {"challenge": "x" * 43, "totp": "123456", "recovery_code": "abcd"},
        {"challenge": "x" * 43, "totp": 123456},
        {"challenge": "bad challenge!", "totp": "123456"},
        {"challenge": "x" * 43, "totp": "1" * 65},
        {"totp": "123456"},
    ],
)
async def test_malformed_second_stages_are_a_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(f"{API}/login/mfa", json=body)

    assert response.status_code == 400
    assert response.json()["status"] == "fail"


async def test_an_unknown_challenge_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/login/mfa", json={"challenge": "x" * 43, "totp": "123456"})

    assert response.status_code == 400


# ---------------------------------------------------------------- recovery codes


async def test_a_recovery_code_signs_in_once(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    user = await enrol(client, users, clock)
    code = user.codes[3].upper().replace("-", " ")  # as typed: case, spaces and dashes do not matter
    first = await second_stage(client, (await first_stage(client, user.login.email))["challenge"], recovery_code=code)
    again = await second_stage(client, (await first_stage(client, user.login.email))["challenge"], recovery_code=code)
    token = first.json()["data"]["tokens"]["access"]["token"]
    state = (await client.get(f"{API}/mfa", headers=bearer(token))).json()["data"]
    used = [e for e in await events(client, token) if e["type"] == "recovery_code_used"]

    assert first.status_code == 200
    assert claims(token)["aal"] == "aal2"
    assert again.status_code == 403
    assert state["recovery_codes_left"] == 9
    assert len(used) == 1
    assert used[0]["details"] == {"left": 9}


async def test_new_recovery_codes_void_the_old_ones(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    response = await client.post(f"{API}/mfa/recovery-codes", headers=bearer(user.access))
    fresh = response.json()["data"]["recovery_codes"]
    old = await second_stage(
        client, (await first_stage(client, user.login.email))["challenge"], recovery_code=user.codes[0]
    )
    new = await second_stage(client, (await first_stage(client, user.login.email))["challenge"], recovery_code=fresh[0])

    assert response.status_code == 200
    assert len(fresh) == 10
    assert not set(fresh) & set(user.codes)
    assert old.status_code == 403
    assert new.status_code == 200


# ---------------------------------------------------------------- removal


async def test_removing_totp_returns_to_password_logins(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    removed = await client.delete(f"{API}/mfa/totp", headers=bearer(user.access))
    again = await client.delete(f"{API}/mfa/totp", headers=bearer(user.access))
    data = await first_stage(client, user.login.email)
    kinds = [e["type"] for e in await events(client, user.access)]

    assert removed.status_code == 200
    assert again.status_code == 404
    assert "tokens" in data
    assert "mfa_required" not in data
    assert "mfa_removed" in kinds
    assert "mfa_enrolled" in kinds


# ---------------------------------------------------------------- step-up


async def test_a_sensitive_action_needs_a_recent_sign_in(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=11))
    refused = await client.delete(f"{API}/sessions", headers=login.auth)
    wrong = await client.post(f"{API}/reauthenticate", json={"password": "not the password"}, headers=login.auth)
    again = await client.post(f"{API}/reauthenticate", json={"password": PASSWORD}, headers=login.auth)
    token = again.json()["data"]["access"]["token"]
    allowed = await client.delete(f"{API}/sessions", headers=bearer(token))
    old_token = await client.delete(f"{API}/sessions", headers=login.auth)

    assert refused.status_code == 403
    assert refused.json()["code"] == "step_up_required"
    assert refused.json()["aal"] == "aal1"
    assert wrong.status_code == 403
    assert again.status_code == 200
    assert claims(token)["auth_time"] == int(clock.now().timestamp())
    assert allowed.status_code == 200
    assert old_token.status_code == 403  # the token that said "long ago" still says so


async def test_with_a_second_factor_a_one_factor_session_must_step_up_with_it(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    email = await users.register()
    enrolling = await users.login(email)
    one_factor = await users.login(email)  # signed in before two-step verification was on: stays aal1
    secret = (await client.post(f"{API}/mfa/totp", headers=enrolling.auth)).json()["data"]["secret"]
    code = pyotp.TOTP(secret).at(clock.now())
    await client.post(f"{API}/mfa/totp/confirm", json={"code": code}, headers=enrolling.auth)
    clock.advance(STEP)

    refused = await client.delete(f"{API}/sessions", headers=one_factor.auth)
    with_password = await client.post(f"{API}/reauthenticate", json={"password": PASSWORD}, headers=one_factor.auth)
    still = await client.delete(f"{API}/sessions", headers=bearer(with_password.json()["data"]["access"]["token"]))
    code = pyotp.TOTP(secret).at(clock.now())
    with_code = await client.post(f"{API}/reauthenticate", json={"totp": code}, headers=one_factor.auth)
    stepped = with_code.json()["data"]["access"]["token"]
    done = await client.delete(f"{API}/sessions", headers=bearer(stepped))

    assert refused.status_code == 403
    assert refused.json()["aal"] == "aal2"
    assert with_password.status_code == 200
    assert still.status_code == 403
    assert with_code.status_code == 200
    assert claims(stepped)["aal"] == "aal2"
    assert claims(stepped)["amr"] == ["pwd", "otp", "mfa"]
    assert done.status_code == 200


async def test_a_password_in_the_request_is_a_recent_sign_in(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(hours=2))
    token = (await refresh(client, login.refresh, login.session_id)).json()["data"]["access"]["token"]
    body = {"current_password": PASSWORD, "new_password": "another long passphrase"}
    changed = await client.post(f"{API}/password", json=body, headers=bearer(token))
    deleted = await client.request("DELETE", f"{API}/me", json={"password": PASSWORD}, headers=bearer(token))

    assert changed.status_code == 200
    assert deleted.status_code == 403
    assert "code" not in deleted.json()


async def test_enrolling_needs_a_recent_sign_in(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=11))
    refused = await client.post(f"{API}/mfa/totp", headers=login.auth)

    assert refused.status_code == 403
    assert refused.json()["code"] == "step_up_required"


async def test_reauthenticating_with_a_replayed_code_fails_and_is_recorded(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock
) -> None:
    user = await enrol(client, users, clock)
    code = user.code(clock)
    first = await client.post(f"{API}/reauthenticate", json={"totp": code}, headers=bearer(user.access))
    replay = await client.post(f"{API}/reauthenticate", json={"totp": code}, headers=bearer(user.access))
    kinds = [(e["type"], e["details"]) for e in await events(client, user.access)]

    assert first.status_code == 200
    assert replay.status_code == 403
    assert ("step_up", {"method": "totp"}) in kinds
    assert ("mfa_failed", {"factor": "totp", "stage": "reauthenticate"}) in kinds


@pytest.mark.parametrize("body", [{}, {"password": PASSWORD, "totp": "123456"}, {"totp": ""}, {"password": 5}])
async def test_reauthenticate_takes_exactly_one_proof(
    client: httpx.AsyncClient, users: Users, body: dict[str, Any]
) -> None:
    login = await users.signed_in()
    response = await client.post(f"{API}/reauthenticate", json=body, headers=login.auth)

    assert response.status_code == 400


async def test_introspection_reports_the_session_level(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock, ctx: Context
) -> None:
    from sessionward.apps import keys
    from sessionward.apps.keys import Scope

    user = await enrol(client, users, clock)
    key, _ = await keys.create(ctx, name="api", scopes=[Scope.TOKENS_INTROSPECT])
    answer = await client.post(f"{API}/introspect", data={"token": user.access}, headers=bearer(key))

    assert answer.json()["aal"] == "aal2"


async def events(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/events", headers=bearer(token))
    found: list[dict[str, Any]] = response.json()["data"]["events"]
    return found


async def test_the_second_stage_in_cookie_mode_sets_the_cookies_and_checks_the_origin(
    client: httpx.AsyncClient, users: Users, clock: FrozenClock, ctx: Context
) -> None:
    from tests.test_cookies import browser_client

    user = await enrol(client, users, clock)
    async with browser_client(ctx) as browser:
        first = await browser.post(f"{API}/login", json={"email": user.login.email, "password": PASSWORD})
        challenge = first.json()["data"]["challenge"]
        body = {"challenge": challenge, "totp": user.code(clock)}
        elsewhere = await browser.post(f"{API}/login/mfa", json=body, headers={"origin": "https://evil.example"})
        done = await browser.post(f"{API}/login/mfa", json=body)

    assert elsewhere.status_code == 403
    assert elsewhere.json()["message"] == "Cross-origin request refused"
    assert done.status_code == 200
    assert "token" not in done.json()["data"]["tokens"]["refresh"]  # it is in the HttpOnly cookie
    assert any("sessionward-refresh" in c for c in done.headers.get_list("set-cookie"))
