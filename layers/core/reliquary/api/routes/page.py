"""The approval page: ``GET /approve`` (HTML) and ``GET /approve/app.js``, served without a token.

The page is static (``reliquary/api/static``, package data shipped in the CoreLayer); everything it shows
comes from the API with the person's session token, which lives in the script's memory only
(docs/approval-page.md). The headers make it hard to misuse: a Content-Security-Policy that runs this
script and nothing inline (the one inline style block is allowed by its hash), talks to this origin
only and cannot be framed; nothing is cached (an enrollment link's page must not be replayed from a
shared cache, and an old script must not outlive a fix). Not in the OpenAPI document: a page, not an
operation."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter()

_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


def _read(name: str) -> bytes:
    return resources.files("reliquary.api").joinpath("static", name).read_bytes()


@functools.cache
def page() -> Asset:
    return Asset(_read("approve.html"), "text/html; charset=utf-8")


@functools.cache
def script() -> Asset:
    return Asset(_read("app.js"), "text/javascript; charset=utf-8")


@functools.cache
def content_security_policy() -> str:
    """The page's policy. Its inline ``<style>`` is allowed by hash (exactly one block: a second one, or
    a changed one without this hash, would not apply, and the browser test would see it)."""
    blocks = _STYLE.findall(page().body)
    if len(blocks) != 1:
        raise RuntimeError("the approval page must have exactly one <style> block")
    style = base64.b64encode(hashlib.sha256(blocks[0]).digest()).decode("ascii")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'sha256-{style}'",
            "connect-src 'self'",
            "img-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            # No data is ever parsed as markup: the DOM's HTML sinks (innerHTML, document.write) throw.
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


def _serve(asset: Asset) -> Response:
    return Response(content=asset.body, media_type=asset.media_type, headers=_headers())


@router.get("/approve", include_in_schema=False)
def approval_page() -> Response:
    """The page: enrollment (``#enroll=<token>``), passkey sign-in, the requests waiting for a person."""
    return _serve(page())


@router.get("/approve/app.js", include_in_schema=False)
def approval_script() -> Response:
    return _serve(script())
