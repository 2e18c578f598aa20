"""The API function: RELIQUARY's REST API (``reliquary.api``) behind API Gateway, through Mangum.

The same ``app`` is what ``make run`` serves with uvicorn on 127.0.0.1:3000. Its runtime (AWS clients,
the token keys) is built on the first request that needs it, not at import: a cold start imports
FastAPI and the routes' models only."""

from __future__ import annotations

from typing import Any

from reliquary.coldstart import deferred_collection


def _runtime() -> Any:
    from reliquary.adapters.api_factory import build_api  # noqa: PLC0415  (boto3: first request only)
    from reliquary.config import get_settings  # noqa: PLC0415

    return build_api(get_settings())


# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import asyncio

    from mangum import Mangum

    from reliquary.api.app import create_app, metrics, tracer

    app = create_app(_runtime)
    # Answers whose media type is not text are base64-encoded by Mangum, and API Gateway (without binary
    # media types) would hand the base64 to the caller: every media type the API answers with is text.
    TEXT_MEDIA_TYPES = ["application/json", "application/problem+json", "application/x-www-form-urlencoded"]
    _mangum = Mangum(app, lifespan="off", text_mime_types=TEXT_MEDIA_TYPES)


def _current_event_loop() -> None:
    """Mangum runs each request on the thread's current event loop, which it sets up only once: after an
    ``asyncio.run`` in the same process (it leaves no current loop) every request would fail."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _current_event_loop()
    response: dict[str, Any] = _mangum(event, context)
    return response
