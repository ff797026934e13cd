"""The web pages as files: served from the package with strict headers, self-contained, no inline code."""

from __future__ import annotations

import re

import httpx
import pytest

from sessionward.web.routes import ASSETS

PAGES = ["/", "/signin", "/signup"]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_one_html_document_with_strict_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<h1 id="signin-title">Sign in</h1>' in response.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("sessionward.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served_with_their_type_and_an_etag(
    client: httpx.AsyncClient, name: str, media_type: str
) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "no-cache"
    assert "content-security-policy" in response.headers
    again = await client.get(f"/static/{name}", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("name", ["nope.js", "index.html", "..%2Fapp.py", "%2e%2e%2f__init__.py"])
async def test_unknown_static_files_are_a_404_envelope(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.json()["status"] == "fail"


def test_the_pages_load_nothing_from_another_origin_and_run_no_inline_code() -> None:
    html = ASSETS["index.html"].body.decode()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/static/app.js">']
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    for asset in ASSETS.values():
        text = asset.body.decode()
        urls = re.findall(r"https?://[^\s\"')]+", text)
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (urls, asset)


def test_the_scripts_keep_tokens_out_of_web_storage_and_cookies() -> None:
    for name in ("app.js", "sessionward.js"):
        text = ASSETS[name].body.decode()
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)  # the comments may name what the code avoids
        for forbidden in ("localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("):
            assert forbidden not in code, (name, forbidden)


async def test_the_pages_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {"/", "/signin", "/signup", "/static/{name}"} & set(paths)
