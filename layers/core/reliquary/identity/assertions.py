"""``private_key_jwt`` client assertions (RFC 7523 section 3, OpenID Connect Core section 9): a JWT the
client signs with the key of its ``did:key`` instead of sending a secret.

The claims a client assertion must carry, checked against the service's clock:
- ``iss`` = ``sub`` = the client id (and the form's ``client_id``, when one is sent);
- ``aud``: the token endpoint's URL or the issuer (a string, or a list holding one of them);
- ``exp``: required, an integer, not passed (``LEEWAY_SECONDS``) and at most ``MAX_LIFETIME_SECONDS``
  ahead (plus the leeway): an assertion is a one-shot credential, never a long-lived one;
- ``iat`` and ``nbf``: optional integers; not in the future (leeway), not before ``exp``, and an ``iat``
  no older than the longest lifetime;
- ``jti``: required, 1-128 printable ASCII characters; single use (the service records it until ``exp``).
Other claims are ignored. The signature is checked by ``identity.jws`` with the algorithm of the client's
key. Every refusal here is an ``InvalidClientError`` (one message) whose cause, an ``AssertionRejected``,
names the check for logs and tests, never for the caller.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NoReturn

from reliquary.errors import InvalidClientError, InvalidJwsError
from reliquary.identity.did import DidKey
from reliquary.identity.jws import json_object, unverified_payload, verify_compact
from reliquary.identity.models import is_client_id

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_ENDPOINT_PATH = "/v1/oauth2/token"  # noqa: S105  (a URL path, not a secret)
MAX_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 30
MAX_AUDIENCES = 8
_JTI = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_TIME = 1 << 40


class AssertionRejected(Exception):  # noqa: N818  (a reason, raised only as an InvalidClientError's cause)
    """Why a client assertion was refused: for logs and tests, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reject(reason: str) -> NoReturn:
    raise InvalidClientError from AssertionRejected(reason)


@dataclass(frozen=True, slots=True)
class AssertionClaims:
    client_id: str
    jti: str
    expires_at: int


def asserted_client(assertion: object, form_client_id: str | None) -> str:
    """The client id an assertion claims to be from (its ``iss``), before anything is verified: only to
    find the key that must have signed it."""
    try:
        claims = json_object(unverified_payload(assertion), "payload")
    except InvalidJwsError as exc:
        reject(f"format: {exc.check}")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not is_client_id(issuer):
        reject("iss")
    if form_client_id is not None and form_client_id != issuer:
        reject("client_id")
    return issuer


def verify_assertion(
    assertion: object, *, client_id: str, key: DidKey, audiences: Collection[str], now: int
) -> AssertionClaims:
    """The claims of ``client_id``'s assertion, signed by ``key`` and valid at ``now``."""
    try:
        verified = verify_compact(assertion, key)
        claims = json_object(verified.payload, "payload")
    except InvalidJwsError as exc:
        reject(exc.check)
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        reject("iss/sub")
    if not _audience_ok(claims.get("aud"), audiences):
        reject("aud")
    if "exp" not in claims:
        reject("exp")
    expires_at = _time(claims, "exp")
    if expires_at <= now - LEEWAY_SECONDS:
        reject("expired")
    if expires_at > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        reject("lifetime")
    for name in ("iat", "nbf"):
        if name not in claims:
            continue
        moment = _time(claims, name)
        if moment > now + LEEWAY_SECONDS or moment >= expires_at:
            reject(f"{name} in the future")
        if name == "iat" and moment < now - MAX_LIFETIME_SECONDS - LEEWAY_SECONDS:
            reject("iat too old")
    jti = claims.get("jti")
    if not isinstance(jti, str) or _JTI.fullmatch(jti) is None:
        reject("jti")
    return AssertionClaims(client_id=client_id, jti=jti, expires_at=expires_at)


def _audience_ok(audience: Any, audiences: Collection[str]) -> bool:
    if isinstance(audience, str):
        return audience in audiences
    if isinstance(audience, list) and 0 < len(audience) <= MAX_AUDIENCES:
        return all(isinstance(a, str) for a in audience) and any(a in audiences for a in audience)
    return False


def _time(claims: dict[str, Any], name: str) -> int:
    value = claims[name]
    # Integers only: a bool, a float or a numeric string is not a time.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_TIME:
        reject(name)
    return value
