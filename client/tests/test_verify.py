"""verify_access_token: a resource server checks sessionward tokens locally with the JWKS."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from conftest import PASSWORD, Server, register
from sessionward_client import (
    AccessTokenVerifier,
    InvalidAccessToken,
    ServiceUnavailable,
    SessionwardClient,
    verify_access_token,
)

ISS = AUD = "sessionward"


@pytest.fixture
def signed_in(server: Server, email: str) -> Iterator[SessionwardClient]:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        client.login(email, PASSWORD)
        yield client


def _access(client: SessionwardClient) -> str:
    tokens = client.tokens
    assert tokens is not None
    return tokens.access_token


def test_a_token_of_the_live_server_verifies_locally_with_its_claims(
    server: Server, signed_in: SessionwardClient
) -> None:
    claims = AccessTokenVerifier(server.base_url).verify_access_token(_access(signed_in))
    assert claims.user_id == signed_in.me().id
    assert claims.session_id == signed_in.session_id
    assert claims.issuer == ISS
    assert claims.expires_at > claims.issued_at


def test_the_module_function_verifies_with_a_shared_cached_verifier(
    server: Server, signed_in: SessionwardClient
) -> None:
    assert verify_access_token(_access(signed_in), server.base_url).session_id == signed_in.session_id
    assert verify_access_token(_access(signed_in), server.base_url + "/").session_id == signed_in.session_id


async def test_the_async_variant_verifies_too(server: Server, signed_in: SessionwardClient) -> None:
    claims = await AccessTokenVerifier(server.base_url).averify_access_token(_access(signed_in))
    assert claims.session_id == signed_in.session_id


def _resign(
    token: str, key: Any, *, algorithm: str = "EdDSA", header: dict[str, Any] | None = None, **claims: Any
) -> str:
    original = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.encode(
        {**original, **claims}, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": kid, **(header or {})}
    )


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda s, t: s.expired_copy(t), id="expired"),
        pytest.param(lambda s, t: _resign(t, ed25519.Ed25519PrivateKey.generate()), id="signed by another key"),
        pytest.param(lambda s, t: _resign(t, s.signing_key, aud="another-service"), id="another audience"),
        pytest.param(lambda s, t: _resign(t, s.signing_key, iss="someone-else"), id="another issuer"),
        pytest.param(lambda s, t: _resign(t, s.signing_key, sub="admin"), id="sub not a user id"),
        pytest.param(lambda s, t: _resign(t, s.signing_key, header={"typ": "JWT"}), id="not typed at+jwt"),
        pytest.param(lambda s, t: _resign(t, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256"), id="HS256"),
        pytest.param(lambda s, t: _resign(t, s.signing_key, header={"kid": "unknown"}), id="unknown kid"),
        pytest.param(lambda s, t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), id="tampered"),
        pytest.param(lambda s, t: "not a token", id="garbage"),
    ],
)
def test_a_token_that_is_not_a_valid_access_token_of_the_service_is_refused(
    server: Server, signed_in: SessionwardClient, forge: Any
) -> None:
    with pytest.raises(InvalidAccessToken):
        AccessTokenVerifier(server.base_url).verify_access_token(forge(server, _access(signed_in)))


def _jwk(key: ed25519.Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


def _token(key: ed25519.Ed25519PrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "7", "sid": "s" * 64, "jti": "j", "iat": now, "exp": now + 900}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": kid})


class KeyService:
    """A JWKS endpoint whose keys the test changes (a key rotation), and a clock the test moves."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.now = 1000.0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(200, json={"keys": self.keys}, headers={"cache-control": "public, max-age=300"})

    def verifier(self) -> AccessTokenVerifier:
        return AccessTokenVerifier(
            "https://auth.example.test", transport=httpx.MockTransport(self.handler), monotonic=lambda: self.now
        )


def test_the_key_set_is_cached_and_refetched_once_for_an_unknown_kid() -> None:
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    keys = KeyService()
    keys.keys = [_jwk(old, "old")]
    verifier = keys.verifier()
    for _ in range(3):
        verifier.verify_access_token(_token(old, "old"))
    assert keys.requests == 1
    keys.keys = [_jwk(old, "old"), _jwk(new, "new")]  # the service rotated its key
    verifier.verify_access_token(_token(new, "new"))
    assert keys.requests == 2
    with pytest.raises(InvalidAccessToken):  # made-up kids do not make it fetch again at once
        verifier.verify_access_token(_token(new, "made-up"))
    assert keys.requests == 2
    keys.now += 10
    with pytest.raises(InvalidAccessToken):
        verifier.verify_access_token(_token(new, "made-up-later"))
    assert keys.requests == 3


def test_the_key_set_is_fetched_again_after_max_age_and_kept_if_the_service_is_down() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    keys = KeyService()
    keys.keys = [_jwk(key, "k")]
    verifier = keys.verifier()
    verifier.verify_access_token(_token(key, "k"))
    keys.now += 299
    verifier.verify_access_token(_token(key, "k"))
    assert keys.requests == 1
    keys.now += 2
    keys.down = True
    verifier.verify_access_token(_token(key, "k"))  # stale keys beat no keys
    assert keys.requests == 2


def test_no_key_set_at_all_raises_service_unavailable() -> None:
    keys = KeyService()
    keys.down = True
    with pytest.raises(ServiceUnavailable):
        keys.verifier().verify_access_token(_token(ed25519.Ed25519PrivateKey.generate(), "k"))


def test_without_pyjwt_the_verifier_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError, match=r"sessionward-client\[jwt\]"):
        AccessTokenVerifier("https://auth.example.test").verify_access_token("a.b.c")


def test_an_api_of_ones_own_accepts_the_tokens_and_the_client_refreshes_on_its_401(
    server: Server, signed_in: SessionwardClient
) -> None:
    """The whole story: a resource server verifying locally, a client attaching SessionwardAuth to it."""
    verifier = AccessTokenVerifier(server.base_url)

    def orders_api(request: httpx.Request) -> httpx.Response:
        try:
            claims = verifier.verify_access_token(request.headers.get("authorization", "").removeprefix("Bearer "))
        except InvalidAccessToken:
            return httpx.Response(401, headers={"www-authenticate": "Bearer"})
        return httpx.Response(200, json={"orders": [], "user": claims.user_id})

    tokens = signed_in.tokens
    assert tokens is not None
    signed_in.auth.set_tokens(replace(tokens, access_token=server.expired_copy(tokens.access_token)))
    before = server.refreshes()
    with httpx.Client(transport=httpx.MockTransport(orders_api), auth=signed_in.auth) as api:
        answer = api.get("https://orders.example.test/orders")
    assert answer.status_code == 200
    assert answer.json()["user"] == signed_in.me().id
    assert server.refreshes() - before == 1
