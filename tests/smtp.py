"""A real SMTP server for the mail tests (aiosmtpd, in a thread of its own): plain, STARTTLS with a login, or
implicit TLS; it can refuse (4xx, 5xx), answer slowly, or be stopped and started again on its port."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import free_port

USER, SECRET = "mailer", "mail-password"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Inbox:
    """What the server received, and how it answers the next mails."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: str | None = None  # e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.refuse:
            return self.refuse
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 OK queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} mails arrived, expected {count}")


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == SECRET.encode()
    return AuthResult(success=ok)


class SmtpServer:
    """``mode``: ``plain`` (a local relay), ``starttls`` (login required, only after STARTTLS) or ``tls``."""

    def __init__(self, folder: Path, mode: str = "plain") -> None:
        self.inbox = Inbox()
        self.mode = mode
        self.port = free_port()
        self.cert, key = self_signed(folder)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(self.cert, key)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        if self.mode == "starttls":
            return f"smtp://{USER}:{SECRET}@127.0.0.1:{self.port}"
        return f"{'smtps' if self.mode == 'tls' else 'smtp'}://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.mode == "starttls":
            kwargs = {"tls_context": self._tls, "require_starttls": True, "auth_required": True}
            kwargs["authenticator"] = _authenticate
        elif self.mode == "tls":
            kwargs = {"ssl_context": self._tls}
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


LINK = re.compile(r"(https?://\S+#(?:token|change)=[A-Za-z0-9_-]+)")


def link_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def token_in(message: EmailMessage) -> str:
    return link_in(message).rpartition("=")[2]
