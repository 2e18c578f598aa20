"""Field types shared by the domain and the functions' contracts: identifiers, strict base64, numbers as
JSON Schema reads them, and epoch times."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, PlainSerializer, StringConstraints, WithJsonSchema
from pydantic.functional_validators import BeforeValidator
from pydantic_core import PydanticCustomError

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


def _not_text_or_boolean(kind: str, words: str) -> BeforeValidator:
    def check(value: object) -> object:
        # Python's bool is an int, and lax validation reads "5" as 5: neither is a JSON number.
        if isinstance(value, bool | str | bytes | bytearray):
            raise PydanticCustomError(kind, words)
        return value

    return BeforeValidator(check)


JSON_INTEGER = _not_text_or_boolean("int_type", "Input should be a valid integer")
JsonInt = Annotated[int, JSON_INTEGER]
"""An integer as JSON Schema has one: a number without a fraction (``3`` or ``3.0``), never ``true``
or ``"3"``, which lax validation would take for 1 and 3. Optional and bounded, the bounds go before the
check, so the document states them: ``Annotated[int, Field(ge=1), JSON_INTEGER] | None``."""
JsonNumber = Annotated[float, _not_text_or_boolean("float_type", "Input should be a valid number")]
"""A number as JSON Schema has one: never a boolean or a string."""
VersionOne = Annotated[Literal[1], _not_text_or_boolean("literal_error", "Input should be 1")]
"""A document's format version ``v``, 1 (lax validation would take ``true`` for it)."""


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
