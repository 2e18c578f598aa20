"""In-memory implementations of the identity ports: for unit tests, benchmarks and the pure core.

``InMemoryIdentityRepository`` honours the DynamoDB adapter's contract (conditional writes, tenant
checks on every update, atomic counters); ``LocalTokenSigner`` is a P-256 key generated at run time,
never stored, standing in for the KMS key.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from reliquary.errors import ConflictError, NotFoundError
from reliquary.identity.jwk import public_jwk, raw_signature
from reliquary.identity.models import (
    MAX_CREDENTIALS,
    Challenge,
    Client,
    ClientStatus,
    Person,
    PersonStatus,
    StoredClient,
    StoredCredential,
    Tenant,
)
from reliquary.identity.scopes import RoleBinding


class InMemoryIdentityRepository:
    """Both repositories of ``identity.ports`` (clients and people), as the DynamoDB adapter is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._clients: dict[str, StoredClient] = {}
        self._counts: Counter[tuple[str, int]] = Counter()
        self._persons: dict[str, Person] = {}
        self._credentials: dict[str, StoredCredential] = {}
        self._challenges: dict[str, Challenge] = {}

    def create_tenant(self, tenant: Tenant, first_client: StoredClient) -> None:
        with self._lock:
            if tenant.tenant_id in self._tenants or first_client.client.client_id in self._clients:
                raise ConflictError("the tenant exists")
            self._tenants[tenant.tenant_id] = tenant
            self._clients[first_client.client.client_id] = first_client

    def get_tenant(self, tenant_id: str) -> Tenant:
        try:
            return self._tenants[tenant_id]
        except KeyError:
            raise NotFoundError("no such tenant") from None

    def create_client(self, stored: StoredClient) -> None:
        with self._lock:
            if stored.client.client_id in self._clients:
                raise ConflictError("the client id exists")
            self._clients[stored.client.client_id] = stored

    def get_client(self, client_id: str) -> StoredClient:
        try:
            return self._clients[client_id]
        except KeyError:
            raise NotFoundError("no such client") from None

    def list_clients(self, tenant_id: str) -> list[Client]:
        clients = [s.client for s in self._clients.values() if s.client.tenant_id == tenant_id]
        return sorted(clients, key=lambda c: c.client_id)

    def _update(
        self, tenant_id: str, client_id: str, change: Callable[[StoredClient], StoredClient], *, active: bool
    ) -> Client:
        with self._lock:
            stored = self._clients.get(client_id)
            if stored is None or stored.client.tenant_id != tenant_id:
                raise ConflictError("no such client in this tenant")
            if active and not stored.client.active:
                raise ConflictError("the client is revoked")
            self._clients[client_id] = change(stored)
            return self._clients[client_id].client

    def rotate_secret(
        self, tenant_id: str, client_id: str, *, secret_hash: str, rotated_at: int, not_before: int | None
    ) -> Client:
        def rotated(stored: StoredClient) -> StoredClient:
            client = replace(
                stored.client,
                secret_rotated_at=rotated_at,
                not_before=stored.client.not_before if not_before is None else not_before,
            )
            return StoredClient(client, secret_hash)

        return self._update(tenant_id, client_id, rotated, active=True)

    def replace_secret_hash(self, client_id: str, *, old_hash: str, new_hash: str) -> None:
        with self._lock:
            stored = self._clients.get(client_id)
            if stored is None or stored.secret_hash != old_hash:
                raise ConflictError("the secret changed")
            self._clients[client_id] = StoredClient(stored.client, new_hash)

    def revoke(self, tenant_id: str, client_id: str, *, not_before: int) -> Client:
        def revoked(stored: StoredClient) -> StoredClient:
            client = replace(stored.client, status=ClientStatus.REVOKED, not_before=not_before)
            return StoredClient(client, stored.secret_hash)

        return self._update(tenant_id, client_id, revoked, active=False)

    def set_roles(self, tenant_id: str, client_id: str, roles: Sequence[RoleBinding]) -> Client:
        def with_roles(stored: StoredClient) -> StoredClient:
            return StoredClient(replace(stored.client, roles=tuple(roles)), stored.secret_hash)

        return self._update(tenant_id, client_id, with_roles, active=True)

    def count_request(self, client_id: str, window: int) -> int:
        with self._lock:
            self._counts[(client_id, window)] += 1
            return self._counts[(client_id, window)]

    # ------------------------------------------------------------------------------ people
    def create_person(self, person: Person) -> None:
        with self._lock:
            if person.person_id in self._persons:
                raise ConflictError("the person id exists")
            self._persons[person.person_id] = person

    def get_person(self, person_id: str) -> Person:
        try:
            return self._persons[person_id]
        except KeyError:
            raise NotFoundError("no such person") from None

    def list_persons(self, tenant_id: str) -> list[Person]:
        persons = [p for p in self._persons.values() if p.tenant_id == tenant_id]
        return sorted(persons, key=lambda p: p.person_id)

    def _update_person(
        self, tenant_id: str, person_id: str, change: Callable[[Person], Person], *, active: bool
    ) -> Person:
        with self._lock:
            person = self._persons.get(person_id)
            if person is None or person.tenant_id != tenant_id:
                raise ConflictError("no such person in this tenant")
            if active and not person.active:
                raise ConflictError("the person is revoked")
            self._persons[person_id] = change(person)
            return self._persons[person_id]

    def set_person_roles(self, tenant_id: str, person_id: str, roles: Sequence[RoleBinding]) -> Person:
        return self._update_person(
            tenant_id, person_id, lambda p: replace(p, roles=tuple(roles)), active=True
        )

    def revoke_person(self, tenant_id: str, person_id: str, *, not_before: int) -> Person:
        def revoked(person: Person) -> Person:
            return replace(
                person,
                status=PersonStatus.REVOKED,
                not_before=not_before,
                enrollment_jti=None,
                enrollment_expires_at=None,
            )

        return self._update_person(tenant_id, person_id, revoked, active=False)

    def set_enrollment(self, tenant_id: str, person_id: str, *, jti: str, expires_at: int) -> Person:
        def enrolling(person: Person) -> Person:
            return replace(person, enrollment_jti=jti, enrollment_expires_at=expires_at)

        return self._update_person(tenant_id, person_id, enrolling, active=True)

    def add_credential(self, credential: StoredCredential, *, enrollment_jti: str | None) -> None:
        with self._lock:
            person = self._persons.get(credential.person_id)
            if (
                person is None
                or person.tenant_id != credential.tenant_id
                or not person.active
                or len(person.credential_ids) >= MAX_CREDENTIALS
            ):
                raise ConflictError("the person cannot take this credential")
            if enrollment_jti is not None and person.enrollment_jti != enrollment_jti:
                raise ConflictError("the enrollment was used or replaced")
            if credential.credential_id in self._credentials:
                raise ConflictError("the credential id exists")
            self._credentials[credential.credential_id] = credential
            self._persons[person.person_id] = replace(
                person,
                credential_ids=tuple(sorted({*person.credential_ids, credential.credential_id})),
                enrollment_jti=None if enrollment_jti is not None else person.enrollment_jti,
                enrollment_expires_at=None if enrollment_jti is not None else person.enrollment_expires_at,
            )

    def get_credential(self, credential_id: str) -> StoredCredential:
        try:
            return self._credentials[credential_id]
        except KeyError:
            raise NotFoundError("no such credential") from None

    def list_credentials(self, person: Person) -> list[StoredCredential]:
        found = (self._credentials.get(credential_id) for credential_id in person.credential_ids)
        return sorted((c for c in found if c is not None), key=lambda c: c.credential_id)

    def remove_credential(self, tenant_id: str, person_id: str, credential_id: str) -> None:
        with self._lock:
            credential = self._credentials.get(credential_id)
            person = self._persons.get(person_id)
            if (
                credential is None
                or person is None
                or credential.tenant_id != tenant_id
                or credential.person_id != person_id
                or person.tenant_id != tenant_id
            ):
                raise NotFoundError("no such credential")
            del self._credentials[credential_id]
            self._persons[person_id] = replace(
                person, credential_ids=tuple(c for c in person.credential_ids if c != credential_id)
            )

    def advance_sign_count(
        self, credential_id: str, old: int, new: int, *, used_at: int | None = None
    ) -> None:
        with self._lock:
            credential = self._credentials.get(credential_id)
            if credential is None or credential.sign_count != old:
                raise ConflictError("the credential's counter moved")
            last_used_at = credential.last_used_at if used_at is None else used_at
            self._credentials[credential_id] = replace(credential, sign_count=new, last_used_at=last_used_at)

    def put_challenge(self, challenge: Challenge) -> None:
        with self._lock:
            if challenge.challenge_id in self._challenges:
                raise ConflictError("the challenge id exists")
            self._challenges[challenge.challenge_id] = challenge

    def take_challenge(self, challenge_id: str, *, now: int) -> Challenge | None:
        with self._lock:
            challenge = self._challenges.pop(challenge_id, None)
        if challenge is None or now >= challenge.expires_at:
            return None
        return challenge


class LocalTokenSigner:
    """An ES256 token key held in this process (generated at run time): tests and the pure core."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._private_key = private_key
        self._jwk = public_jwk(private_key.public_key())

    @classmethod
    def generate(cls) -> LocalTokenSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def key_id(self) -> str:
        return self._jwk["kid"]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    def sign(self, signing_input: bytes) -> bytes:
        return raw_signature(self._private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
