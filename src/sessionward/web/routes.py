"""The web pages: one HTML document (sign in, create account, account) and its static files, from the package.

No templates and no build step: the document is static and its ES modules fill it from the JSON API. Every file
is read once at start (they are a few kilobytes) and served with an ETag and a strict Content-Security-Policy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request
from starlette.responses import Response

from sessionward.errors import not_found

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGES = ("/", "/signin", "/signup", "/forgot-password", "/reset-password", "/verify-email")
DOCUMENT = "index.html"

# No inline script or style, nothing from another origin, no framing; DOM sinks like innerHTML are refused
# outright (Trusted Types with no policy): the pages build their DOM from <template>s and textContent.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # the QR code of a TOTP enrolment (an image: no script runs in it)
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Revalidated on every load (a 304 when unchanged), so a new version is never hidden behind a cache.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, Asset]:
    assets = {}
    for entry in files("sessionward.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[entry.name] = Asset(body, _TYPES[suffix], etag)
    return assets


ASSETS = _load()
router = APIRouter(include_in_schema=False)


def _serve(request: Request, asset: Asset) -> Response:
    headers = {**HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def page(request: Request) -> Response:
    """The one document; its script shows the view that the path names (``/`` is the account page)."""
    return _serve(request, ASSETS[DOCUMENT])


for _path in PAGES:
    router.add_api_route(_path, page, methods=["GET"], include_in_schema=False)


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None or name == DOCUMENT:
        raise not_found("File")
    return _serve(request, asset)
