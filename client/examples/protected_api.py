"""A service of your own that accepts sessionward access tokens, checked locally (no call per request).

    pip install 'sessionward-client[jwt]'
    JWT_ALGORITHM=EdDSA sessionward serve --port 8000      # asymmetric keys: the JWKS is public
    python examples/protected_api.py --server http://127.0.0.1:8000 --port 8001

then ``python examples/keep_calling.py --api http://127.0.0.1:8001/hello ...``. Standard library HTTP
server only, to keep the example small; in FastAPI or Flask the check is the same two lines.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sessionward_client import AccessTokenVerifier, InvalidAccessToken


def serve(server: str, port: int) -> None:
    verifier = AccessTokenVerifier(server)  # fetches the JWKS once, again on a new key id

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            try:
                claims = verifier.verify_access_token(token)
            except InvalidAccessToken:
                self._answer(401, {"message": "Invalid or expired token"}, {"WWW-Authenticate": "Bearer"})
                return
            self._answer(200, {"hello": f"user {claims.user_id}", "session": claims.session_id[:8]})

        def _answer(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"protected API on http://127.0.0.1:{port}/hello, trusting {server}")
    httpd.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=8001)
    arguments = parser.parse_args()
    serve(arguments.server, arguments.port)
