"""How long the stronger sign-ins take on the server: `POST /login/mfa` with a TOTP code, `POST /passkeys/login`
with a passkey (the software authenticator of the tests), next to the password stage `POST /login` of the same
users. One `sessionward serve` (one worker, SQLite in a temporary folder, production argon2 parameters), one
client at a time, --users sign-ins of each kind; prints p50, p90 and max of each, in milliseconds.

    .venv/bin/python bench/stronger_signin.py [--users 100] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyotp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import authenticator  # noqa: E402

API = "/api/v1/auth"
PASSWORD = "bench password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(folder: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(folder / "var"),
        "JWT_SECRET": "bench-secret-with-at-least-32-bytes-of-entropy",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "RATE_LIMIT_ENABLED": "false",
        "CLEANUP_SCHEDULE": "off",
        "NEW_DEVICE_ALERTS": "false",
        "ENV": "production",
    }
    command = [str(ROOT / ".venv/bin/sessionward"), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def timed(client: httpx.Client, path: str, json: object, times: list[float]) -> httpx.Response:
    started = time.perf_counter()
    response = client.post(f"{API}{path}", json=json)
    times.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200, response.text
    return response


def report(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"{label:28s} p50 {statistics.median(ordered):6.1f} ms  p90 {p90:6.1f} ms  max {ordered[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sessionward-signin-"))
    port = free_port()
    server = start(folder, args.database_url or f"sqlite:///{folder / 'sessionward.db'}", port)
    origin = f"http://127.0.0.1:{port}"
    password_times: list[float] = []
    mfa_times: list[float] = []
    passkey_times: list[float] = []
    try:
        with httpx.Client(base_url=origin, timeout=30) as client:
            secrets, credentials = [], []
            for n in range(args.users):  # half with an authenticator app, half with a passkey
                email = f"bench{n}@example.com"
                client.post(f"{API}/register", json={"email": email, "password": PASSWORD})
                token = client.post(f"{API}/login", json={"email": email, "password": PASSWORD}).json()
                auth = {"authorization": f"Bearer {token['data']['tokens']['access']['token']}"}
                secret = client.post(f"{API}/mfa/totp", headers=auth).json()["data"]["secret"]
                code = {"code": pyotp.TOTP(secret).now()}
                confirmed = client.post(f"{API}/mfa/totp/confirm", json=code, headers=auth).json()["data"]
                auth = {"authorization": f"Bearer {confirmed['access']['token']}"}  # two factors now: step-up met
                options = client.post(f"{API}/passkeys/register/options", headers=auth).json()["data"]
                credential, created = authenticator.create(options, origin=origin)
                assert client.post(f"{API}/passkeys/register", json=created, headers=auth).status_code == 201
                secrets.append((email, pyotp.TOTP(secret)))
                credentials.append(credential)
            time.sleep(31)  # the codes of enrolment's time step are spent
            for email, totp in secrets:
                first = timed(client, "/login", {"email": email, "password": PASSWORD}, password_times)
                challenge = first.json()["data"]["challenge"]
                timed(client, "/login/mfa", {"challenge": challenge, "totp": totp.now()}, mfa_times)
            for credential in credentials:
                options = client.post(f"{API}/passkeys/login/options", json={}).json()["data"]
                timed(client, "/passkeys/login", authenticator.get(credential, options, origin=origin), passkey_times)
    finally:
        server.terminate()
        server.wait()
    print(f"{args.users} sign-ins of each kind, one client, one worker, {args.database_url or 'SQLite'}")
    print(report("POST /login (password stage)", password_times))
    print(report("POST /login/mfa (TOTP)", mfa_times))
    print(report("POST /passkeys/login", passkey_times))


if __name__ == "__main__":
    main()
