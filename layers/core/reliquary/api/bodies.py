"""Request bodies a route reads itself (a body whose model depends on the path): parsed and validated
into the same ``invalid_request`` problems as FastAPI's own, quoting nothing."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from reliquary.api.problems import validation_problem
from reliquary.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError("the body must be application/json")
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("the body is not valid JSON") from None


def validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        names = frozenset(_field_names(model))
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        raise validation_problem(errors, names) from None


def _field_names(model: type[BaseModel]) -> set[str]:
    found: set[str] = set()
    pending: list[Any] = [model.model_json_schema()]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found
