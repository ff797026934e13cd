"""An app's own API that accepts sessionward access tokens and refuses a revoked session's within a second.

    pip install 'sessionward-client[jwt]' fastapi uvicorn
    JWT_ALGORITHM=EdDSA sessionward serve --port 8000
    sessionward service-keys create --name my-api --scope sessions:read     # prints swk_...
    python examples/app_backend.py --server http://127.0.0.1:8000 --key swk_... --port 8001

``GET /hello`` answers the caller's user and session. ``--style dependency`` checks tokens with the FastAPI
dependency, ``--style middleware`` with the plain ASGI middleware (any ASGI app). Each request is checked
locally: the signature against the service's JWKS, the session against the revocation stream kept open in
a thread. No call to sessionward per request.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, some of them local.
import argparse
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, Request

from sessionward_client import (
    AccessTokenClaims,
    AccessTokenMiddleware,
    AccessTokenVerifier,
    RevocationSubscription,
    access_token_dependency,
)


def build(server: str, key: str, style: str) -> FastAPI:
    revocations = RevocationSubscription(server, key, max_stale=5.0).start()
    verifier = AccessTokenVerifier(server, revocations=revocations)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": revocations.wait_until_connected(0)}

    if style == "dependency":
        Claims = Annotated[AccessTokenClaims, Depends(access_token_dependency(verifier))]

        @app.get("/hello")
        async def hello(claims: Claims) -> dict[str, object]:
            return {"user": claims.user_id, "session": claims.session_id}

    else:
        app.add_middleware(AccessTokenMiddleware, verifier=verifier, exempt={"/healthz"})

        @app.get("/hello")
        async def hello_plain(request: Request) -> dict[str, object]:
            claims: AccessTokenClaims = request.state.sessionward
            return {"user": claims.user_id, "session": claims.session_id}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="a service key with the scope sessions:read")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--style", choices=["dependency", "middleware"], default="dependency")
    arguments = parser.parse_args()
    uvicorn.run(build(arguments.server, arguments.key, arguments.style), host="127.0.0.1", port=arguments.port)
