"""The import file, read as JSON Lines: one user per line, each line checked on its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from pydantic import ValidationError

from sessionward.users.models import ImportedUser

LINE_LIMIT_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"


class Rejected(ValueError):
    """Why one line is not imported: a sentence that never quotes the line (it holds a password hash)."""


def _reason(exc: ValidationError) -> str:
    """The first error, by field; pydantic's ``msg`` never holds the input (``str(exc)`` would)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "json_invalid":
        return "not valid JSON" + message.removeprefix("Invalid JSON").replace(" at line 1 ", " at ")
    field = ".".join(str(part) for part in error["loc"])
    return f"{field}: {message}" if field else message


def parse(data: bytes) -> ImportedUser:
    """One line's bytes as an entry, or ``Rejected`` with the reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(f"not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        return ImportedUser.model_validate_json(text)
    except ValidationError as exc:
        raise Rejected(_reason(exc)) from None


def read_lines(stream: IO[bytes], *, limit: int = LINE_LIMIT_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, its bytes)`` for each non-blank line; ``None`` for a line longer than ``limit`` bytes,
    which is skipped without ever being held in memory whole."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            _skip_rest(stream)
            yield number, None
            continue
        if number == 1:
            line = line.removeprefix(_BOM)
        if line.strip():
            yield number, line.rstrip(b"\r\n")


def _skip_rest(stream: IO[bytes]) -> None:
    while (chunk := stream.readline(_CHUNK_BYTES)) and not chunk.endswith(b"\n"):
        pass
