"""What each mail says: a text and an HTML part from templates (``mail/templates/NAME.txt`` and ``NAME.html``),
any of which a deployer may replace with a file of the same name in ``MAIL_TEMPLATES_DIR``.

A ``.txt`` template's first line is ``Subject: ...``. HTML is escaped (Jinja2's autoescape); headers are set
through the standard library's ``email`` policy, which refuses a value with a line break in it.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape

from sessionward.config import Settings


class Messages:
    def __init__(self, settings: Settings) -> None:
        loaders: list[Any] = [PackageLoader("sessionward.mail", "templates")]
        if settings.mail_templates_dir is not None:
            loaders.insert(0, FileSystemLoader(settings.mail_templates_dir))
        self._env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._settings = settings

    def compose(
        self, *, template: str, to: str, message_id: str, date: datetime, params: dict[str, Any]
    ) -> EmailMessage:
        values = {"public_url": self._settings.public_url, "to": to, **params}
        subject_line, _, text = self._env.get_template(f"{template}.txt").render(values).partition("\n")
        html = self._env.get_template(f"{template}.html").render(values)
        message = EmailMessage(policy=SMTP)
        message["From"] = self._settings.mail_from
        message["To"] = to
        message["Subject"] = subject_line.removeprefix("Subject:").strip()
        message["Date"] = format_datetime(date)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        message.set_content(text.lstrip("\n"))
        message.add_alternative(html, subtype="html")
        return message
