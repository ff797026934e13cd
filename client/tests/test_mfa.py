"""Two-step verification through the client: ``login`` answers ``MfaRequired``, ``login_mfa`` completes it, a
sensitive action raises ``StepUpRequired`` until ``reauthenticate``. Codes are made here from the secret."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from conftest import PASSWORD, Server, register
from sessionward_client import Forbidden, LoginResult, MfaRequired, SessionwardClient, StepUpRequired

API = "/api/v1/auth"


def turn_on_totp(server: Server, token: str) -> pyotp.TOTP:
    headers = {"authorization": f"Bearer {token}"}
    secret = httpx.post(f"{server.base_url}{API}/mfa/totp", headers=headers, timeout=10).json()["data"]["secret"]
    totp = pyotp.TOTP(secret)
    confirmed = httpx.post(f"{server.base_url}{API}/mfa/totp/confirm", json={"code": totp.now()}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    return totp


def next_code(totp: pyotp.TOTP, steps: int) -> str:
    """The code ``steps`` time steps ahead (the service takes one step either side, each once)."""
    return totp.at(time.time() + 30 * steps)


def test_login_of_a_user_with_totp_needs_the_second_stage(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as enrolling, SessionwardClient(server.base_url) as phone:
        first = enrolling.login(email, PASSWORD)
        assert isinstance(first, LoginResult)
        totp = turn_on_totp(server, first.tokens.access_token)

        pending = phone.login(email, PASSWORD)
        assert isinstance(pending, MfaRequired)
        assert pending.factors == ["totp", "recovery_code"]
        assert not phone.signed_in
        with pytest.raises(Forbidden):
            phone.login_mfa(pending.challenge, totp="000000")
        done = phone.login_mfa(pending.challenge, totp=next_code(totp, 1))

        assert phone.signed_in
        assert phone.session_id == done.session_id
        current = phone.sessions().current
        assert current is not None
        assert current.aal == "aal2"
        assert current.auth_time is not None


def test_a_one_factor_session_steps_up_with_the_code(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as enrolling, SessionwardClient(server.base_url) as laptop:
        first = enrolling.login(email, PASSWORD)
        laptop.login(email, PASSWORD)  # before two-step verification: one factor
        assert isinstance(first, LoginResult)
        totp = turn_on_totp(server, first.tokens.access_token)

        with pytest.raises(StepUpRequired) as caught:
            laptop.revoke_other_sessions()
        laptop.reauthenticate(totp=next_code(totp, 1))
        ended = laptop.revoke_other_sessions()

        assert caught.value.aal == "aal2"
        assert caught.value.status == 403
        assert ended == 1
        assert laptop.sessions().current is not None
