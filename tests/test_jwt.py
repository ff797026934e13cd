"""Access-token verification (RFC 8725 / RFC 9068) and RFC 7009 revocation, against the real app.

Forged tokens are built by hand (base64url + HMAC) so that nothing in a JWT library can quietly
"fix" them. Every refusal must look the same: 401, ``WWW-Authenticate: Bearer...``, one message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.errors import AppError
from sessionward.tokens import jwt as jwt_module
from tests.conftest import API, PASSWORD, TEST_ENV, Login, Users, refresh

SECRET = TEST_ENV["JWT_SECRET"].encode()
ME = f"{API}/me"
REVOKE = f"{API}/revoke"
REFUSED = {"status": "fail", "message": "Invalid or expired token"}
ASYMMETRIC = [{"jwt_algorithm": "EdDSA"}, {"jwt_algorithm": "ES256"}]


# ---------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token, unverified."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.get_unverified_header(token), claims


def hmac_sign(
    header: dict[str, Any], claims: dict[str, Any], secret: bytes = SECRET, digest: Any = hashlib.sha256
) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def resigned(login: Login, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """The login's own access token, with header/claims changed (``None`` deletes), signed with the real key."""
    real_header, real_claims = parts(login.access)
    new_header = {**real_header, **(header or {})}
    new_claims = {**real_claims, **claims}
    new_header = {k: v for k, v in new_header.items() if v is not None}
    new_claims = {k: v for k, v in new_claims.items() if v is not None}
    return hmac_sign(new_header, new_claims)


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ME, headers={"authorization": f"Bearer {token}"})


async def assert_unauthorized(client: httpx.AsyncClient, headers: dict[str, str], case: Any = None) -> dict[str, Any]:
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer"), case
    body: dict[str, Any] = response.json()
    assert body["status"] == "fail"
    assert "data" not in body
    return body


async def assert_refused(client: httpx.AsyncClient, token: str, case: Any = None) -> None:
    """401 with the same body whatever is wrong with the token: the reason is never told."""
    assert await assert_unauthorized(client, {"authorization": f"Bearer {token}"}, case) == REFUSED, case


async def revoke(client: httpx.AsyncClient, token: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    return await client.post(REVOKE, data=data)


@pytest.fixture
async def login(users: Users) -> Login:
    return await users.signed_in()


# ---------------------------------------------------------------- controls


async def test_a_token_rebuilt_from_its_own_parts_with_the_real_key_is_accepted(
    client: httpx.AsyncClient, login: Login
) -> None:
    # The forging helpers produce valid tokens: each refusal below is about the one thing changed.
    assert (await me(client, login.access)).status_code == 200
    assert (await me(client, resigned(login))).status_code == 200


async def test_issued_access_token_is_explicitly_typed_and_carries_every_claim(login: Login) -> None:
    header, claims = parts(login.access)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert isinstance(header["kid"], str)
    assert header["kid"]
    assert set(claims) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp", "aal", "amr", "auth_time"}
    assert claims["sub"] == str(login.user_id)
    assert claims["sid"] == login.session_id
    assert claims["exp"] - claims["iat"] == 900


async def test_every_access_token_has_a_distinct_jti(client: httpx.AsyncClient, login: Login) -> None:
    renewed = await refresh(client, login.refresh, login.session_id)
    assert renewed.status_code == 200
    assert parts(renewed.json()["data"]["access"]["token"])[1]["jti"] != parts(login.access)[1]["jti"]


# ---------------------------------------------------------------- algorithm


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", "HS256 "])
async def test_alg_none_in_any_spelling_is_refused(client: httpx.AsyncClient, login: Login, alg: str) -> None:
    header, claims = parts(login.access)
    unsigned = f"{b64json({**header, 'alg': alg})}.{b64json(claims)}"
    await assert_refused(client, f"{unsigned}.")
    await assert_refused(client, f"{unsigned}.{login.access.rsplit('.', 1)[1]}")


async def test_alg_null_and_missing_alg_are_refused(client: httpx.AsyncClient, login: Login) -> None:
    header, claims = parts(login.access)
    await assert_refused(client, f"{b64json({**header, 'alg': None})}.{b64json(claims)}.")
    await assert_refused(client, f"{b64json({k: v for k, v in header.items() if k != 'alg'})}.{b64json(claims)}.")


@pytest.mark.parametrize("digest", [hashlib.sha384, hashlib.sha512], ids=["HS384", "HS512"])
async def test_the_right_secret_with_another_hmac_algorithm_is_refused(
    client: httpx.AsyncClient, login: Login, digest: Any
) -> None:
    header, claims = parts(login.access)
    alg = "HS384" if digest is hashlib.sha384 else "HS512"
    await assert_refused(client, hmac_sign({**header, "alg": alg}, claims, digest=digest))


async def test_a_token_signed_with_another_hs256_key_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    header, claims = parts(login.access)
    await assert_refused(client, hmac_sign(header, claims, secret=b"another-secret-with-at-least-32-bytes!!"))
    await assert_refused(client, hmac_sign(header, claims, secret=b""))


# ---------------------------------------------------------------- header


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", None, "", "at+JWT", "application/at+jwt", "dpop+jwt", "at+jwt ", ["at+jwt"]],
)
async def test_typ_other_than_exactly_at_jwt_is_refused(client: httpx.AsyncClient, login: Login, typ: Any) -> None:
    # Decision: this service is the only issuer and always writes exactly "at+jwt" (RFC 8725 §3.11);
    # RFC 9068 would also allow "application/at+jwt", which we never issue, so it is refused too.
    header, claims = parts(login.access)
    header = {k: v for k, v in {**header, "typ": typ}.items() if v is not None}
    await assert_refused(client, hmac_sign(header, claims))


async def test_unknown_or_malformed_kid_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    header, claims = parts(login.access)
    for kid in ["unknown", "", "../../../../dev/null", "' OR '1'='1", "\u0000", "x" * 1000, 7, None, ["kid"]]:
        forged = {k: v for k, v in {**header, "kid": kid}.items() if v is not None}
        await assert_refused(client, hmac_sign(forged, claims), kid)


async def test_key_material_in_the_header_is_never_trusted(client: httpx.AsyncClient, login: Login) -> None:
    header, claims = parts(login.access)
    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    for extra in ({"jwk": attacker_jwk}, {"jku": "https://attacker.example/jwks.json"}, {"x5u": "https://a.example"}):
        forged = jwt.encode(claims, attacker, algorithm="EdDSA", headers={**header, **extra, "alg": "EdDSA"})
        await assert_refused(client, forged)
    attacker_secret = b"attacker-chosen-secret-of-32-bytes-or-more"
    attacker_oct = {"kty": "oct", "k": b64url(attacker_secret)}
    await assert_refused(client, hmac_sign({**header, "jwk": attacker_oct}, claims, secret=attacker_secret))


async def test_jku_and_x5u_headers_are_ignored_and_never_fetched(client: httpx.AsyncClient, login: Login) -> None:
    connections = 0

    async def canary(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(canary, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/keys"
        attacker_secret = b"attacker-chosen-secret-of-32-bytes-or-more"
        # Attacker-signed with a pointer to the attacker's keys: refused.
        header, claims = parts(login.access)
        await assert_refused(client, hmac_sign({**header, "jku": url, "x5u": url}, claims, secret=attacker_secret))
        # Signed with the real key: the pointers change nothing, the real key decides.
        assert (await me(client, resigned(login, header={"jku": url, "x5u": url}))).status_code == 200
        await asyncio.sleep(0)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 0


# ---------------------------------------------------------------- claims


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "sid", "jti", "iat", "exp"])
async def test_a_token_missing_a_required_claim_is_refused(client: httpx.AsyncClient, login: Login, claim: str) -> None:
    header, claims = parts(login.access)
    del claims[claim]
    await assert_refused(client, hmac_sign(header, claims))


async def test_wrong_issuer_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    for iss in ["https://evil.example", "sessionward/", "SESSIONWARD", " sessionward", "", ["sessionward"], 1]:
        await assert_refused(client, resigned(login, iss=iss), iss)


async def test_wrong_audience_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    for aud in ["other-api", ["other-api"], "", [], "SESSIONWARD", "sessionward/", 1]:
        await assert_refused(client, resigned(login, aud=aud), aud)


async def test_sub_that_is_not_a_numeric_string_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    subs = ["abc", "", "1.0", " 1", "1 ", "-1", "+1", "1e3", "\uff11", "\u0661", "9" * 19, True, [1], {"id": 1}]
    for sub in subs:
        await assert_refused(client, resigned(login, sub=sub), sub)


async def test_sub_as_a_json_number_is_refused_even_for_the_right_user(client: httpx.AsyncClient, login: Login) -> None:
    await assert_refused(client, resigned(login, sub=login.user_id))


async def test_sid_and_jti_must_be_strings(client: httpx.AsyncClient, login: Login) -> None:
    for field in ("sid", "jti"):
        for value in (123, None, ["x"], {"id": "x"}):
            header, claims = parts(login.access)
            claims[field] = value
            await assert_refused(client, hmac_sign(header, claims), (field, value))


async def test_sid_of_another_users_session_is_refused_even_with_the_real_key(
    client: httpx.AsyncClient, users: Users
) -> None:
    alice = await users.signed_in()
    bob = await users.signed_in()
    # Control: bob's own pair is fine when re-signed.
    assert (await me(client, resigned(bob, sub=str(bob.user_id), sid=bob.session_id))).status_code == 200
    await assert_refused(client, resigned(alice, sid=bob.session_id))
    await assert_refused(client, resigned(alice, sub=str(bob.user_id)))


async def test_sid_of_no_session_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    await assert_refused(client, resigned(login, sid=secrets.token_hex(32)))
    await assert_refused(client, resigned(login, sid="x"))


async def test_tampered_payload_or_signature_is_refused(client: httpx.AsyncClient, users: Users) -> None:
    alice = await users.signed_in()
    bob = await users.signed_in()
    header_b64, _, signature = alice.access.split(".")
    _, claims = parts(alice.access)
    claims.update(sub=str(bob.user_id), sid=bob.session_id)
    await assert_refused(client, f"{header_b64}.{b64json(claims)}.{signature}")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    await assert_refused(client, f"{header_b64}.{alice.access.split('.')[1]}.{flipped}")
    await assert_refused(client, f"{header_b64}.{alice.access.split('.')[1]}.")
    assert (await me(client, alice.access)).status_code == 200


# ---------------------------------------------------------------- time


async def test_access_token_works_until_exp_within_the_1s_leeway_then_401(
    client: httpx.AsyncClient, login: Login, clock: FrozenClock
) -> None:
    # Issued at T with exp = floor(T) + 900: at T + 900 it is at most 1 s past exp (leeway).
    clock.advance(timedelta(seconds=900))
    assert (await me(client, login.access)).status_code == 200
    clock.advance(timedelta(seconds=2))
    await assert_refused(client, login.access)


async def test_exp_more_than_the_leeway_in_the_past_is_refused(
    client: httpx.AsyncClient, login: Login, clock: FrozenClock
) -> None:
    now = int(clock.now().timestamp())
    assert (await me(client, resigned(login, exp=now + 5))).status_code == 200
    await assert_refused(client, resigned(login, exp=now - 2))
    await assert_refused(client, resigned(login, exp=0))


async def test_iat_in_the_future_is_refused(client: httpx.AsyncClient, login: Login, clock: FrozenClock) -> None:
    now = int(clock.now().timestamp())
    assert (await me(client, resigned(login, iat=now))).status_code == 200
    await assert_refused(client, resigned(login, iat=now + 60))


async def test_a_remembered_token_keeps_the_window_of_its_claims(
    ctx: Context, login: Login, clock: FrozenClock
) -> None:
    """Verified tokens are remembered per process; a hit is held to the same iat/exp window as a full check."""
    issued = clock.now()
    assert ctx.access.verify(login.access, now=issued).session_id == login.session_id
    assert login.access in ctx.access._verified
    for moved in (timedelta(seconds=-2), timedelta(seconds=902)):  # before iat - 1 s, after exp + 1 s
        with pytest.raises(AppError):
            ctx.access.verify(login.access, now=issued + moved)
    assert ctx.access.verify(login.access, now=issued + timedelta(seconds=899)).session_id == login.session_id


async def test_remembered_tokens_are_bounded_the_oldest_forgotten_first(
    ctx: Context, users: Users, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_module, "VERIFIED_KEPT", 2)
    tokens = [(await users.signed_in()).access for _ in range(3)]
    for token in tokens:
        ctx.access.verify(token, now=clock.now())
    assert list(ctx.access._verified) == tokens[1:]


async def test_exp_and_iat_must_be_integers(client: httpx.AsyncClient, login: Login) -> None:
    for field in ("exp", "iat"):
        header, claims = parts(login.access)
        value = claims[field]
        for bad in (str(value), value + 0.5, float(value), True, None, [value]):
            await assert_refused(client, hmac_sign(header, {**claims, field: bad}), (field, bad))


async def test_absurdly_far_exp_is_refused_not_a_server_error(client: httpx.AsyncClient, login: Login) -> None:
    # Only the key holder can mint these, but a 5xx is never an answer to a token.
    for exp in (253402300800, 10**20, 2**63, 10**400):  # year 10000 and beyond
        await assert_refused(client, resigned(login, exp=exp), exp)


# ---------------------------------------------------------------- not a JWT at all


NOT_JWTS = [
    "garbage",
    "a.b.c",
    "a.b",
    "a.b.c.d.e",
    "...",
    "eyJ.eyJ.sig",
    b64url(b"[]") + "." + b64json({}) + ".",
    b64url(b'"at+jwt"') + "." + b64json({}) + ".",
    b64url(b"\xff\xfe") + "." + b64json({}) + ".",
    "=" * 40,
    "%00",
]


async def test_strings_that_are_not_jwts_are_refused(client: httpx.AsyncClient) -> None:
    for token in NOT_JWTS:
        await assert_refused(client, token, token)


async def test_a_refresh_token_is_not_an_access_token(client: httpx.AsyncClient, login: Login) -> None:
    await assert_refused(client, login.refresh)


async def test_standard_base64_instead_of_base64url_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    header, claims = parts(login.access)
    claims["pad"] = "~~~???" * 4  # base64url of this has '-' and '_' where standard base64 has '+' and '/'
    token = hmac_sign(header, claims)
    head, body, sig = token.split(".")
    standard = body.replace("-", "+").replace("_", "/")
    assert standard != body
    await assert_refused(client, f"{head}.{standard}.{sig}")


async def test_critical_extensions_and_unencoded_payloads_are_refused(client: httpx.AsyncClient, login: Login) -> None:
    # RFC 7515 §4.1.11: none is understood here, so any "crit" is refused; RFC 7797 "b64": false likewise.
    for header in [{"crit": ["exp"]}, {"crit": []}, {"b64": False, "crit": ["b64"]}, {"b64": False}, {"b64": "true"}]:
        await assert_refused(client, resigned(login, header=header), header)
    assert (await me(client, resigned(login, header={"b64": True}))).status_code == 200  # the default, said aloud


async def test_a_header_or_payload_that_is_json_but_not_an_object_is_refused(
    client: httpx.AsyncClient, login: Login
) -> None:
    header, claims = parts(login.access)
    for value in ([header], "header", 1, None):
        await assert_refused(client, hmac_sign(value, claims), value)
    for value in ([claims], "claims", 1, None):
        await assert_refused(client, hmac_sign(header, value), value)


async def test_a_signature_with_stray_base64_bits_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    """One token, one spelling: a last character whose unused bits are set decodes to the same signature."""
    head, body, sig = login.access.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(sig) % 4 in (2, 3)  # so the last character has unused low bits, all zero when canonical
    variant = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    assert base64.urlsafe_b64decode(variant + "==") == base64.urlsafe_b64decode(sig + "==")
    assert variant != sig
    await assert_refused(client, f"{head}.{body}.{variant}")
    await assert_refused(client, f"{head}.{body}.{sig}=")  # padded
    assert (await revoke(client, f"{login.access}\n", "access_token")).status_code == 200  # not this token
    assert (await me(client, login.access)).status_code == 200
    assert (await me(client, login.access)).status_code == 200


async def test_an_audience_array_that_names_this_service_is_accepted(client: httpx.AsyncClient, login: Login) -> None:
    _, claims = parts(login.access)
    assert (await me(client, resigned(login, aud=["other-api", claims["aud"]]))).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer " + "a" * 5000],
    ids=["empty", "bearer-alone", "bearer-space", "basic", "token-scheme", "over-4096"],
)
async def test_missing_empty_or_oversized_bearer_is_401_with_www_authenticate(
    client: httpx.AsyncClient, authorization: str
) -> None:
    await assert_unauthorized(client, {"authorization": authorization})


async def test_no_authorization_header_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    await assert_unauthorized(client, {})


async def test_a_valid_token_without_the_bearer_scheme_is_refused(client: httpx.AsyncClient, login: Login) -> None:
    await assert_unauthorized(client, {"authorization": login.access})
    await assert_unauthorized(client, {"authorization": f"Token {login.access}"})


async def test_a_valid_token_padded_past_4096_characters_is_refused_not_5xx(
    client: httpx.AsyncClient, login: Login
) -> None:
    response = await client.get(ME, headers={"authorization": f"Bearer {login.access}{'A' * 4096}"})
    assert response.status_code == 401


async def test_access_token_in_the_query_string_is_not_accepted(client: httpx.AsyncClient, login: Login) -> None:
    response = await client.get(ME, params={"access_token": login.access})
    assert response.status_code == 401


# ---------------------------------------------------------------- asymmetric: algorithm confusion


@pytest.mark.parametrize("settings_overrides", ASYMMETRIC, ids=["EdDSA", "ES256"])
async def test_hmac_signed_with_the_public_key_is_refused(
    client: httpx.AsyncClient, users: Users, settings_overrides: dict[str, Any]
) -> None:
    login = await users.signed_in()
    header, claims = parts(login.access)
    assert header["alg"] == settings_overrides["jwt_algorithm"]
    assert (await me(client, login.access)).status_code == 200
    jwks = (await client.get("/.well-known/jwks.json")).json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(jwk).key
    candidates = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
        json.dumps(jwks).encode(),
        base64.urlsafe_b64decode(jwk["x"] + "=="),
    ]
    for secret in candidates:
        for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
            await assert_refused(client, hmac_sign({**header, "alg": alg}, claims, secret=secret, digest=digest))


@pytest.mark.parametrize("settings_overrides", ASYMMETRIC, ids=["EdDSA", "ES256"])
async def test_asymmetric_service_refuses_none_other_algorithms_and_attacker_keys(
    client: httpx.AsyncClient, users: Users, settings_overrides: dict[str, Any]
) -> None:
    login = await users.signed_in()
    header, claims = parts(login.access)
    await assert_refused(client, f"{b64json({**header, 'alg': 'none'})}.{b64json(claims)}.")
    await assert_refused(client, hmac_sign({**header, "alg": "HS256"}, claims))  # the HS256 test secret
    ed_attacker = ed25519.Ed25519PrivateKey.generate()
    ec_attacker = ec.generate_private_key(ec.SECP256R1())
    for key, alg in ((ed_attacker, "EdDSA"), (ec_attacker, "ES256")):
        await assert_refused(client, jwt.encode(claims, key, algorithm=alg, headers={**header, "alg": alg}))
        headers = {**header, "alg": alg, "jwk": _jwk(key)}
        await assert_refused(client, jwt.encode(claims, key, algorithm=alg, headers=headers))


def _jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return dict(json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key())))
    return dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())))


# ---------------------------------------------------------------- RFC 7009 revocation


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "bogus"])
async def test_revoking_a_refresh_token_ends_its_whole_session(
    client: httpx.AsyncClient, users: Users, hint: str | None
) -> None:
    email = await users.register()
    login = await users.login(email)
    other = await users.login(email)
    assert (await me(client, login.access)).status_code == 200  # warm the verification cache
    response = await revoke(client, login.refresh, hint)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 401
    await assert_refused(client, login.access)
    # The user's other session is untouched.
    assert (await me(client, other.access)).status_code == 200
    listed = (await client.get(f"{API}/sessions", headers=other.auth)).json()["data"]
    assert login.session_id not in {s["id"] for s in listed["other_sessions"]}
    assert (await refresh(client, other.refresh, other.session_id)).status_code == 200


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_revoking_an_access_token_blacklists_only_that_token(
    client: httpx.AsyncClient, login: Login, hint: str | None
) -> None:
    renewed = await refresh(client, login.refresh, login.session_id)
    assert renewed.status_code == 200
    second_access = renewed.json()["data"]["access"]["token"]
    second_refresh = renewed.json()["data"]["refresh"]["token"]
    assert (await me(client, login.access)).status_code == 200
    response = await revoke(client, login.access, hint)
    assert response.status_code == 200, response.text
    await assert_refused(client, login.access)
    assert (await me(client, second_access)).status_code == 200
    assert (await refresh(client, second_refresh, login.session_id)).status_code == 200


async def test_a_revoked_access_token_stays_revoked_for_a_fresh_process(
    client: httpx.AsyncClient, login: Login, ctx: Context
) -> None:
    assert (await revoke(client, login.access)).status_code == 200
    fresh = Context.build(ctx.settings, clock=ctx.clock)
    try:
        transport = httpx.ASGITransport(app=create_app(fresh))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            await assert_refused(other, login.access)
    finally:
        await fresh.close()


async def test_revoking_an_unknown_token_is_200_and_changes_nothing(client: httpx.AsyncClient, login: Login) -> None:
    for token in ["unknown", "a" * 128, "a.b.c", secrets.token_hex(64), "x" * 4096, login.refresh[::-1]]:
        for hint in (None, "access_token", "refresh_token"):
            response = await revoke(client, token, hint)
            assert response.status_code == 200, (token, hint, response.text)
    assert (await me(client, login.access)).status_code == 200
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200


async def test_revoking_a_forged_or_expired_access_token_is_200(
    client: httpx.AsyncClient, login: Login, clock: FrozenClock
) -> None:
    header, claims = parts(login.access)
    forged = hmac_sign(header, claims, secret=b"not-the-secret-but-32-bytes-long!!")
    assert (await revoke(client, forged)).status_code == 200
    assert (await me(client, login.access)).status_code == 200
    clock.advance(timedelta(hours=1))
    response = await revoke(client, login.access, "access_token")
    assert response.status_code == 200


async def test_revoking_the_access_token_of_a_deleted_account_is_200(client: httpx.AsyncClient, login: Login) -> None:
    deleted = await client.request("DELETE", ME, json={"password": PASSWORD}, headers=login.auth)
    assert deleted.status_code == 200, deleted.text
    response = await revoke(client, login.access)
    assert response.status_code == 200, response.text
    response = await revoke(client, login.refresh)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "data",
    [{}, {"token": ""}, {"token_type_hint": "refresh_token"}, {"token": "x" * 4097}],
    ids=["empty", "blank", "hint-only", "over-4096"],
)
async def test_revoke_without_a_usable_token_is_400(client: httpx.AsyncClient, data: dict[str, str]) -> None:
    response = await client.post(REVOKE, data=data)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "fail"


async def test_revoke_with_a_json_body_is_415(client: httpx.AsyncClient, login: Login) -> None:
    response = await client.post(REVOKE, json={"token": login.refresh})
    assert response.status_code == 415, response.text
    # Nothing was revoked.
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200


async def test_revoke_with_an_undecodable_form_body_is_400_not_5xx(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE, content=b"token=\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400, response.text


async def test_revoke_with_too_many_form_fields_is_400(client: httpx.AsyncClient) -> None:
    body = "&".join(f"f{i}=x" for i in range(11)).encode()
    response = await client.post(REVOKE, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400, response.text


async def test_revoking_a_refresh_token_twice_is_200_and_records_one_event(
    client: httpx.AsyncClient, login: Login, ctx: Context
) -> None:
    from sqlalchemy import func, select

    from sessionward.audit.tables import audit_events

    assert (await revoke(client, login.refresh)).status_code == 200
    assert (await revoke(client, login.refresh)).status_code == 200
    query = select(func.count()).where(audit_events.c.type == "token_revoked")
    async with ctx.db.read() as conn:
        assert (await conn.execute(query)).scalar_one() == 1


# ---------------------------------------------------------------- strength claims (API.md "Stronger sign-in")


@pytest.mark.parametrize(
    "changed",
    [
        {"aal": "aal3"},
        {"aal": None},
        {"amr": "pwd"},
        {"amr": [1]},
        {"amr": ["pwd"] * 9},
        {"auth_time": "1"},
        {"auth_time": True},
        {"auth_time": 0},
        {"auth_time": 2**62},
    ],
)
async def test_malformed_strength_claims_are_refused(
    client: httpx.AsyncClient, login: Login, changed: dict[str, Any]
) -> None:
    await assert_refused(client, resigned(login, **changed), changed)


async def test_a_token_from_before_strength_claims_works_but_is_never_fresh_enough_to_step_up(
    client: httpx.AsyncClient, login: Login
) -> None:
    header, claims = parts(login.access)
    old = {name: value for name, value in claims.items() if name not in ("aal", "amr", "auth_time")}
    token = hmac_sign(header, old)

    assert (await me(client, token)).status_code == 200
    refused = await client.delete(f"{API}/sessions", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "step_up_required"
