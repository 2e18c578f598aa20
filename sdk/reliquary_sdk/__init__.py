"""The RELIQUARY client SDK (``pip install ./sdk``).

``Reliquary`` (sync) and ``AsyncReliquary`` talk to the REST API with ``ClientCredentials`` or
``PrivateKeyJwt`` (a did:key), retrying safely; answers are the models of ``reliquary_sdk.models`` and
failures the typed errors of ``reliquary_sdk.errors`` (all under ``ReliquaryError``).
"""

from reliquary_sdk import errors, models
from reliquary_sdk._version import __version__
from reliquary_sdk.auth import BearerToken, ClientCredentials, DidKeySigner, OAuth2Auth, PrivateKeyJwt
from reliquary_sdk.client import (
    AccessRequest,
    Answer,
    AsyncAccessRequest,
    AsyncReliquary,
    Call,
    Reliquary,
    RetryPolicy,
)
from reliquary_sdk.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ReliquaryError,
    TransientError,
    TransportError,
    UnexpectedResponseError,
)

__all__ = [
    "AccessRequest",
    "Answer",
    "ApiError",
    "AsyncAccessRequest",
    "AsyncReliquary",
    "AuthenticationError",
    "BearerToken",
    "Call",
    "ClientCredentials",
    "ConflictError",
    "DidKeySigner",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "OAuth2Auth",
    "PrivateKeyJwt",
    "RateLimitedError",
    "Reliquary",
    "ReliquaryError",
    "RetryPolicy",
    "TransientError",
    "TransportError",
    "UnexpectedResponseError",
    "__version__",
    "errors",
    "models",
]
