"""A webhook receiver of the app's, for the tests: a real HTTP server verifying each delivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.live import free_port


@dataclass
class Receiver:
    """An HTTP endpoint of the app's: verifies each delivery with the Standard Webhooks library."""

    port: int
    secret: str = ""
    answer: int = 204  # 500 (fails), 302 (a redirect), or 204
    slow_seconds: float = 12.0  # how long its /slow path takes to answer: past the sender's 10 s timeout
    received: list[dict[str, Any]] = field(default_factory=list)  # verified deliveries: id, body
    attempts: list[str] = field(default_factory=list)  # every attempt's webhook-id, verified or not

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def take(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if path == "/slow":
            time.sleep(self.slow_seconds)
            return 204
        self.attempts.append(headers.get("webhook-id", ""))
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return 400
        if self.answer < 300:
            self.received.append({"id": headers["webhook-id"], **payload})
        return self.answer


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening on a port of 127.0.0.1 until the block ends."""
    state = Receiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            status = state.take(self.path, body, {key.lower(): value for key, value in self.headers.items()})
            self.send_response(status)
            if status == 302:
                self.send_header("location", state.url)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
