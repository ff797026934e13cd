"""How a mail leaves: SMTP (``SMTP_URL``, with aiosmtplib) or, without it, ``.eml`` files in ``DATA_DIR/mail/``.

A transport opens a session for a batch (one SMTP connection for many mails) and answers each send with a
sentence for the record; it raises ``Refused`` when the server refuses one mail (a 4xx may pass, a 5xx will
not) and ``Unreachable`` when no mail can go now (connection, TLS, time-out, login).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from sessionward.config import Settings

SMTP_TIMEOUT_SECONDS = 60.0  # a slow server (30 s to answer) is waited for, not given up on


class Refused(Exception):
    """The server refused this mail. ``permanent``: a 5xx, not retried."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.permanent = code >= 500


class Unreachable(Exception):
    """No mail can be delivered now; every mail of the batch is retried later."""


class Session(Protocol):
    async def send(self, message: EmailMessage) -> str: ...


class Transport(Protocol):
    description: str

    def session(self) -> AbstractAsyncContextManager[Session]: ...


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SmtpSession:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self._client = client
        self._connected = False

    async def send(self, message: EmailMessage) -> str:
        try:
            if not self._connected:
                await self._client.connect()
                self._connected = True
            _, reply = await self._client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            raise Refused(refused.code, refused.message) from None
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPSenderRefused) as exc:
            # The login or MAIL_FROM refused: no mail can go until the configuration is fixed, none is given up on.
            raise Unreachable(f"{exc.code} {exc.message}") from None
        except aiosmtplib.SMTPDataError as exc:
            raise Refused(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._connected = False
            raise Unreachable(type(exc).__name__) from None
        return reply

    async def close(self) -> None:
        if self._connected:
            with suppress(aiosmtplib.SMTPException, OSError):
                await self._client.quit()


class SmtpTransport:
    """``smtps://`` is TLS from the start; ``smtp://`` upgrades with STARTTLS when the server offers it, and must
    when it sends credentials to a host other than this machine (a local relay may speak plain SMTP)."""

    def __init__(self, url: str, *, ca_file: Path | None = None) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        implicit = parts.scheme == "smtps"
        self._port = parts.port or (465 if implicit else 587)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._use_tls = implicit
        must_upgrade = self._username is not None and not _loopback(self._host)
        self._start_tls = None if implicit else (True if must_upgrade else None)
        self._ca_file = str(ca_file) if ca_file else None
        self.description = f"{parts.scheme}://{self._host}:{self._port}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._use_tls,
            start_tls=False if self._use_tls else self._start_tls,
            timeout=SMTP_TIMEOUT_SECONDS,
            cert_bundle=self._ca_file,
        )
        session = SmtpSession(client)
        try:
            yield session
        finally:
            await session.close()


class FileSession:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def send(self, message: EmailMessage) -> str:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:24] + ".eml"
        path = self._folder / name
        try:
            path.write_bytes(bytes(message))
        except OSError as exc:
            raise Unreachable(f"cannot write {path}: {exc.strerror}") from None
        return f"written to {path}"


class FileTransport:
    """Mails as ``.eml`` files, one per Message-ID (a mail sent again overwrites its own file)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.description = f"files in {folder}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        yield FileSession(self._folder)


def transport_for(settings: Settings) -> SmtpTransport | FileTransport:
    if settings.smtp_url is None:
        return FileTransport(settings.data_dir / "mail")
    return SmtpTransport(settings.smtp_url.get_secret_value(), ca_file=settings.smtp_ca_file)
