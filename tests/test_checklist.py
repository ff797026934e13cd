"""The JWT and input lines of the security checklist (issue 6.3), where tests/test_jwt.py and
tests/test_bad_input.py do not already prove them: every algorithm configuration against ``alg`` confusion,
header-supplied keys with an asymmetric service, the time claims at their exact edges, hostile bytes in
headers, and every protected route of the OpenAPI schema against every way a session or token ends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import update

from sessionward.clock import FrozenClock
from sessionward.context import Context
from sessionward.users.tables import users as users_table
from tests.conftest import API, PASSWORD, Login, Users, refresh
from tests.live import LiveServer
from tests.test_bad_input import row_counts
from tests.test_jwt import REFUSED, b64json, b64url, hmac_sign, me, parts

ALGORITHMS = [{"jwt_algorithm": "HS256"}, {"jwt_algorithm": "EdDSA"}, {"jwt_algorithm": "ES256"}]
ASYMMETRIC = ALGORITHMS[1:]


def sign(ctx: Context, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed with the service's own current key [K]: a token valid in every way but the one changed."""
    keyset = ctx.access.keys.current(now=ctx.clock.now())
    return jwt.encode(claims, keyset.signing_key, algorithm=keyset.algorithm, headers=header)


async def refused(client: httpx.AsyncClient, token: str, case: Any = None) -> None:
    response = await me(client, token)
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer"), case
    assert response.json() == REFUSED, case


@pytest.fixture
async def login(users: Users) -> Login:
    return await users.signed_in()


# --------------------------------------------------------------------------- alg: none and confusion

NONE_SPELLINGS: list[Any] = ["none", "None", "NONE", "nOnE", "NoNe", "none ", " none", "none\u0000", "", None, 0]
NONE_SPELLINGS += [["none"], {"alg": "none"}, "none,HS256"]


@pytest.mark.parametrize("settings_overrides", ALGORITHMS, ids=["HS256", "EdDSA", "ES256"])
async def test_alg_none_in_every_spelling_is_refused_whatever_algorithm_is_configured(
    client: httpx.AsyncClient, login: Login, settings_overrides: dict[str, Any]
) -> None:
    header, claims = parts(login.access)
    configured = settings_overrides["jwt_algorithm"]
    assert header["alg"] == configured
    signature = login.access.rsplit(".", 1)[1]
    spellings = [*NONE_SPELLINGS, configured.lower(), configured.upper() + " ", f" {configured}", [configured]]
    for alg in spellings:
        unsigned = f"{b64json({**header, 'alg': alg})}.{b64json(claims)}"
        await refused(client, f"{unsigned}.", alg)  # signature stripped
        await refused(client, f"{unsigned}.{signature}", alg)  # the real signature kept
    missing = {k: v for k, v in header.items() if k != "alg"}
    await refused(client, f"{b64json(missing)}.{b64json(claims)}.")
    assert (await me(client, login.access)).status_code == 200  # the control: the real token still works


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": "ES256"}])
async def test_hmac_keyed_with_any_encoding_of_the_es256_public_point_is_refused(
    client: httpx.AsyncClient, login: Login
) -> None:
    """Adds to test_jwt's PEM/DER/JWK candidates the raw point encodings (SEC-32, FZ-14)."""
    header, claims = parts(login.access)
    jwk = next(k for k in (await client.get("/.well-known/jwks.json")).json()["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(jwk).key
    x = base64.urlsafe_b64decode(jwk["x"] + "==")
    y = base64.urlsafe_b64decode(jwk["y"] + "==")
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    candidates = [
        public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
        public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint),
        x + y,
        y,
        pem.strip(),
        pem.replace(b"\n", b"\r\n"),
        jwk["x"].encode(),
        json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
    ]
    for secret in candidates:
        for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
            await refused(client, hmac_sign({**header, "alg": alg}, claims, secret=secret, digest=digest), alg)


# --------------------------------------------------------------------------- keys named in the header


def _attacker(alg: str) -> Any:
    return ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())


def _public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.OKPAlgorithm if isinstance(key, ed25519.Ed25519PrivateKey) else jwt.algorithms.ECAlgorithm
    )
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


@pytest.mark.parametrize("settings_overrides", ASYMMETRIC, ids=["EdDSA", "ES256"])
async def test_an_asymmetric_service_never_takes_or_fetches_keys_named_in_the_header(
    client: httpx.AsyncClient, login: Login, settings_overrides: dict[str, Any]
) -> None:
    """``jwk``, ``jku``, ``x5u``, ``x5c`` and a ``kid`` of the attacker's own key are refused, and nothing is
    fetched: a canary that would serve the attacker's JWKS sees no connection (SEC-33, SEC-34, FZ-16..19)."""
    alg = settings_overrides["jwt_algorithm"]
    header, claims = parts(login.access)
    attacker = _attacker(alg)
    attacker_jwk = _public_jwk(attacker, "attacker")
    connections = 0

    async def canary(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        body = json.dumps({"keys": [attacker_jwk]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(canary, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/jwks.json"
    certificate = base64.b64encode(b"not really a certificate, and never looked at").decode()
    try:
        variants = [
            {"jwk": attacker_jwk},
            {"jwk": attacker_jwk, "kid": "attacker"},
            {"jku": url, "kid": "attacker"},
            {"x5u": url},
            {"x5c": [certificate]},
            {"kid": "attacker"},
            {"kid": "../../../../dev/null"},
            {"kid": "x" * 2000},
        ]
        for extra in variants:
            forged = jwt.encode(claims, attacker, algorithm=alg, headers={**header, **extra})
            await refused(client, forged, extra)
        await asyncio.sleep(0)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 0


# --------------------------------------------------------------------------- exp, nbf and iat at their edges


@pytest.fixture
def whole_second(clock: FrozenClock) -> int:
    """The clock on a whole second, so each edge below is exact."""
    now = clock.now()
    clock.advance(timedelta(microseconds=1_000_000 - now.microsecond))
    return int(clock.now().timestamp())


@pytest.mark.parametrize("settings_overrides", ALGORITHMS, ids=["HS256", "EdDSA", "ES256"])
async def test_exp_is_honoured_with_exactly_one_second_of_leeway(
    client: httpx.AsyncClient, ctx: Context, login: Login, clock: FrozenClock, whole_second: int
) -> None:
    header, claims = parts(login.access)
    now = whole_second
    at_now = sign(ctx, header, {**claims, "iat": now - 60, "exp": now})
    assert (await me(client, at_now)).status_code == 200  # exp == now: within the 1 s leeway
    await refused(client, sign(ctx, header, {**claims, "iat": now - 60, "exp": now - 1}))
    clock.advance(timedelta(milliseconds=999))
    assert (await me(client, at_now)).status_code == 200
    clock.advance(timedelta(milliseconds=1))
    await refused(client, at_now)  # one full second past exp


async def test_iat_more_than_the_leeway_in_the_future_is_refused(
    client: httpx.AsyncClient, ctx: Context, login: Login, whole_second: int
) -> None:
    header, claims = parts(login.access)
    now = whole_second
    assert (await me(client, sign(ctx, header, {**claims, "iat": now + 1, "exp": now + 600}))).status_code == 200
    await refused(client, sign(ctx, header, {**claims, "iat": now + 2, "exp": now + 600}))


async def test_nbf_is_honoured_when_present_with_the_same_leeway(
    client: httpx.AsyncClient, ctx: Context, login: Login, clock: FrozenClock, whole_second: int
) -> None:
    """The service never issues ``nbf``; a token that carries one is not valid before it (RFC 7519 §4.1.5)."""
    header, claims = parts(login.access)
    now = whole_second
    for nbf in (now - 3600, now, now + 1):
        assert (await me(client, sign(ctx, header, {**claims, "nbf": nbf}))).status_code == 200, nbf
    early = sign(ctx, header, {**claims, "nbf": now + 2})
    await refused(client, early)
    for bad in (str(now), now + 0.5, True, None, [now]):
        await refused(client, sign(ctx, header, {**claims, "nbf": bad}), bad)
    clock.advance(timedelta(seconds=1))
    assert (await me(client, early)).status_code == 200  # not before: from then on it is fine


async def test_a_lifetime_longer_than_issued_or_exp_not_after_iat_is_refused(
    client: httpx.AsyncClient, ctx: Context, login: Login, whole_second: int
) -> None:
    """Only the key holder can mint these; still, no token outlives ACCESS_TOKEN_EXPIRES_IN (FZ-25)."""
    header, claims = parts(login.access)
    now = whole_second
    assert (await me(client, sign(ctx, header, {**claims, "iat": now, "exp": now + 900}))).status_code == 200
    for iat, exp in ((now, now + 901), (now - 10**9, now + 60), (now, now), (now + 1, now)):
        await refused(client, sign(ctx, header, {**claims, "iat": iat, "exp": exp}), (iat - now, exp - now))


# --------------------------------------------------------------------------- hostile tokens and headers


async def test_deeply_nested_or_huge_json_inside_a_token_is_refused_not_a_server_error(
    client: httpx.AsyncClient, login: Login
) -> None:
    header, claims = parts(login.access)
    nested = b'{"alg":"HS256","typ":"at+jwt","x":' + b"[" * 1200 + b"]" * 1200 + b"}"
    await refused(client, f"{b64url(nested)}.{b64json(claims)}.sig")
    deep = {**claims, "x": json.loads("[" * 900 + "]" * 900)}
    await refused(client, hmac_sign(header, deep, secret=b"an attacker's secret of 32 bytes or more"))
    await refused(client, f"{b64url(b'{' * 2500)}.{b64json(claims)}.sig")
    await refused(client, f"{b64json(header)}.{b64url(b'[' * 2500)}.sig")
    duplicate = b'{"alg":"none","alg":"HS256","typ":"at+jwt","kid":"' + header["kid"].encode() + b'"}'
    await refused(client, f"{b64url(duplicate)}.{b64json(claims)}.")


NOT_UTF8 = [b"Bearer \xff\xfe\xfd", b"Bearer eyJ\x80.eyJ\xc3\x28.x", b"\xc0\xafBearer x", b"Bearer " + b"\xe9" * 100]


async def test_non_utf8_bytes_in_headers_are_refused_or_ignored_never_a_server_error(
    client: httpx.AsyncClient, ctx: Context, login: Login
) -> None:
    before = await row_counts(ctx)
    for authorization in NOT_UTF8:
        response = await client.get(f"{API}/me", headers={"authorization": authorization})
        assert response.status_code == 401, (authorization, response.text)
    listed = await client.get(f"{API}/sessions", headers={**login.auth, "x-session-id": b"\xff" * 64})
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"]["current_session"]["id"] == login.session_id  # the header is ignored
    for header in ("x-request-id", "x-sessionward-client", "origin", "content-type"):
        response = await client.post(
            f"{API}/logout", json={"session_id": "a" * 64}, headers={**login.auth, header: b"\xff\xfe"}
        )
        assert 400 <= response.status_code < 500, (header, response.text)
    assert (await client.get(f"{API}/events?limit=%ff", headers=login.auth)).status_code == 400
    assert (await client.delete(f"{API}/sessions/%ff%fe", headers=login.auth)).status_code in (400, 404)
    assert await row_counts(ctx) == before
    assert (await me(client, login.access)).status_code == 200


async def test_cr_lf_in_headers_is_never_reflected_into_a_response_header(
    client: httpx.AsyncClient, users: Users
) -> None:
    """Header injection: a value with CR/LF (possible in-process, where no HTTP parser strips it) never turns
    into a response header, and device info keeps it as data (JSON-escaped), not as structure."""
    email = await users.register()
    injected = "Firefox/133.0\r\nSet-Cookie: planted=1\r\nX-Injected: yes"
    response = await client.post(
        f"{API}/login",
        json={"email": email, "password": PASSWORD},
        headers={"user-agent": injected, "x-request-id": "id\r\nSet-Cookie: planted=2"},
    )
    assert response.status_code == 200, response.text
    for name, value in response.headers.multi_items():
        assert not {"\r", "\n"} & set(value), (name, value)
        assert "planted" not in value, (name, value)
        assert name != "x-injected", (name, value)
    assert response.json()["data"]["session"]["device_info"]["userAgent"] == injected  # data, escaped in JSON
    assert b"\r\nSet-Cookie" not in response.content
    access = response.json()["data"]["tokens"]["access"]["token"]
    for header in ("x-session-id", "x-sessionward-client", "origin"):
        answer = await client.get(f"{API}/sessions", headers={"authorization": f"Bearer {access}", header: "a\r\nb: c"})
        assert answer.status_code in (200, 400), (header, answer.text)
        assert "b" not in answer.headers, header


@pytest.mark.parametrize("size", [5_000, 64 * 1024, 1024 * 1024])
async def test_an_oversized_authorization_header_is_401_and_cheap(
    client: httpx.AsyncClient, ctx: Context, login: Login, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await row_counts(ctx)
    calls = 0
    real_verify = ctx.access.verify

    def counting(token: str, *, now: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_verify(token, now=now)

    monkeypatch.setattr(ctx.access, "verify", counting)
    for value in (f"Bearer {login.access}{'A' * size}", "Bearer " + "A" * size, f"Bearer {'a.' * (size // 2)}"):
        response = await client.get(f"{API}/me", headers={"authorization": value})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert calls == 0  # refused on its length, before any parsing or signature check
    assert await row_counts(ctx) == before


TRICKY_BODY_SESSION_IDS = [
    "../me",
    "a" * 64 + "/../" + "b" * 64,
    "%2e%2e",
    "' OR 1=1 --",
    "A" * 64,
    "0" * 64,
    "\u0000" * 10,
]


async def test_path_tricks_as_the_logout_session_id_end_nothing(
    client: httpx.AsyncClient, ctx: Context, users: Users, login: Login
) -> None:
    victim = await users.signed_in()
    before = await row_counts(ctx)
    for tricky in [*TRICKY_BODY_SESSION_IDS, victim.session_id]:
        response = await client.post(f"{API}/logout", json={"session_id": tricky}, headers=login.auth)
        assert response.status_code in (400, 404), (tricky, response.text)
    assert await row_counts(ctx) == before
    assert (await me(client, login.access)).status_code == 200
    assert (await me(client, victim.access)).status_code == 200
    assert (await refresh(client, victim.refresh, victim.session_id)).status_code == 200


# --------------------------------------------------------------------------- every protected route


async def protected_operations(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Every operation of the OpenAPI schema that declares a security requirement, with its path filled in."""
    document = (await client.get("/openapi.json")).json()
    fill = {"session_id": "c" * 64, "user_id": "1", "userId": "1", "sessionId": "c" * 64, "passkey_id": "1"}
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security"):
                found.append((method.upper(), path.format(**fill)))
    return found


async def call(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH", "DELETE") else {}
    if path.endswith("/introspect"):  # RFC 7662: a form
        body = {"data": {"token": "any"}}
    return await client.request(method, path, headers=headers, **body)


async def test_the_schema_marks_exactly_the_routes_that_need_a_token(client: httpx.AsyncClient) -> None:
    """A new route cannot be forgotten: each operation that answers 401 without a token declares security in
    the schema, and each that declares it answers 401 (so the test below covers every protected route)."""
    protected = set(await protected_operations(client))
    assert len(protected) >= 10, protected
    document = (await client.get("/openapi.json")).json()
    for path, item in document["paths"].items():
        for method in item:
            target = (method.upper(), path.format(session_id="c" * 64, user_id="1", passkey_id="1"))
            if target[1].endswith("/refresh") or target[1].endswith("/revoke"):
                continue  # they take a refresh token (body or form), never an access token
            response = await call(client, *target, None)
            assert (response.status_code == 401) == (target in protected), (target, response.status_code)


Ending = Callable[[httpx.AsyncClient, Users, Login, Context], Awaitable[None]]


async def _logout(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    assert (await client.post(f"{API}/logout", json={}, headers=victim.auth)).status_code == 200


async def _logout_everywhere_elsewhere(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    other = await users.login(victim.email)
    response = await client.post(f"{API}/logout", json={"logout_all": True}, headers=other.auth)
    assert response.status_code == 200


async def _revoked_from_another_session(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    other = await users.login(victim.email)
    assert (await client.delete(f"{API}/sessions/{victim.session_id}", headers=other.auth)).status_code == 200


async def _others_revoked(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    other = await users.login(victim.email)
    assert (await client.delete(f"{API}/sessions", headers=other.auth)).status_code == 200


async def _password_changed_elsewhere(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    other = await users.login(victim.email)
    body = {"current_password": PASSWORD, "new_password": "an entirely new password"}
    assert (await client.post(f"{API}/password", json=body, headers=other.auth)).status_code == 200


async def _refresh_token_revoked(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    assert (await client.post(f"{API}/revoke", data={"token": victim.refresh})).status_code == 200


async def _access_token_revoked(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    assert (await client.post(f"{API}/revoke", data={"token": victim.access})).status_code == 200


async def _refresh_token_reused(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    first = await refresh(client, victim.refresh, victim.session_id)
    assert first.status_code == 200
    second = await refresh(client, first.json()["data"]["refresh"]["token"], victim.session_id)
    assert second.status_code == 200
    assert (await refresh(client, victim.refresh, victim.session_id)).status_code == 401  # a grandparent


async def _admin_revoked_all(client: httpx.AsyncClient, users: Users, victim: Login, ctx: Context) -> None:
    admin = await users.signed_in()
    async with ctx.db.write() as conn:
        await conn.execute(update(users_table).where(users_table.c.id == admin.user_id).values(role="admin"))
    response = await client.delete(f"/api/v1/admin/users/{victim.user_id}/sessions", headers=admin.auth)
    assert response.status_code == 200, response.text


ENDINGS: dict[str, Ending] = {
    "logout": _logout,
    "logout everywhere from another session": _logout_everywhere_elsewhere,
    "revoked from another session": _revoked_from_another_session,
    "other sessions revoked": _others_revoked,
    "password changed in another session": _password_changed_elsewhere,
    "refresh token revoked (RFC 7009)": _refresh_token_revoked,
    "access token revoked (RFC 7009)": _access_token_revoked,
    "refresh token reused": _refresh_token_reused,
    "administrator revoked every session": _admin_revoked_all,
}


@pytest.mark.parametrize("ending", ENDINGS)
async def test_every_protected_route_refuses_the_access_token_of_an_ended_session_at_once(
    client: httpx.AsyncClient, ctx: Context, users: Users, ending: str
) -> None:
    victim = await users.signed_in()
    operations = await protected_operations(client)
    for method, path in operations:  # the control: the token is good everywhere before
        assert (await call(client, method, path, victim.access)).status_code != 401, (method, path)
        if (method, path) == ("POST", f"{API}/logout"):
            victim = await users.login(victim.email)  # that one ended the session: start again
    await ENDINGS[ending](client, users, victim, ctx)
    for method, path in operations:
        response = await call(client, method, path, victim.access)
        assert response.status_code == 401, (ending, method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
        assert response.json() == REFUSED, (method, path)


@pytest.mark.live
def test_a_live_server_answers_oversized_or_malformed_headers_with_a_4xx_and_keeps_serving(
    tmp_path: Path, database_url: str
) -> None:
    """Through a real HTTP parser (uvicorn): a megabyte Authorization header or hundreds of headers are a 401
    (refused on length before any parsing), a header line split by a bare LF is a 400 from the parser, and the
    server answers normally afterwards."""
    server = LiveServer(tmp_path, database_url=database_url).start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            huge = client.get(f"{API}/me", headers={"authorization": "Bearer " + "a" * 1_000_000})
            assert huge.status_code == 401, huge.text
            assert huge.headers["www-authenticate"].startswith("Bearer")
            many = client.get(f"{API}/me", headers={f"x-filler-{i}": "v" * 100 for i in range(500)})
            assert many.status_code == 401, many.text
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nSet-Cookie: planted=1\r\n\r\n")
            answer = raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert b"planted" not in answer
        assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


# --------------------------------------------------------------------------- more lines of the checklist


async def test_two_authorization_headers_are_400_whichever_comes_first(client: httpx.AsyncClient, login: Login) -> None:
    """Ambiguous credentials (SEC-53, FZ-04): refused, never "the first one wins"."""
    for pair in ([login.access, "garbage"], ["garbage", login.access], [login.access, login.access]):
        headers = [("authorization", f"Bearer {token}") for token in pair]
        response = await client.get(f"{API}/me", headers=headers)
        assert response.status_code == 400, (pair, response.text)
        assert response.json()["errors"][0]["field"] == "authorization"
    assert (await me(client, login.access)).status_code == 200


async def test_answers_that_carry_tokens_or_sessions_are_never_cached(client: httpx.AsyncClient, users: Users) -> None:
    """RFC 6749 §5.1 (SEC-05): ``Cache-Control: no-store``."""
    email = await users.register()
    login = await client.post(f"{API}/login", json={"email": email, "password": PASSWORD})
    data = login.json()["data"]
    auth = {"authorization": f"Bearer {data['tokens']['access']['token']}"}
    answers = [
        login,
        await refresh(client, data["tokens"]["refresh"]["token"], data["session"]["id"]),
        await client.get(f"{API}/sessions", headers=auth),
        await client.get(f"{API}/me", headers=auth),
        await client.get(f"{API}/events", headers=auth),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store", answer.request.url


async def test_no_other_origin_is_granted_cross_origin_access(client: httpx.AsyncClient, login: Login) -> None:
    """No CORS at all (SEC-52): a preflight from another origin, or ``null``, gets no Allow-Origin header."""
    for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
        preflight = await client.options(
            f"{API}/refresh",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers, origin
        assert "access-control-allow-credentials" not in preflight.headers, origin
        answer = await client.get(f"{API}/me", headers={**login.auth, "origin": origin})
        assert "access-control-allow-origin" not in answer.headers, origin


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": "ES256"}])
async def test_a_revoked_es256_token_stays_revoked_with_its_signature_malleated(
    client: httpx.AsyncClient, login: Login
) -> None:
    """The denylist is keyed on ``jti``, not on the token's bytes (SEC-18): ``(r, n - s)`` verifies as well
    as ``(r, s)``, and it is refused all the same once the token is revoked."""
    head, body, signature = login.access.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # of the P-256 group
    malleated = f"{head}.{body}.{b64url(r.to_bytes(32, 'big') + (order - s).to_bytes(32, 'big'))}"
    assert malleated != login.access
    assert (await me(client, malleated)).status_code == 200  # it does verify: the same token to the service
    assert (await client.post(f"{API}/revoke", data={"token": login.access})).status_code == 200
    await refused(client, login.access)
    await refused(client, malleated)
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200  # only that token ended


async def test_nul_characters_in_strings_that_reach_the_database_are_400_on_every_backend(
    client: httpx.AsyncClient, ctx: Context, users: Users, login: Login
) -> None:
    """PostgreSQL text cannot hold U+0000 (JSON can carry it escaped): it was a 500 there, found by
    test_path_tricks_as_the_logout_session_id_end_nothing. Now refused up front, alike on both backends."""
    email = await users.register()
    before = await row_counts(ctx)
    nul = "\u0000" * 12
    cases = [
        ("POST", "/login", {"email": f"a{nul}@example.com", "password": PASSWORD}, {}, "email"),
        ("POST", "/register", {"email": "nul@example.com", "password": PASSWORD, "name": nul}, {}, "name"),
        ("POST", "/refresh", {"refresh_token": login.refresh, "session_id": nul}, {}, "session_id"),
        ("POST", "/refresh", {"refresh_token": nul, "session_id": login.session_id}, {}, "refresh_token"),
        ("POST", "/logout", {"session_id": nul}, login.auth, "session_id"),
    ]
    for method, path, body, headers, field in cases:
        response = await client.request(method, f"{API}{path}", json=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        kind = "control" if field == "name" else "NUL"  # a name goes into mails: no control character at all
        assert response.json()["errors"] == [
            {"field": field, "message": f"{field.replace('_', ' ').capitalize()}: must not contain {kind} characters"}
        ]
    assert await row_counts(ctx) == before
    ua = await client.post(
        f"{API}/login", json={"email": email, "password": PASSWORD}, headers={"user-agent": "Firefox\u0000/133.0"}
    )
    assert ua.status_code == 200, ua.text  # a NUL in a header is dropped, not stored
    assert ua.json()["data"]["session"]["device_info"]["userAgent"] == "Firefox/133.0"
    browser = {
        "x-sessionward-client": "web",
        "cookie": f"__Secure-sessionward-refresh={login.refresh}; __Secure-sessionward-session={nul}",
    }
    assert (await client.post(f"{API}/refresh", headers=browser)).status_code == 401
    assert (await refresh(client, login.refresh, login.session_id)).status_code == 200  # nothing was burnt
