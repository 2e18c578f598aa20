"""The approval page as the API serves it: without a token, with headers that keep it from running anything
but its own script, from being framed or cached; and its files, which must ship with the package and
carry no way to turn data into markup or reach another origin. (The page's behaviour is tested in a
real browser: tests/browser/test_approval_page.py.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import tomllib
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from reliquary.api.app import create_app
from reliquary.api.routes import page as page_routes
from reliquary.gateway import ApiRuntime

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "layers" / "core" / "reliquary" / "api" / "static"
HTML = (STATIC / "approve.html").read_text(encoding="utf-8")
SCRIPT = (STATIC / "app.js").read_text(encoding="utf-8")


def no_runtime() -> ApiRuntime:
    raise AssertionError("the runtime was built: the page needs none")


def call(app: FastAPI, method: str, url: str) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.request(method, url)

    loop = asyncio.new_event_loop()  # never the thread's current loop (see test_api_problems.call)
    try:
        return loop.run_until_complete(send())
    finally:
        loop.close()


def _policy(header: str) -> dict[str, str]:
    directives = [d.strip() for d in header.split(";")]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in directives}


@pytest.mark.parametrize(
    ("path", "media_type", "body"),
    [("/approve", "text/html", HTML), ("/approve/app.js", "text/javascript", SCRIPT)],
)
def test_the_page_and_its_script_are_served_without_a_token_with_strict_headers(
    path: str, media_type: str, body: str
) -> None:
    answer = call(create_app(no_runtime), "GET", path)  # no Authorization header, no runtime built
    assert answer.status_code == 200
    assert answer.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert answer.text == body
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-request-id"]  # the API's middleware saw it like any other route
    policy = _policy(answer.headers["content-security-policy"])
    assert policy == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": policy["style-src"],
        "connect-src": "'self'",
        "img-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
        "require-trusted-types-for": "'script'",
        "trusted-types": "'none'",
    }
    assert "unsafe" not in answer.headers["content-security-policy"]


def test_the_policy_allows_the_pages_one_style_block_by_its_hash_and_nothing_else() -> None:
    (style,) = re.findall(r"<style>(.*?)</style>", HTML, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert _policy(page_routes.content_security_policy())["style-src"] == f"'sha256-{digest}'"


def test_a_page_with_two_style_blocks_is_refused_rather_than_half_styled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doubled = page_routes.Asset(b"<style>a{}</style><style>b{}</style>", "text/html; charset=utf-8")
    monkeypatch.setattr(page_routes, "page", lambda: doubled)
    page_routes.content_security_policy.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="exactly one <style> block"):
            page_routes.content_security_policy()
    finally:
        page_routes.content_security_policy.cache_clear()


def test_other_methods_and_paths_under_the_page_are_refused_as_problems() -> None:
    app = create_app(no_runtime)
    assert call(app, "POST", "/approve").status_code == 405
    missing = call(app, "GET", "/approve/other.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_the_page_is_not_an_operation_of_the_openapi_document() -> None:
    paths = create_app(no_runtime).openapi()["paths"]
    assert not [p for p in paths if p.startswith("/approve")]


# ---------------------------------------------------------------------------------- the files themselves
def test_the_html_runs_no_inline_script_and_loads_nothing_from_elsewhere() -> None:
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", HTML, re.DOTALL)
    assert scripts == [(' src="approve/app.js" defer', "")]  # relative: behind a stage prefix too
    assert not re.search(r"\son[a-z]+\s*=", HTML)  # no event handler attributes
    assert not re.search(r"(https?:)?//", HTML.replace("<!doctype html>", ""))
    assert not re.search(r"=\s*[\"']?\s*javascript:", HTML, re.IGNORECASE)  # no script URLs


@pytest.mark.parametrize(
    "sink",
    [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "localStorage",
        "sessionStorage",
        "indexedDB",
        "document.cookie",
        "http://",
        "https://",
    ],
)
def test_the_script_uses_no_markup_sink_no_storage_and_no_other_origin(sink: str) -> None:
    assert sink not in SCRIPT


def test_every_package_and_the_page_ship_in_the_distribution() -> None:
    """pyproject lists packages explicitly: one missing (reliquary.api was) installs without its code."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    core = ROOT / "layers" / "core"
    packages = {".".join(p.parent.relative_to(core).parts) for p in (core / "reliquary").rglob("__init__.py")}
    assert packages <= set(project["packages"])
    data = project["package-data"]["reliquary.api"]
    shipped = {p for pattern in data for p in (core / "reliquary" / "api").glob(pattern)}
    assert shipped == set(STATIC.iterdir())
    assert {p.name for p in shipped} == {"approve.html", "app.js"}
