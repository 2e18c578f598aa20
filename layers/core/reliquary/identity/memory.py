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
from reliquary.identity.models import Client, ClientStatus, StoredClient, Tenant
from reliquary.identity.scopes import RoleBinding


class InMemoryIdentityRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._clients: dict[str, StoredClient] = {}
        self._counts: Counter[tuple[str, int]] = Counter()
        self._assertion_ids: dict[tuple[str, str], int] = {}  # (client, jti) -> expires_at

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

    def use_assertion_id(self, client_id: str, jti: str, *, expires_at: int, now: int) -> None:
        with self._lock:
            recorded = self._assertion_ids.get((client_id, jti))
            if recorded is not None and recorded >= now:
                raise ConflictError("the assertion was used before")
            self._assertion_ids[(client_id, jti)] = expires_at

    def count_request(self, client_id: str, window: int) -> int:
        with self._lock:
            self._counts[(client_id, window)] += 1
            return self._counts[(client_id, window)]


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
