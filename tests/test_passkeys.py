"""Passkeys over the API (API.md "Stronger sign-in"), with a software authenticator (``tests.authenticator``):
registration, sign-in without a password, a passkey as the second factor and for step-up, the list, and the
refusals: replays, other challenges, origins and RP ids, a counter that goes backwards, malformed credentials."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from sessionward.clock import FrozenClock
from sessionward.context import Context
from tests import authenticator
from tests.authenticator import Credential
from tests.conftest import API, PASSWORD, Login, Users

ORIGIN = "http://127.0.0.1:8000"  # PUBLIC_URL's default: the RP id is its host


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_enabled": False}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def add_passkey(client: httpx.AsyncClient, login: Login, **body: Any) -> tuple[Credential, httpx.Response]:
    options = (await client.post(f"{API}/passkeys/register/options", headers=login.auth)).json()["data"]
    credential, created = authenticator.create(options, origin=ORIGIN)
    response = await client.post(f"{API}/passkeys/register", json={**created, **body}, headers=login.auth)
    return credential, response


async def login_options(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/passkeys/login/options", json=body)
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()["data"]
    return options


async def events(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get(f"{API}/events", headers=bearer(token))).json()["data"]["events"]
    return found


async def test_a_passkey_registers_and_is_listed(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    options = (await client.post(f"{API}/passkeys/register/options", headers=login.auth)).json()["data"]
    _, created = authenticator.create(options, origin=ORIGIN)
    response = await client.post(f"{API}/passkeys/register", json={**created, "name": "Laptop"}, headers=login.auth)
    listed = (await client.get(f"{API}/passkeys", headers=login.auth)).json()["data"]["passkeys"]

    assert options["rp"]["id"] == "127.0.0.1"
    assert options["user"]["name"] == login.email
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert response.status_code == 201, response.text
    passkey = response.json()["data"]["passkey"]
    assert set(passkey) == {"id", "name", "created_at", "last_used_at", "transports", "backed_up"}
    assert passkey["name"] == "Laptop"
    assert passkey["transports"] == ["internal"]
    assert passkey["last_used_at"] is None
    assert listed == [passkey]
    assert "passkey_added" in [e["type"] for e in await events(client, login.access)]


async def test_a_discoverable_passkey_signs_in_without_a_password(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    options = await login_options(client)
    response = await client.post(f"{API}/passkeys/login", json=authenticator.get(credential, options, origin=ORIGIN))
    data = response.json()["data"]
    token = data["tokens"]["access"]["token"]

    assert options["allowCredentials"] == []
    assert options["rpId"] == "127.0.0.1"
    assert response.status_code == 200
    assert data["user"]["email"] == login.email
    assert (claims(token)["aal"], claims(token)["amr"]) == ("aal2", ["hwk", "mfa"])
    assert "passkey_login" in [e["type"] for e in await events(client, token)]


async def test_a_passkey_that_did_not_verify_its_user_is_one_factor(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    assertion = authenticator.get(credential, await login_options(client), origin=ORIGIN, verified=False)
    token = (await client.post(f"{API}/passkeys/login", json=assertion)).json()["data"]["tokens"]["access"]["token"]

    assert (claims(token)["aal"], claims(token)["amr"]) == ("aal1", ["hwk"])


async def test_options_for_an_address_name_its_passkeys_and_an_unknown_one_looks_the_same(
    client: httpx.AsyncClient, users: Users
) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    known = await login_options(client, email=login.email)
    unknown = [await login_options(client, email="nobody@example.com") for _ in range(2)]
    without = await login_options(client, email=(await users.signed_in()).email)  # an account with no passkey

    assert [c["id"] for c in known["allowCredentials"]] == [authenticator.b64url(credential.id)]
    assert len(unknown[0]["allowCredentials"]) == 1
    assert unknown[0]["allowCredentials"][0]["id"] == unknown[1]["allowCredentials"][0]["id"]  # stable
    assert len(without["allowCredentials"]) == 1
    assert len(unknown[0]["allowCredentials"][0]["id"]) == len(known["allowCredentials"][0]["id"])


async def test_an_assertion_is_accepted_once(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    assertion = authenticator.get(credential, await login_options(client), origin=ORIGIN)
    first = await client.post(f"{API}/passkeys/login", json=assertion)
    replay = await client.post(f"{API}/passkeys/login", json=assertion)

    assert first.status_code == 200
    assert replay.status_code == 403


async def test_a_counter_that_goes_backwards_is_refused_and_audited(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    assert (
        await client.post(
            f"{API}/passkeys/login",
            json=authenticator.get(credential, await login_options(client), origin=ORIGIN, step=5),
        )
    ).status_code == 200
    clone = authenticator.get(credential, await login_options(client), origin=ORIGIN, step=-2)
    refused = await client.post(f"{API}/passkeys/login", json=clone)
    recorded = [e for e in await events(client, login.access) if e["type"] == "passkey_clone_suspected"]

    assert refused.status_code == 403
    assert refused.json()["message"] == "This passkey could not be verified"
    assert len(recorded) == 1
    assert recorded[0]["details"]["counter"] == 3
    assert recorded[0]["details"]["last_counter"] == 5


@pytest.mark.parametrize("change", ["challenge", "origin", "rp_id", "signature", "unknown credential"])
async def test_assertions_for_another_challenge_origin_or_rp_id_are_refused(
    client: httpx.AsyncClient, users: Users, change: str
) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    options = await login_options(client)
    if change == "challenge":
        options = {**options, "challenge": authenticator.b64url(b"x" * 32)}
    if change == "rp_id":
        credential.rp_id = "evil.example"
    if change == "unknown credential":
        credential = Credential(rp_id=credential.rp_id, user_handle=credential.user_handle)
    assertion = authenticator.get(credential, options, origin="http://evil.example" if change == "origin" else ORIGIN)
    if change == "signature":
        assertion["response"]["signature"] = authenticator.b64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    response = await client.post(f"{API}/passkeys/login", json=assertion)

    assert response.status_code == 403


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": 5},
        {"id": "x", "rawId": "!!", "type": "public-key", "response": {}},
        "truncated",
    ],
)
async def test_malformed_assertions_and_credentials_are_a_4xx(
    client: httpx.AsyncClient, users: Users, broken: Any
) -> None:
    login = await users.signed_in()
    options = (await client.post(f"{API}/passkeys/register/options", headers=login.auth)).json()["data"]
    _, created = authenticator.create(options, origin=ORIGIN)
    if broken == "truncated":
        attestation = authenticator.unb64url(created["response"]["attestationObject"])
        created["response"]["attestationObject"] = authenticator.b64url(attestation[:40])
        broken = created
    registered = await client.post(f"{API}/passkeys/register", json=broken, headers=login.auth)
    signed_in = await client.post(f"{API}/passkeys/login", json=broken)

    assert 400 <= registered.status_code < 500
    assert 400 <= signed_in.status_code < 500
    assert (await client.get(f"{API}/passkeys", headers=login.auth)).json()["data"]["passkeys"] == []


async def test_a_passkey_is_the_second_factor_of_a_password_login(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    first = (await client.post(f"{API}/login", json={"email": login.email, "password": PASSWORD})).json()["data"]
    assertion = authenticator.get(credential, first["passkey_options"], origin=ORIGIN)
    done = await client.post(f"{API}/login/mfa", json={"challenge": first["challenge"], "passkey": assertion})
    token = done.json()["data"]["tokens"]["access"]["token"]

    assert first["mfa_required"] is True
    assert first["factors"] == ["passkey"]
    assert done.status_code == 200
    assert (claims(token)["aal"], claims(token)["amr"]) == ("aal2", ["pwd", "hwk", "mfa"])


async def test_another_users_passkey_is_a_wrong_second_factor(client: httpx.AsyncClient, users: Users) -> None:
    mine, other = await users.signed_in(), await users.signed_in()
    await add_passkey(client, mine)
    theirs, _ = await add_passkey(client, other)
    first = (await client.post(f"{API}/login", json={"email": mine.email, "password": PASSWORD})).json()["data"]
    assertion = authenticator.get(theirs, first["passkey_options"], origin=ORIGIN)
    done = await client.post(f"{API}/login/mfa", json={"challenge": first["challenge"], "passkey": assertion})

    assert done.status_code == 403
    assert done.json()["message"] == "Invalid code"


async def test_a_passkey_steps_up_a_session(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    clock.advance(timedelta(minutes=11))
    refused = await client.delete(f"{API}/sessions", headers=login.auth)
    assertion = authenticator.get(credential, await login_options(client, email=login.email), origin=ORIGIN)
    stepped = await client.post(f"{API}/reauthenticate", json={"passkey": assertion}, headers=login.auth)
    token = stepped.json()["data"]["access"]["token"]

    assert refused.status_code == 403
    assert refused.json()["aal"] == "aal2"
    assert stepped.status_code == 200
    assert claims(token)["aal"] == "aal2"
    assert "hwk" in claims(token)["amr"]
    assert (await client.delete(f"{API}/sessions", headers=bearer(token))).status_code == 200


async def test_rename_and_remove_only_ones_own(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login, other = await users.signed_in(), await users.signed_in()
    _, response = await add_passkey(client, login)
    passkey_id = response.json()["data"]["passkey"]["id"]
    renamed = await client.patch(f"{API}/passkeys/{passkey_id}", json={"name": "Phone"}, headers=login.auth)
    not_theirs = await client.patch(f"{API}/passkeys/{passkey_id}", json={"name": "x"}, headers=other.auth)
    removed_by_other = await client.delete(f"{API}/passkeys/{passkey_id}", headers=other.auth)
    clock.advance(timedelta(minutes=11))
    stale = await client.delete(f"{API}/passkeys/{passkey_id}", headers=login.auth)

    assert renamed.status_code == 200
    assert renamed.json()["data"]["passkey"]["name"] == "Phone"
    assert not_theirs.status_code == 404
    assert removed_by_other.status_code == 404
    assert stale.status_code == 403
    assert stale.json()["code"] == "step_up_required"


async def test_removing_a_passkey(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    _, response = await add_passkey(client, login)
    passkey_id = response.json()["data"]["passkey"]["id"]
    # The session is one factor and the user now has a second one: a step-up with the passkey would be needed.
    refused = await client.delete(f"{API}/passkeys/{passkey_id}", headers=login.auth)

    assert refused.status_code == 403
    assert refused.json()["aal"] == "aal2"


async def test_registering_needs_a_recent_sign_in(client: httpx.AsyncClient, users: Users, clock: FrozenClock) -> None:
    login = await users.signed_in()
    clock.advance(timedelta(minutes=11))
    response = await client.post(f"{API}/passkeys/register/options", headers=login.auth)

    assert response.status_code == 403
    assert response.json()["code"] == "step_up_required"


async def test_the_same_credential_twice_is_a_conflict(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    credential, first = await add_passkey(client, login)
    assertion = authenticator.get(credential, await login_options(client, email=login.email), origin=ORIGIN)
    stepped = await client.post(f"{API}/reauthenticate", json={"passkey": assertion}, headers=login.auth)
    token = bearer(stepped.json()["data"]["access"]["token"])  # with a passkey on, adding one needs two factors
    options = (await client.post(f"{API}/passkeys/register/options", headers=token)).json()["data"]
    _, again = authenticator.create(options, origin=ORIGIN, credential=credential)
    response = await client.post(f"{API}/passkeys/register", json=again, headers=token)

    assert first.status_code == 201
    assert response.status_code == 409


async def test_a_huge_credential_is_refused_before_it_is_parsed(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    huge = {"id": "x", "rawId": "x", "type": "public-key", "response": {"clientDataJSON": "A" * 70_000}}
    registered = await client.post(f"{API}/passkeys/register", json=huge, headers=login.auth)
    signed_in = await client.post(f"{API}/passkeys/login", json=huge)

    assert registered.status_code == 413
    assert signed_in.status_code == 413


async def test_a_passkey_sign_in_in_cookie_mode_sets_the_cookies_and_checks_the_origin(
    client: httpx.AsyncClient, users: Users, ctx: Context
) -> None:
    from tests.test_cookies import browser_client

    login = await users.signed_in()
    credential, _ = await add_passkey(client, login)
    async with browser_client(ctx) as browser:
        options = (await browser.post(f"{API}/passkeys/login/options", json={})).json()["data"]
        assertion = authenticator.get(credential, options, origin=ORIGIN)
        elsewhere = await browser.post(
            f"{API}/passkeys/login", json=assertion, headers={"origin": "https://evil.example"}
        )
        done = await browser.post(f"{API}/passkeys/login", json=assertion)

    assert elsewhere.status_code == 403
    assert done.status_code == 200
    assert "token" not in done.json()["data"]["tokens"]["refresh"]
    assert any("sessionward-refresh" in c for c in done.headers.get_list("set-cookie"))
