"""Field types shared by the domain and the functions' contracts: identifiers, strict base64 and epoch
times."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated

from pydantic import Field, PlainSerializer, StringConstraints, WithJsonSchema
from pydantic.functional_validators import BeforeValidator

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
Identifier = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]


def _decode_base64(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")  # noqa: TRY004  (pydantic wants ValueError)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


def epoch_seconds(value: object) -> object:
    """An ISO 8601 time with a zone (Step Functions' ``$$.Execution.StartTime``) as whole epoch seconds;
    anything else is left to the field's own validation (epoch seconds as an integer)."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("expected epoch seconds or an ISO 8601 time with a zone") from None
        if parsed.tzinfo is None:
            raise ValueError("an ISO 8601 time needs a time zone")
        return int(parsed.timestamp())
    return value


EpochTime = Annotated[int, BeforeValidator(epoch_seconds), Field(ge=0)]
"""A time in epoch seconds, given as an integer or as an ISO 8601 time with a zone (e.g. a flow's
``decided_at``, fixed per execution so that retried tasks see the same time)."""
