"""Signing keys: EdDSA / ES256 with a kid and a JWKS, rotation (function and CLI), key files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sessionward.app import create_app
from sessionward.clock import FrozenClock
from sessionward.config import Settings
from sessionward.context import Context
from sessionward.tokens import keys as keys_module
from sessionward.tokens.keys import KeysError, load_keys, rotate_keys
from tests.conftest import API, FIREFOX_LINUX, Users

ASYMMETRIC = ["EdDSA", "ES256"]
JWKS = "/.well-known/jwks.json"
PUBLISHED_AFTER_RETIREMENT = timedelta(minutes=15) + timedelta(minutes=1)


# ---------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc7638(private: Any) -> str:
    """The JWK thumbprint, computed here from the raw public key (not with the service's code)."""
    public = private.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    else:
        numbers = public.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def write_pem(path: Path, private: Any) -> Path:
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def new_key(algorithm: str) -> Any:
    return ed25519.Ed25519PrivateKey.generate() if algorithm == "EdDSA" else ec.generate_private_key(ec.SECP256R1())


def kids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_cli(*args: str, data_dir: Path, algorithm: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATA_DIR": str(data_dir), "JWT_ALGORITHM": algorithm, **env}
    return subprocess.run(
        [sys.executable, "-m", "sessionward", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def login_token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(f"{API}/login", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["tokens"]["access"]["token"]
    return token


async def me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(f"{API}/me", headers={"authorization": f"Bearer {token}"})).status_code


@pytest.fixture
async def second_process(ctx: Context, clock: FrozenClock) -> AsyncIterator[Callable[[], Any]]:
    """Builds another app on the same settings, as a freshly started worker would be."""
    built: list[Context] = []

    def start() -> httpx.AsyncClient:
        other = Context.build(ctx.settings, clock=clock)
        built.append(other)
        transport = httpx.ASGITransport(app=create_app(other), client=("203.0.113.7", 50000))
        return httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": FIREFOX_LINUX}
        )

    yield start
    for other in built:
        await other.close()


# ---------------------------------------------------------------- asymmetric algorithms over the API


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": a} for a in ASYMMETRIC], ids=ASYMMETRIC)
async def test_asymmetric_login_issues_typed_tokens_with_a_kid_published_in_the_jwks(
    client: httpx.AsyncClient, users: Users, settings_overrides: dict[str, Any]
) -> None:
    algorithm = settings_overrides["jwt_algorithm"]
    login = await users.signed_in()
    header = jwt.get_unverified_header(login.access)
    assert header["alg"] == algorithm
    assert header["typ"] == "at+jwt"
    assert await me_status(client, login.access) == 200

    response = await client.get(JWKS)
    assert response.status_code == 200
    jwks = response.json()
    assert kids(jwks) == {header["kid"]}
    (jwk,) = jwks["keys"]
    assert jwk["kty"] == ("OKP" if algorithm == "EdDSA" else "EC")
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk), "private members in the JWKS"


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": a} for a in ASYMMETRIC], ids=ASYMMETRIC)
async def test_a_third_party_verifies_the_access_token_with_the_jwks_alone(
    client: httpx.AsyncClient, users: Users, settings_overrides: dict[str, Any]
) -> None:
    algorithm = settings_overrides["jwt_algorithm"]
    login = await users.signed_in()
    jwk_set = jwt.PyJWKSet.from_dict((await client.get(JWKS)).json())
    key = jwk_set[jwt.get_unverified_header(login.access)["kid"]]
    claims = jwt.decode(login.access, key, algorithms=[algorithm], audience="sessionward", issuer="sessionward")
    assert claims["sub"] == str(login.user_id)
    assert claims["sid"] == login.session_id
    # And the same JWKS does not vouch for a token signed with any other key.
    forged = jwt.encode(claims, new_key(algorithm), algorithm=algorithm, headers={"kid": key.key_id})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key, algorithms=[algorithm], audience="sessionward", issuer="sessionward")


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": a} for a in ASYMMETRIC], ids=ASYMMETRIC)
async def test_generated_kid_is_the_rfc7638_thumbprint_and_key_files_are_private(
    client: httpx.AsyncClient, users: Users, settings_overrides: dict[str, Any], ctx: Context
) -> None:
    login = await users.signed_in()
    kid = jwt.get_unverified_header(login.access)["kid"]
    folder = ctx.settings.data_dir / "keys" / settings_overrides["jwt_algorithm"]
    pem = folder / f"{kid}.pem"
    private = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    assert rfc7638(private) == kid
    assert mode(pem) == 0o600
    assert mode(folder / "keyring.json") == 0o600


async def test_hs256_publishes_an_empty_jwks(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    assert jwt.get_unverified_header(login.access)["alg"] == "HS256"
    response = await client.get(JWKS)
    assert response.status_code == 200
    assert response.json() == {"keys": []}


def test_generated_hs256_secret_file_is_private_and_stable(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(jwt_secret=None)
    first = load_keys(settings, now=FrozenClock().now())
    path = settings.data_dir / "jwt_secret"
    assert mode(path) == 0o600
    assert len(path.read_bytes().strip()) >= 32
    assert load_keys(settings, now=FrozenClock().now()).kid == first.kid


# ---------------------------------------------------------------- rotation (function)


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_rotation_activates_a_new_kid_and_keeps_the_old_one_published_for_its_tokens_lifetime(
    make_settings: Callable[..., Settings], algorithm: str
) -> None:
    settings = make_settings(jwt_algorithm=algorithm)
    t0 = FrozenClock().now()
    before = load_keys(settings, now=t0)

    new, old = rotate_keys(settings, now=t0)

    assert old == before.kid
    assert new != old
    after = load_keys(settings, now=t0)
    assert after.kid == new
    assert kids(after.jwks()) == {new, old}
    assert (settings.data_dir / "keys" / algorithm / f"{new}.pem").exists()
    assert mode(settings.data_dir / "keys" / algorithm / f"{new}.pem") == 0o600

    just_inside = t0 + PUBLISHED_AFTER_RETIREMENT - timedelta(seconds=1)
    assert kids(load_keys(settings, now=just_inside).jwks()) == {new, old}
    just_after = t0 + PUBLISHED_AFTER_RETIREMENT + timedelta(seconds=1)
    assert kids(load_keys(settings, now=just_after).jwks()) == {new}

    newest, previous = rotate_keys(settings, now=just_after)
    assert previous == new
    ring = json.loads((settings.data_dir / "keys" / algorithm / "keyring.json").read_text())
    assert ring["active"] == newest
    assert set(ring["retired"]) == {new}, "the long-retired key is dropped from the keyring"
    assert kids(load_keys(settings, now=just_after).jwks()) == {newest, new}


def test_publication_window_follows_access_token_expires_in(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(jwt_algorithm="EdDSA", access_token_expires_in="5m")
    t0 = FrozenClock().now()
    _, old = rotate_keys(settings, now=t0)
    new, old = rotate_keys(settings, now=t0)
    assert old in kids(load_keys(settings, now=t0 + timedelta(minutes=6) - timedelta(seconds=1)).jwks())
    assert kids(load_keys(settings, now=t0 + timedelta(minutes=6, seconds=1)).jwks()) == {new}


def test_rotation_on_an_empty_data_dir_creates_the_first_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(jwt_algorithm="ES256")
    new, old = rotate_keys(settings, now=FrozenClock().now())
    assert old is None
    assert load_keys(settings, now=FrozenClock().now()).kid == new


def test_hs256_refuses_rotation_with_a_clear_message(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(KeysError, match=r"JWT_ALGORITHM=EdDSA or ES256"):
        rotate_keys(make_settings(), now=FrozenClock().now())


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_a_configured_private_key_file_refuses_rotation(
    make_settings: Callable[..., Settings], tmp_path: Path, algorithm: str
) -> None:
    pem = write_pem(tmp_path / "signing.pem", new_key(algorithm))
    settings = make_settings(jwt_algorithm=algorithm, jwt_private_key_file=pem)
    with pytest.raises(KeysError, match=r"JWT_PRIVATE_KEY_FILE"):
        rotate_keys(settings, now=FrozenClock().now())
    assert not (settings.data_dir / "keys").exists(), "nothing was generated"


# ---------------------------------------------------------------- rotation in a running app


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": "EdDSA"}])
async def test_tokens_signed_before_a_rotation_keep_working_in_running_and_new_processes(
    client: httpx.AsyncClient,
    users: Users,
    ctx: Context,
    clock: FrozenClock,
    second_process: Callable[[], httpx.AsyncClient],
) -> None:
    email = await users.register()
    old_token = await login_token(client, email)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    new_kid, retired = rotate_keys(ctx.settings, now=clock.now())
    assert retired == old_kid

    # The running app still accepts its tokens.
    assert await me_status(client, old_token) == 200
    # A process started after the rotation signs with the new key and accepts the old one.
    async with second_process() as fresh:
        assert kids((await fresh.get(JWKS)).json()) == {old_kid, new_kid}
        assert await me_status(fresh, old_token) == 200
        new_token = await login_token(fresh, email)
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid

    # Once every old token has expired, a process started then no longer publishes the old key.
    clock.advance(PUBLISHED_AFTER_RETIREMENT + timedelta(seconds=1))
    async with second_process() as later:
        assert kids((await later.get(JWKS)).json()) == {new_kid}


class _Monotonic:
    """Stands in for the ``time`` module inside sessionward.tokens.keys only: a monotonic clock we move."""

    def __init__(self, start: float) -> None:
        self.value = start

    def monotonic(self) -> float:
        return self.value


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": "ES256"}])
async def test_running_app_learns_a_new_kid_by_reloading_at_most_once_per_5_seconds(
    client: httpx.AsyncClient,
    users: Users,
    ctx: Context,
    clock: FrozenClock,
    second_process: Callable[[], httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    fake = _Monotonic(time.monotonic())
    monkeypatch.setattr(keys_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    loads = 0
    real_load = keys_module.load_keys

    def counting_load(settings: Settings, *, now: Any) -> Any:
        nonlocal loads
        loads += 1
        return real_load(settings, now=now)

    monkeypatch.setattr(keys_module, "load_keys", counting_load)

    email = await users.register()
    old_token = await login_token(client, email)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid, _ = rotate_keys(ctx.settings, now=clock.now())
    async with second_process() as fresh:
        new_token = await login_token(fresh, email)
    loads = 0

    # Just started (or just reloaded): an unknown kid does not hit the disk again.
    await me_status(client, new_token)
    assert loads == 0

    fake.value += 6
    assert await me_status(client, new_token) == 200
    assert loads == 1
    assert kids((await client.get(JWKS)).json()) == {old_kid, new_kid}
    assert await me_status(client, old_token) == 200, "the reload keeps the retired key for its tokens"
    # After the reload the running app signs with the new active key too.
    assert jwt.get_unverified_header(await login_token(client, email))["kid"] == new_kid

    # A flood of unknown kids right after costs no further reloads...
    forged = jwt.encode({"sub": "1"}, new_key("ES256"), algorithm="ES256", headers={"kid": "nope", "typ": "at+jwt"})
    for _ in range(5):
        assert await me_status(client, forged) == 401
    assert loads == 1
    # ...and one reload per interval afterwards.
    fake.value += 6
    assert await me_status(client, forged) == 401
    assert loads == 2


# ---------------------------------------------------------------- JWT_PRIVATE_KEY_FILE


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_configured_private_key_file_signs_tokens_under_its_thumbprint(
    make_settings: Callable[..., Settings], tmp_path: Path, clock: FrozenClock, algorithm: str
) -> None:
    private = new_key(algorithm)
    pem = write_pem(tmp_path / "signing.pem", private)
    settings = make_settings(jwt_algorithm=algorithm, jwt_private_key_file=pem)
    context = Context.build(settings, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(context), client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            login = await Users(client).signed_in()
            header = jwt.get_unverified_header(login.access)
            assert header["kid"] == rfc7638(private)
            claims = jwt.decode(
                login.access, private.public_key(), algorithms=[algorithm], audience="sessionward", issuer="sessionward"
            )
            assert claims["sub"] == str(login.user_id)
            assert kids((await client.get(JWKS)).json()) == {rfc7638(private)}
    finally:
        await context.close()
    assert not (settings.data_dir / "keys").exists(), "no key was generated next to the configured one"


def _p384(path: Path) -> Path:
    return write_pem(path, ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize(
    ("algorithm", "make_pem", "message"),
    [
        ("EdDSA", lambda p: write_pem(p, ec.generate_private_key(ec.SECP256R1())), "does not fit JWT_ALGORITHM=EdDSA"),
        ("ES256", lambda p: write_pem(p, ed25519.Ed25519PrivateKey.generate()), "does not fit JWT_ALGORITHM=ES256"),
        ("ES256", _p384, "does not fit JWT_ALGORITHM=ES256"),
        ("EdDSA", lambda p: (p.write_text("not a key"), p)[1], "cannot read private key"),
        ("EdDSA", lambda p: p, "cannot read private key"),  # missing file
        (
            "ES256",
            lambda p: (
                p.write_bytes(
                    ec.generate_private_key(ec.SECP256R1()).private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.BestAvailableEncryption(b"passphrase"),
                    )
                ),
                p,
            )[1],
            "cannot read private key",
        ),
        (
            "EdDSA",
            lambda p: (
                p.write_bytes(
                    ed25519.Ed25519PrivateKey.generate()
                    .public_key()
                    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                ),
                p,
            )[1],
            "cannot read private key",
        ),
    ],
    ids=["ec-for-eddsa", "ed25519-for-es256", "p384-for-es256", "garbage", "missing", "encrypted", "public-only"],
)
def test_an_unusable_private_key_file_gives_a_clear_one_line_error(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    algorithm: str,
    make_pem: Callable[[Path], Path],
    message: str,
) -> None:
    pem = make_pem(tmp_path / "signing.pem")
    settings = make_settings(jwt_algorithm=algorithm, jwt_private_key_file=pem)
    with pytest.raises(KeysError, match=message) as caught:
        Context.build(settings)
    assert "\n" not in str(caught.value)
    assert "BEGIN" not in str(caught.value)


# ---------------------------------------------------------------- the CLI


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_cli_keys_rotate_activates_a_new_key_and_keeps_the_old_one_published(
    tmp_path: Path, make_settings: Callable[..., Settings], algorithm: str
) -> None:
    data_dir = tmp_path / "var"
    settings = make_settings(jwt_algorithm=algorithm)
    first = load_keys(settings, now=FrozenClock().now()).kid

    result = run_cli("keys", "rotate", data_dir=data_dir, algorithm=algorithm)

    assert result.returncode == 0, result.stderr
    ring = json.loads((data_dir / "keys" / algorithm / "keyring.json").read_text())
    new = ring["active"]
    assert new != first
    assert new in result.stdout
    assert f"{first} stays published" in result.stdout
    loaded = load_keys(settings, now=FrozenClock().now())
    assert loaded.kid == new
    assert kids(loaded.jwks()) == {new, first}
    assert mode(data_dir / "keys" / algorithm / f"{new}.pem") == 0o600


def test_cli_keys_rotate_refuses_hs256_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli("keys", "rotate", data_dir=tmp_path / "var", algorithm="HS256")
    assert result.returncode == 2
    assert "keys rotate needs JWT_ALGORITHM=EdDSA or ES256" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_keys_rotate_refuses_a_configured_key_file(tmp_path: Path) -> None:
    pem = write_pem(tmp_path / "signing.pem", new_key("EdDSA"))
    result = run_cli("keys", "rotate", data_dir=tmp_path / "var", algorithm="EdDSA", JWT_PRIVATE_KEY_FILE=str(pem))
    assert result.returncode == 2
    assert "JWT_PRIVATE_KEY_FILE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("settings_overrides", [{"jwt_algorithm": "EdDSA"}])
async def test_running_app_signs_with_a_rotated_key_within_a_minute_without_a_restart(
    client: httpx.AsyncClient, users: Users, ctx: Context, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    fake = _Monotonic(time.monotonic())
    monkeypatch.setattr(keys_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    email = await users.register()
    old_kid = jwt.get_unverified_header(await login_token(client, email))["kid"]
    new_kid, _ = rotate_keys(ctx.settings, now=clock.now())
    assert jwt.get_unverified_header(await login_token(client, email))["kid"] == old_kid
    fake.value += 61
    assert jwt.get_unverified_header(await login_token(client, email))["kid"] == new_kid
    assert kids((await client.get(JWKS)).json()) == {old_kid, new_kid}
