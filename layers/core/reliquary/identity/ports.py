"""What the identity service needs from storage and from the token key, as small protocols.

``adapters.identity_store`` implements the repositories over DynamoDB (IdentityTable) and
``adapters.token_keys`` the signer over KMS; ``identity.memory`` implements them in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reliquary.identity.models import Challenge, Client, Person, StoredClient, StoredCredential, Tenant
from reliquary.identity.scopes import RoleBinding


class IdentityRepository(Protocol):
    def create_tenant(self, tenant: Tenant, first_client: StoredClient) -> None:
        """Store a tenant and its first client together; ConflictError if the tenant exists."""

    def get_tenant(self, tenant_id: str) -> Tenant:
        """NotFoundError if there is no such tenant."""

    def create_client(self, stored: StoredClient) -> None:
        """ConflictError if the client id exists."""

    def get_client(self, client_id: str) -> StoredClient:
        """A strongly consistent read (a revocation is seen at once); NotFoundError if absent. Client ids
        are global: the caller checks the tenant."""

    def list_clients(self, tenant_id: str) -> list[Client]:
        """The tenant's clients, ordered by id (an index: a client created a moment ago may be missing)."""

    def rotate_secret(
        self, tenant_id: str, client_id: str, *, secret_hash: str, rotated_at: int, not_before: int | None
    ) -> Client:
        """Replace the hash of an active client of this tenant (and raise ``not_before`` when given);
        ConflictError if the client is not an active client of this tenant."""

    def replace_secret_hash(self, client_id: str, *, old_hash: str, new_hash: str) -> None:
        """Swap a hash for a stronger one of the same secret, only if ``old_hash`` is still stored
        (ConflictError otherwise)."""

    def revoke(self, tenant_id: str, client_id: str, *, not_before: int) -> Client:
        """Mark a client of this tenant revoked and refuse its tokens from ``not_before`` back;
        ConflictError if the client is not this tenant's."""

    def set_roles(self, tenant_id: str, client_id: str, roles: Sequence[RoleBinding]) -> Client:
        """ConflictError if the client is not an active client of this tenant."""

    def count_request(self, client_id: str, window: int) -> int:
        """Add one to the client's counter for ``window`` (an atomic add on a row that expires) and
        return the new count."""


class PeopleRepository(Protocol):
    """Persons, their passkey credentials and the single-use WebAuthn challenges. Person and credential
    ids are global, so every update is conditional on the row's tenant (and person)."""

    def create_person(self, person: Person) -> None:
        """ConflictError if the person id exists."""

    def get_person(self, person_id: str) -> Person:
        """A strongly consistent read (a revocation is seen at once); NotFoundError if absent. The caller
        checks the tenant."""

    def list_persons(self, tenant_id: str) -> list[Person]:
        """The tenant's persons, ordered by id (an index: one created a moment ago may be missing)."""

    def set_person_roles(self, tenant_id: str, person_id: str, roles: Sequence[RoleBinding]) -> Person:
        """ConflictError if the person is not an active person of this tenant."""

    def revoke_person(self, tenant_id: str, person_id: str, *, not_before: int) -> Person:
        """Mark the person revoked, refuse its tokens from ``not_before`` back and drop a pending
        enrollment; ConflictError if the person is not this tenant's."""

    def set_enrollment(self, tenant_id: str, person_id: str, *, jti: str, expires_at: int) -> Person:
        """Make ``jti`` the person's one pending enrollment token (replacing any other); ConflictError
        if the person is not an active person of this tenant."""

    def add_credential(self, credential: StoredCredential, *, enrollment_jti: str | None) -> None:
        """Store a new credential of an active person, with its id added to the person's row, at once.
        With ``enrollment_jti`` only if it is still the person's pending enrollment, which this consumes
        (one enrollment token registers one passkey). ConflictError if the credential id exists, the
        person is not active, has too many credentials, or the enrollment was used or replaced."""

    def get_credential(self, credential_id: str) -> StoredCredential:
        """A strongly consistent read; NotFoundError if absent. The caller checks tenant and person."""

    def list_credentials(self, person: Person) -> list[StoredCredential]:
        """The person's credentials (those its row names), ordered by id."""

    def remove_credential(self, tenant_id: str, person_id: str, credential_id: str) -> None:
        """Delete a credential of this tenant's person (and its id from the person's row); NotFoundError
        if it is not that person's."""

    def advance_sign_count(
        self, credential_id: str, old: int, new: int, *, used_at: int | None = None
    ) -> None:
        """Set the counter to ``new`` only if it is still ``old`` (and record ``used_at``): of two uses of
        one assertion, one passes. ConflictError if it moved (or the credential is gone)."""

    def put_challenge(self, challenge: Challenge) -> None:
        """Store a challenge until ``challenge.expires_at`` (ConflictError if the id exists)."""

    def take_challenge(self, challenge_id: str, *, now: int) -> Challenge | None:
        """The challenge, deleted as it is read: None if it was never issued, already taken, or expired
        at ``now``. Of two concurrent takes, one gets it."""


class TokenSigner(Protocol):
    """The access-token key: an ES256 (P-256) key whose private half may live in KMS."""

    @property
    def key_id(self) -> str:
        """The RFC 7638 thumbprint of the public key (the tokens' ``kid``)."""

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``use`` and ``alg`` (``identity.jwk.public_jwk``)."""

    def sign(self, signing_input: bytes) -> bytes:
        """The ECDSA P-256 SHA-256 signature of ``signing_input``, as the 64 bytes ``r || s``."""
