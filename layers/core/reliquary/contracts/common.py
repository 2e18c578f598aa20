"""Field types shared by the functions' contracts: identifiers and strict base64."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import PlainSerializer, StringConstraints, WithJsonSchema
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
