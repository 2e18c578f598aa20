"""Health, the token endpoint (OAuth2 client credentials: a secret, or a private_key_jwt assertion), the
token keys (JWKS) and the service's DID document."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from reliquary.api import API_VERSION
from reliquary.api.problems import context_of, problem_response
from reliquary.api.routes import problems
from reliquary.api.security import RuntimeDep
from reliquary.audit.note import NoteVerifier
from reliquary.errors import (
    InvalidClientError,
    InvalidRequestError,
    ReliquaryError,
    UnsupportedGrantTypeError,
)
from reliquary.gateway import ApiRuntime
from reliquary.identity.assertions import JWT_BEARER
from reliquary.identity.models import Client
from reliquary.identity.service_did import service_document

router = APIRouter()
# Room for a client assertion signed with ML-DSA-65 (a 3309-byte signature; the JWS is capped at 16 KiB).
MAX_FORM_BYTES = 20 * 1024
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
DID_MEDIA_TYPE = "application/did+json"


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="The scopes granted, space separated.")


class JsonWebKey(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


@router.get("/v1/health", response_model=Health, tags=["system"], responses=problems())
def health() -> Health:
    """Liveness: answers without authentication and says nothing about the deployment's internals."""
    return Health(status="ok", version=API_VERSION)


@router.get("/.well-known/jwks.json", response_model=JsonWebKeySet, tags=["system"], responses=problems())
def jwks(runtime: RuntimeDep) -> JSONResponse:
    """The public keys access tokens are signed with: the current key and, during a rotation, the
    previous one. Cache it for at most five minutes."""
    return JSONResponse(runtime.identity.jwks(), headers={"Cache-Control": "public, max-age=300"})


class DidDocument(BaseModel):
    """A W3C DID document (only the members this service writes are described)."""

    context: list[str] = Field(alias="@context")
    id: str
    verificationMethod: list[dict[str, Any]]  # noqa: N815  (DID Core's member names)
    assertionMethod: list[str]  # noqa: N815
    service: list[dict[str, Any]]


@router.get(
    "/.well-known/did.json",
    response_model=DidDocument,
    tags=["system"],
    responses={200: {"content": {DID_MEDIA_TYPE: {}}}, **problems()},
)
def did_document(runtime: RuntimeDep) -> JSONResponse:
    """The service's did:web document (`RELIQUARY_SERVICE_DID`): the checkpoint keys, the flow functions'
    stage keys and the token keys, so an outsider verifies receipts and attestation chains from one
    well-known place (docs/identity.md, "DIDs and private_key_jwt"). Cache it for at most five minutes."""
    settings = runtime.settings
    document = service_document(
        settings.service_did,
        log_endpoint=settings.token_issuer.rstrip("/") + "/v1/audit",
        checkpoint_keys=[NoteVerifier.from_vkey(vkey) for vkey in runtime.audit.verifier_keys()],
        stage_keys=runtime.audit.stage_keys(),
        token_keys=runtime.identity.jwks()["keys"],
    )
    return JSONResponse(document, media_type=DID_MEDIA_TYPE, headers={"Cache-Control": "public, max-age=300"})


def _oauth_error_name(exc: ReliquaryError) -> str:
    if isinstance(exc, InvalidClientError):
        return "invalid_client"
    return exc.code if exc.code in {"invalid_scope", "unsupported_grant_type"} else "invalid_request"


def _form(body: bytes) -> dict[str, str]:
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequestError("the token request is too large")
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("the token request must be application/x-www-form-urlencoded") from None
    if any(len(values) != 1 for values in fields.values()):
        raise InvalidRequestError("each token request parameter may appear once")  # RFC 6749 3.2
    return {name: values[0] for name, values in fields.items()}


def _basic(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError from None
    if not sep:
        raise InvalidClientError
    # RFC 6749 2.3.1: the id and secret are form-urlencoded before Basic encoding.
    return unquote(user), unquote(password)


def _secret_client(form: dict[str, str], authorization: str | None, runtime: ApiRuntime) -> Client:
    in_form = "client_id" in form or "client_secret" in form
    if authorization is not None and in_form:
        raise InvalidRequestError("authenticate either with Basic or in the form, not both")
    if authorization is not None:
        client_id, secret = _basic(authorization)
    elif in_form:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    else:
        raise InvalidClientError
    return runtime.identity.authenticate(client_id, secret)  # counts against the client's rate


def _assertion_client(form: dict[str, str], authorization: str | None, runtime: ApiRuntime) -> Client:
    if authorization is not None or "client_secret" in form:
        raise InvalidRequestError("authenticate with one method: a secret or a client assertion")
    if form.get("client_assertion_type") != JWT_BEARER or "client_assertion" not in form:
        raise InvalidRequestError(f"a client assertion needs client_assertion_type {JWT_BEARER}")
    # Counts against the client's rate; a jti is accepted once.
    return runtime.identity.authenticate_assertion(form["client_assertion"], form.get("client_id"))


@router.post(
    "/v1/oauth2/token",
    response_model=TokenResponse,
    tags=["oauth2"],
    responses=problems(401),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FORM_MEDIA_TYPE: {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "scope": {"type": "string", "description": "Scopes wanted (default: all)."},
                            "client_id": {
                                "type": "string",
                                "description": "client_secret_post; optional with private_key_jwt.",
                            },
                            "client_secret": {"type": "string", "description": "client_secret_post only."},
                            "client_assertion_type": {"type": "string", "enum": [JWT_BEARER]},
                            "client_assertion": {
                                "type": "string",
                                "description": "private_key_jwt (RFC 7523): a JWT signed by its did:key.",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def token(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> JSONResponse:
    """OAuth2 client credentials (RFC 6749 4.4): authenticate with the client's id and secret, in a
    Basic header (client_secret_basic) or in the form (client_secret_post), or, for a client registered
    with a did:key, with a JWT it signed (private_key_jwt, RFC 7523); one method per request."""
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    try:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_MEDIA_TYPE:
            raise InvalidRequestError("the token request must be application/x-www-form-urlencoded")
        form = _form(await request.body())
        if form.get("grant_type") != "client_credentials":
            if "grant_type" in form:
                raise UnsupportedGrantTypeError("only the client_credentials grant is supported")
            raise InvalidRequestError("grant_type is required")
        if "client_assertion" in form or "client_assertion_type" in form:
            client = _assertion_client(form, authorization, runtime)
        else:
            client = _secret_client(form, authorization, runtime)
        request.state.caller = client
        issued = runtime.identity.issue_token(client, form.get("scope"))
    except ReliquaryError as exc:
        # RFC 6749 5.2's members beside the problem's, so OAuth2 clients read it as they expect.
        response = problem_response(
            exc,
            context_of(request),
            members={"error": _oauth_error_name(exc), "error_description": exc.message},
        )
        response.headers.update(no_store)
        # The token endpoint authenticates clients, not bearer tokens: RFC 6749 5.2 asks for a challenge of
        # the scheme the client used (Basic), and none for credentials sent in the form.
        if "www-authenticate" in response.headers:
            del response.headers["www-authenticate"]
        if isinstance(exc, InvalidClientError) and authorization is not None:
            response.headers["WWW-Authenticate"] = 'Basic realm="reliquary"'
        return response
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        headers=no_store,
    )
