"""Sign in once, then keep calling an API for an hour without signing in again.

    SESSIONWARD_PASSWORD=... python examples/keep_calling.py --server http://127.0.0.1:8000 --email you@example.com

The tokens live in a file (mode 0600): run the script again and it continues the same session without
asking for the password. The access token (15 minutes by default) is refreshed shortly before it
expires, and once more if the API answers 401; each refresh is logged. ``--api`` is any URL that accepts
sessionward access tokens (default: the service's own ``/api/v1/auth/me``; see ``protected_api.py``).
Try it quickly with a server started as ``ACCESS_TOKEN_EXPIRES_IN=20s sessionward serve`` and ``--minutes 2``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from pathlib import Path

import httpx

from sessionward_client import FileTokenStore, MfaRequired, SessionRevoked, SessionwardClient, SessionwardError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="the sessionward service")
    parser.add_argument("--email", help="needed only when not signed in yet")
    parser.add_argument("--api", help="the URL to call (default: the service's /api/v1/auth/me)")
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to keep calling")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between calls")
    parser.add_argument(
        "--token-file", type=Path, default=Path("~/.cache/sessionward-example/tokens.json"), help="the token store"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # keep the refreshes visible, not every request
    url = args.api or f"{args.server.rstrip('/')}/api/v1/auth/me"

    with SessionwardClient(args.server, store=FileTokenStore(args.token_file)) as client:
        if client.signed_in:
            print(f"continuing session {client.session_id!s:.8}… from {args.token_file}")
        else:
            if not args.email:
                parser.error("not signed in yet: give --email")
            password = os.environ.get("SESSIONWARD_PASSWORD") or getpass.getpass(f"password for {args.email}: ")
            try:
                result = client.login(args.email, password)
                if isinstance(result, MfaRequired):  # two-step verification is on: the code of the app
                    result = client.login_mfa(result.challenge, totp=input("authenticator code: ").strip())
            except SessionwardError as error:
                print(f"sign-in failed: {error.message}", file=sys.stderr)
                return 1
            print(f"signed in as {result.user.email}, session {result.session_id:.8}…")

        # Any httpx client can carry the session: client.auth adds the token and refreshes it.
        with httpx.Client(auth=client.auth, timeout=10) as api:
            deadline = time.monotonic() + args.minutes * 60
            calls = 0
            while time.monotonic() < deadline:
                try:
                    answer = api.get(url)
                except SessionRevoked:
                    print("the session was ended elsewhere (logout, revocation or reuse): sign in again")
                    return 2
                except httpx.TransportError as error:
                    print(f"network error: {error!r}; trying again")
                else:
                    calls += 1
                    print(f"call {calls}: {answer.status_code}")
                time.sleep(min(args.every, max(0.0, deadline - time.monotonic())))
    print(f"done: {calls} calls, signed in once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
