"""The RELIQUARY client SDK (``pip install ./sdk``).

``Reliquary`` (sync) and ``AsyncReliquary`` talk to the REST API with ``ClientCredentials`` or
``PrivateKeyJwt`` (a did:key), retrying safely; answers are the models of ``reliquary_sdk.models`` and
failures the typed errors of ``reliquary_sdk.errors`` (all under ``ReliquaryError``). An access request
(``client.access.request(..., prove=device, key=RequesterKey.generate())``, proving with
``reliquary_sdk.prove``) is opened on this side by its handle's ``open()``: an ``OpenedMemory``.
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
from reliquary_sdk.crypto import RequesterKey
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
from reliquary_sdk.monitor import LogForkError, LogMonitor
from reliquary_sdk.opening import ChainSummary, NotApprovedError, OpenedMemory, OpenError, TrustedKeys

__all__ = [
    "AccessRequest",
    "Answer",
    "ApiError",
    "AsyncAccessRequest",
    "AsyncReliquary",
    "AuthenticationError",
    "BearerToken",
    "Call",
    "ChainSummary",
    "ClientCredentials",
    "ConflictError",
    "DidKeySigner",
    "ForbiddenError",
    "InvalidRequestError",
    "LogForkError",
    "LogMonitor",
    "NotApprovedError",
    "NotFoundError",
    "OAuth2Auth",
    "OpenError",
    "OpenedMemory",
    "PrivateKeyJwt",
    "RateLimitedError",
    "Reliquary",
    "ReliquaryError",
    "RequesterKey",
    "RetryPolicy",
    "TransientError",
    "TransportError",
    "TrustedKeys",
    "UnexpectedResponseError",
    "__version__",
    "errors",
    "models",
]
