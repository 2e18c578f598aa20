"""The API function's Lambda entry point: API Gateway REST proxy events through Mangum to the app, and
proxy responses back (events/api/). No AWS is needed for these: health and an unauthenticated call are
answered before the runtime is built."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from functions.api import app
from tests.functions.conftest import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"


def _headers(response: dict[str, Any]) -> dict[str, list[str]]:
    """Both of a proxy response's header maps, by lower-case name (Mangum uses either)."""
    found = {k.lower(): [v] for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        found.setdefault(name.lower(), []).extend(values)
    return found


def _invoke(name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    response: dict[str, Any] = app.handler(event, LambdaContext(function_name="reliquary-test-api"))
    return response


def test_health_through_api_gateway() -> None:
    response = _invoke("health.json")
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "version": "1.0.0"}
    assert _headers(response)["x-request-id"][0]


def test_a_call_without_a_token_is_a_401_problem() -> None:
    response = _invoke("list_vaults_without_token.json")
    assert response["statusCode"] == 401
    headers = _headers(response)
    assert headers["content-type"] == ["application/problem+json"]
    assert headers["www-authenticate"][0].startswith("Bearer")
    assert response["isBase64Encoded"] is False  # API Gateway would pass base64 through as the body
    body = json.loads(response["body"])
    assert body["code"] == "unauthenticated"
    assert body["status"] == 401
    assert body["request_id"] == headers["x-request-id"][0]


def test_a_request_after_asyncio_run_in_the_same_process_is_answered() -> None:
    # asyncio.run leaves the main thread without a current event loop; Mangum set one up only once.
    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    assert _invoke("health.json")["statusCode"] == 200
