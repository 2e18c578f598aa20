"""Tenants, API clients and what the identity service hands out. A client's secret is never part of a
model: the repository keeps only its scrypt hash (``StoredClient``), and the secret itself is returned
once, beside the client, when it is created or rotated."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from reliquary.errors import InvalidRequestError
from reliquary.identity.scopes import Grants, RoleBinding

CLIENT_ID_PREFIX = "cl-"
_CLIENT_ID = re.compile(r"cl-[0-9a-f]{24}")
MAX_NAME = 128
TOKEN_TYPE = "Bearer"  # noqa: S105  (the OAuth2 token type, not a secret)


def new_client_id() -> str:
    """``cl-`` and 24 lowercase hex digits (96 random bits): a valid Identifier, never guessed."""
    return CLIENT_ID_PREFIX + secrets.token_hex(12)


def is_client_id(value: object) -> bool:
    return isinstance(value, str) and _CLIENT_ID.fullmatch(value) is not None


def validate_client_id(value: str) -> str:
    if not is_client_id(value):
        raise InvalidRequestError("client_id must be cl- and 24 lowercase hex digits", field="client_id")
    return value


def validate_name(kind: str, value: str) -> str:
    """A display name: 1-128 printable characters, no control characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME or not value.isprintable():
        raise InvalidRequestError(f"{kind} must be 1-{MAX_NAME} printable characters", field=kind)
    return value


class ClientStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Client:
    """An API client of one tenant. Tokens issued before ``not_before`` are refused (revocation, and a
    secret rotated with ``revoke_tokens``)."""

    client_id: str
    tenant_id: str
    name: str
    roles: tuple[RoleBinding, ...]
    status: ClientStatus
    created_at: int
    secret_rotated_at: int
    not_before: int
    # A client registered with a did:key authenticates with private_key_jwt signed by that key, never a
    # secret (it has none); None for a client with a secret.
    did: str | None = None

    @property
    def active(self) -> bool:
        return self.status is ClientStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class StoredClient:
    """The repository's client row: the client and the scrypt hash of its secret (``identity.secrets``);
    no hash for a client that authenticates with its did:key."""

    client: Client
    secret_hash: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The token endpoint's answer (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = TOKEN_TYPE


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from a verified token and the client's current row. The tenant comes only from
    here: every core call the API makes is scoped by ``tenant_id``."""

    tenant_id: str
    client_id: str
    grants: Grants
    jti: str
    expires_at: int
    # The client's roles now: the access flow's principal is the client, with the roles it holds there.
    roles: tuple[RoleBinding, ...] = ()

    def roles_on(self, vault_id: str) -> list[str]:
        """The names of the roles the client holds on ``vault_id`` (tenant-wide ones included)."""
        return sorted({str(b.role) for b in self.roles if b.vault_id in (None, vault_id)})
