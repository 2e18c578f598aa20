"""The API function: RELIQUARY's REST API (``reliquary.api``) behind API Gateway, through Mangum.

The same ``app`` is what ``make run`` serves with uvicorn on 127.0.0.1:3000. Its runtime (AWS clients,
the token keys) is built on the first request that needs it, not at import: a cold start imports
FastAPI and the routes' models only."""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from reliquary.api.app import create_app, metrics


def _runtime() -> Any:
    from reliquary.adapters.api_factory import build_api  # noqa: PLC0415  (boto3: first request only)
    from reliquary.config import get_settings  # noqa: PLC0415

    return build_api(get_settings())


app = create_app(_runtime)
_mangum = Mangum(app, lifespan="off")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = _mangum(event, context)
    return response
