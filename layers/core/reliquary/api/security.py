"""Who is calling: the bearer token, verified, and the client behind it still active, on every request.

The tenant of a call is the token's and nothing else: routes take it from ``Caller`` only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reliquary.errors import AuthenticationError
from reliquary.gateway import ApiRuntime
from reliquary.identity.models import Caller

_BEARER = HTTPBearer(auto_error=False, description="An access token from `POST /v1/oauth2/token`.")


def runtime_of(request: Request) -> ApiRuntime:
    runtime: ApiRuntime = request.app.state.runtime()
    return runtime


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError
    runtime = runtime_of(request)
    # Verifies the token, counts the request against the client's rate, and reads the client's row.
    caller = runtime.identity.authorize(credentials.credentials)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(authenticated)]
RuntimeDep = Annotated[ApiRuntime, Depends(runtime_of)]
