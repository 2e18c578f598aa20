"""The API's FastAPI application: middleware (request ids, body limit, logs, metrics), problem+json for
every error, and the routes of ``reliquary.api.routes``.

``create_app(runtime)`` takes a factory of the ``ApiRuntime`` and calls it on the first request that
needs it, so importing the app (a Lambda cold start) builds no AWS client."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reliquary.api import API_VERSION
from reliquary.api.context import request_context
from reliquary.api.problems import context_of, problem_response, validation_problem
from reliquary.api.routes import access, admin, audit, memories, page, people, system, vaults, webauthn
from reliquary.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ReliquaryError,
)
from reliquary.gateway import ApiRuntime
from reliquary.observability import build_logger, build_metrics, build_tracer

SERVICE = "reliquary-api"
# A synchronous Lambda invocation carries at most 6 MB; the API refuses a larger body before reading it.
MAX_BODY_BYTES = 6 * 1024 * 1024
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
# X-Ray on Lambda (a no-op elsewhere): each invocation's trace is annotated with its route and status.
tracer = build_tracer(SERVICE)

DESCRIPTION = """RELIQUARY's REST API: vaults, the memory API, access requests decided by zero-knowledge
context proofs, trust and a quorum of agents, and the transparency log that records every decision.

Authenticate with an OAuth2 access token (client credentials at `POST /v1/oauth2/token`). The tenant of
every call is the token's. Errors are RFC 9457 problem details (`application/problem#json`) with a stable
`code`. See docs/api.md."""


class _BodyLimit:
    """Refuses a body larger than ``limit`` (by its Content-Length, or as it streams in) with a 413.

    The body is read here, up to the limit, before the app sees any of it: an error raised from inside
    the app's reading would reach the route wrapped (FastAPI makes it a 400, Starlette's middleware an
    exception group), and a route could have acted on a request that is then refused."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_problem(scope, send, PayloadTooLargeError("the request body is too large"))
            return
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _send_problem(scope, send, PayloadTooLargeError("the request body is too large"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: what the server says next (a disconnect)
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _send_problem(scope: Scope, send: Send, exc: ReliquaryError) -> None:
    context = request_context("GET", None)
    response = problem_response(exc, context)
    _log_refused_early(str(scope.get("method", "")), exc, context.request_id)
    await response(scope, _never_receive, send)


def _log_refused_early(method: str, exc: ReliquaryError, request_id: str) -> None:
    """A request refused before it reached a route (its body too large, a malformed Idempotency-Key):
    the same line and metric as any other request, under the route name ``refused``."""
    logger.info(
        "request",
        extra={
            "route": "refused",
            "method": method,
            "status": exc.http_status,
            "code": exc.code,
            "request_id": request_id,
        },
    )
    metrics.add_metric(name=f"refused.{exc.http_status // 100}xx", unit=MetricUnit.Count, value=1)


async def _never_receive() -> Message:  # pragma: no cover - a response never reads the request
    return {"type": "http.disconnect"}


def _unexpected_problem(request: Request, exc: Exception) -> Response:
    # Never the exception's text: it may quote data. The type is enough to find it in the traces.
    logger.error("unexpected error", extra={"error_type": type(exc).__name__})
    return problem_response(ReliquaryError("the request could not be completed"), context_of(request))


def create_app(runtime: Callable[[], ApiRuntime]) -> FastAPI:
    app = FastAPI(
        title="RELIQUARY",
        version=API_VERSION,
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = functools.cache(runtime)
    names: frozenset[str] = frozenset()

    def schema_names() -> frozenset[str]:
        nonlocal names
        if not names:
            found: set[str] = set()
            for schema in (app.openapi().get("components", {}).get("schemas", {})).values():
                found.update(schema.get("properties", {}))
            for path in app.openapi().get("paths", {}).values():
                for operation in path.values():
                    found.update(p["name"] for p in operation.get("parameters", []))
            names = frozenset(found)
        return names

    @app.exception_handler(ReliquaryError)
    async def _reliquary_error(request: Request, exc: ReliquaryError) -> Response:
        if exc.http_status >= 500:
            logger.warning("request failed", extra={"code": exc.code})
        return problem_response(exc, context_of(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(validation_problem(exc.errors(), schema_names()), context_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error: ReliquaryError
        if exc.status_code == 404:
            error = NotFoundError("no such route")
        elif exc.status_code == 405:
            error = MethodNotAllowedError("this method is not allowed on this route")
            response = problem_response(error, context_of(request))
            # RFC 9110 15.5.6: a 405 says which methods the path has.
            response.headers["Allow"] = ", ".join(_allowed_methods(app, request.scope["path"]))
            return response
        else:
            error = InvalidRequestError("the request is malformed")
        return problem_response(error, context_of(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _unexpected_problem(request, exc)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        try:
            context = request_context(request.method, request.headers.get("idempotency-key"))
        except InvalidRequestError as exc:
            fresh = request_context("GET", None)
            _log_refused_early(request.method, exc, fresh.request_id)
            return problem_response(exc, fresh)
        request.state.context = context
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001
            # Answered here: re-raised to the server (uvicorn, Mangum), its text would be logged.
            response = _unexpected_problem(request, exc)
        response.headers["X-Request-Id"] = context.request_id
        response.headers["X-Correlation-Id"] = context.correlation_id
        route = request.scope.get("route")
        name = getattr(route, "name", "unmatched")
        elapsed_ms = (time.perf_counter() - started) * 1000
        caller = getattr(request.state, "caller", None)
        # Never the body, the query or the token: the route, the outcome and who (ids only).
        logger.info(
            "request",
            extra={
                "route": name,
                "method": request.method,
                "status": response.status_code,
                "duration_ms": round(elapsed_ms, 1),
                "request_id": context.request_id,
                "correlation_id": context.correlation_id,
                "tenant_id": getattr(caller, "tenant_id", None),
                "client_id": getattr(caller, "client_id", None),
            },
        )
        tracer.put_annotation(key="route", value=name)
        tracer.put_annotation(key="status", value=response.status_code)
        metrics.add_metric(name=f"{name}.latency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name=f"{name}.{response.status_code // 100}xx", unit=MetricUnit.Count, value=1)
        return response

    for module in (system, admin, people, webauthn, vaults, memories, access, audit, page):
        app.include_router(module.router)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    return app


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document has for ``path`` (each ``{parameter}`` one path segment)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()
