"""Tenants, API clients, people and what the identity service hands out. A client's secret is never part
of a model: the repository keeps only its scrypt hash (``StoredClient``), and the secret itself is
returned once, beside the client, when it is created or rotated. A person has no secret at all: it signs
in with a passkey (``StoredCredential``: the public key only; the private key never leaves the
authenticator)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from reliquary.errors import InvalidRequestError
from reliquary.identity.scopes import Grants, RoleBinding

CLIENT_ID_PREFIX = "cl-"
_CLIENT_ID = re.compile(r"cl-[0-9a-f]{24}")
PERSON_ID_PREFIX = "ps-"
_PERSON_ID = re.compile(r"ps-[0-9a-f]{24}")
# A WebAuthn credential id: 16 to 1023 bytes (WebAuthn L3 section 6.1), as base64url without padding.
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{22,1364}")
_CHALLENGE_ID = re.compile(r"[0-9a-f]{32}")
USER_HANDLE_BYTES = 32
# Passkeys per person: a phone, a laptop, a security key and spares; bounds the person row.
MAX_CREDENTIALS = 16
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


def new_person_id() -> str:
    """``ps-`` and 24 lowercase hex digits (96 random bits)."""
    return PERSON_ID_PREFIX + secrets.token_hex(12)


def is_person_id(value: object) -> bool:
    return isinstance(value, str) and _PERSON_ID.fullmatch(value) is not None


def is_principal_id(value: object) -> bool:
    """A client's or a person's id: who an access token can be issued to."""
    return is_client_id(value) or is_person_id(value)


def validate_person_id(value: str) -> str:
    if not is_person_id(value):
        raise InvalidRequestError("person_id must be ps- and 24 lowercase hex digits", field="person_id")
    return value


def is_credential_id(value: object) -> bool:
    """A credential id as base64url without padding (the form the browser's JSON uses)."""
    return (
        isinstance(value, str)
        and _CREDENTIAL_ID.fullmatch(value) is not None
        and len(value) % 4 != 1  # no base64 text has length 1 mod 4
    )


def validate_credential_id(value: str) -> str:
    if not is_credential_id(value):
        raise InvalidRequestError(
            "credential_id must be a WebAuthn credential id (base64url)", field="credential_id"
        )
    return value


def new_challenge_id() -> str:
    return secrets.token_hex(16)


def is_challenge_id(value: object) -> bool:
    return isinstance(value, str) and _CHALLENGE_ID.fullmatch(value) is not None


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

    @property
    def active(self) -> bool:
        return self.status is ClientStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class StoredClient:
    """The repository's client row: the client and the scrypt hash of its secret (``identity.secrets``)."""

    client: Client
    secret_hash: str


class PersonStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Person:
    """A human of one tenant who approves step-up requests (role ``approver``) or audits (``auditor``),
    and signs in with passkeys. ``user_handle`` is the WebAuthn user id: random, stable, never the
    person id or name (authenticators may show or sync it). ``enrollment_jti`` is the pending enrollment
    token (None once used or never issued): registering a passkey with it consumes it."""

    person_id: str
    tenant_id: str
    name: str
    roles: tuple[RoleBinding, ...]
    status: PersonStatus
    created_at: int
    not_before: int
    user_handle: bytes
    credential_ids: tuple[str, ...] = ()
    enrollment_jti: str | None = None
    enrollment_expires_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status is PersonStatus.ACTIVE

    def roles_on(self, vault_id: str) -> list[str]:
        """The names of the roles the person holds on ``vault_id`` (tenant-wide ones included)."""
        return sorted({str(b.role) for b in self.roles if b.vault_id in (None, vault_id)})


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A person's registered passkey: the COSE public key, never a private key. ``credential_id`` is
    base64url without padding; ``sign_count`` the last counter the authenticator reported (0 for
    authenticators that keep none, as synced passkeys do)."""

    credential_id: str
    tenant_id: str
    person_id: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    created_at: int
    label: str
    last_used_at: int | None = None


ChallengePurpose = Literal["registration", "authentication"]


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WebAuthn ceremony challenge, stored until used once or ``expires_at``. A registration challenge
    belongs to one person (and the token that asked for it); a sign-in challenge to nobody yet."""

    challenge_id: str
    challenge: bytes
    purpose: ChallengePurpose
    expires_at: int
    tenant_id: str | None = None
    person_id: str | None = None
    token_jti: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The token endpoint's answer (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = TOKEN_TYPE


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from a verified token and the client's (or person's) current row. The tenant
    comes only from here: every core call the API makes is scoped by ``tenant_id``."""

    tenant_id: str
    client_id: str
    grants: Grants
    jti: str
    expires_at: int
    # The client's roles now: the access flow's principal is the client, with the roles it holds there.
    roles: tuple[RoleBinding, ...] = ()
    # A person's tokens name the person in ``client_id`` (its ``ps-`` id) and set ``kind``.
    kind: Literal["client", "person"] = "client"

    def roles_on(self, vault_id: str) -> list[str]:
        """The names of the roles the client holds on ``vault_id`` (tenant-wide ones included)."""
        return sorted({str(b.role) for b in self.roles if b.vault_id in (None, vault_id)})
