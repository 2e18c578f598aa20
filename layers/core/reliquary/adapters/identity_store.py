"""Tenants, API clients and per-client request counters in DynamoDB (IdentityTable, TTL ``expires_at``).

Rows (see template.yaml):
- ``pk = TENANT#<t>``, ``sk = TENANT``: the tenant;
- ``pk = CLIENT#<client id>``, ``sk = CLIENT``: a client, with ``tenant_pk = TENANT#<t>`` for the
  ``TenantIndex`` GSI (the tenant's clients). The secret only as its scrypt hash (``identity.secrets``);
- ``pk = RATE#<client id>``, ``sk = <window>``: the requests of one one-second window (an atomic ADD),
  gone by TTL a minute later;
- ``pk = ASSERTION#<client id>#<SHA-256 of the jti>``, ``sk = ASSERTION``: a used client assertion id,
  until the assertion expires (then TTL removes it; until it does, the put's condition ignores it).
Client ids are global (a client authenticates by id alone), so every update is conditional on the row's
tenant: one tenant's call cannot change another tenant's client. Reads of a client are strongly
consistent, so a revocation is seen by the next request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded
from reliquary.errors import InvalidRequestError, NotFoundError, ReliquaryError
from reliquary.identity.models import Client, ClientStatus, StoredClient, Tenant
from reliquary.identity.scopes import RoleBinding

TENANT_INDEX = "TenantIndex"
CLIENT_SK = "CLIENT"
TENANT_SK = "TENANT"
ASSERTION_SK = "ASSERTION"
# Rate rows outlive their one-second window by this much (DynamoDB's TTL deletes them some time after).
RATE_ROW_SECONDS = 60


class TenantRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    created_at = NumberAttribute()


class TenantIndex(GlobalSecondaryIndex["ClientRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = TENANT_INDEX
        projection = AllProjection()

    tenant_pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ClientRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_pk = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    client_id = UnicodeAttribute()
    name = UnicodeAttribute()
    roles = UnicodeSetAttribute()  # "role" or "role/<vault id>"; never empty (1 to 32 roles)
    status = UnicodeAttribute()
    created_at = NumberAttribute()
    secret_rotated_at = NumberAttribute()
    not_before = NumberAttribute()
    secret_hash = UnicodeAttribute(null=True)  # absent for a client that authenticates with its did:key
    did = UnicodeAttribute(null=True)
    tenant_index = TenantIndex()


class AssertionRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    expires_at = NumberAttribute()


class RateRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    requests = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)


def _tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def _client_pk(client_id: str) -> str:
    return f"CLIENT#{client_id}"


class DynamoDBIdentityRepository:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._tenant_row = bind_model(TenantRow, config, client)
        self._client_row = bind_model(ClientRow, config, client)
        self._rate_row = bind_model(RateRow, config, client)
        self._assertion_row = bind_model(AssertionRow, config, client)
        self._connection = self._client_row._get_connection().connection

    # ------------------------------------------------------------------------------ rows <-> models
    def _client_row_for(self, stored: StoredClient) -> ClientRow:
        client = stored.client
        return self._client_row(
            _client_pk(client.client_id),
            CLIENT_SK,
            tenant_pk=_tenant_pk(client.tenant_id),
            tenant_id=client.tenant_id,
            client_id=client.client_id,
            name=client.name,
            roles={str(binding) for binding in client.roles},
            status=client.status.value,
            created_at=client.created_at,
            secret_rotated_at=client.secret_rotated_at,
            not_before=client.not_before,
            secret_hash=stored.secret_hash,
            did=client.did,
        )

    @staticmethod
    def _client_from(row: ClientRow) -> Client:
        try:
            return Client(
                client_id=row.client_id,
                tenant_id=row.tenant_id,
                name=row.name,
                roles=tuple(sorted((RoleBinding.parse(text) for text in row.roles), key=str)),
                status=ClientStatus(row.status),
                created_at=int(row.created_at),
                secret_rotated_at=int(row.secret_rotated_at),
                not_before=int(row.not_before),
                did=row.did,
            )
        except (InvalidRequestError, ValueError, TypeError):
            raise ReliquaryError("a stored client is corrupt") from None

    # ------------------------------------------------------------------------------ tenants
    def create_tenant(self, tenant: Tenant, first_client: StoredClient) -> None:
        tenant_row = self._tenant_row(
            _tenant_pk(tenant.tenant_id),
            TENANT_SK,
            tenant_id=tenant.tenant_id,
            name=tenant.name,
            created_at=tenant.created_at,
        )
        client_row = self._client_row_for(first_client)

        def write() -> None:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(tenant_row, condition=self._tenant_row.pk.does_not_exist())
                transaction.save(client_row, condition=self._client_row.pk.does_not_exist())

        guarded(write, "the tenant exists")

    def get_tenant(self, tenant_id: str) -> Tenant:
        try:
            row = guarded(
                lambda: self._tenant_row.get(_tenant_pk(tenant_id), TENANT_SK, consistent_read=True)
            )
        except self._tenant_row.DoesNotExist:
            raise NotFoundError("no such tenant") from None
        return Tenant(tenant_id=row.tenant_id, name=row.name, created_at=int(row.created_at))

    # ------------------------------------------------------------------------------ clients
    def create_client(self, stored: StoredClient) -> None:
        row = self._client_row_for(stored)
        guarded(lambda: row.save(condition=self._client_row.pk.does_not_exist()), "the client id exists")

    def get_client(self, client_id: str) -> StoredClient:
        try:
            row = guarded(
                lambda: self._client_row.get(_client_pk(client_id), CLIENT_SK, consistent_read=True)
            )
        except self._client_row.DoesNotExist:
            raise NotFoundError("no such client") from None
        return StoredClient(self._client_from(row), row.secret_hash)

    def list_clients(self, tenant_id: str) -> list[Client]:
        rows = guarded(
            lambda: list(
                # Only client rows carry tenant_pk: the index holds nothing else.
                self._client_row.tenant_index.query(_tenant_pk(tenant_id))
            )
        )
        return sorted((self._client_from(row) for row in rows), key=lambda c: c.client_id)

    def _update(self, tenant_id: str, client_id: str, actions: list[Any], *, active: bool) -> Client:
        row_cls = self._client_row
        row = row_cls(_client_pk(client_id), CLIENT_SK)
        condition = row_cls.pk.exists() & (row_cls.tenant_pk == _tenant_pk(tenant_id))
        if active:
            condition &= row_cls.status == ClientStatus.ACTIVE.value
        # update() reads the whole row back (ALL_NEW) into `row`.
        guarded(
            lambda: row.update(actions=actions, condition=condition),
            "the client is not an active client of this tenant",
        )
        return self._client_from(row)

    def rotate_secret(
        self, tenant_id: str, client_id: str, *, secret_hash: str, rotated_at: int, not_before: int | None
    ) -> Client:
        row_cls = self._client_row
        actions = [row_cls.secret_hash.set(secret_hash), row_cls.secret_rotated_at.set(rotated_at)]
        if not_before is not None:
            actions.append(row_cls.not_before.set(not_before))
        return self._update(tenant_id, client_id, actions, active=True)

    def replace_secret_hash(self, client_id: str, *, old_hash: str, new_hash: str) -> None:
        row_cls = self._client_row
        row = row_cls(_client_pk(client_id), CLIENT_SK)
        guarded(
            lambda: row.update(
                actions=[row_cls.secret_hash.set(new_hash)], condition=row_cls.secret_hash == old_hash
            ),
            "the secret changed",
        )

    def revoke(self, tenant_id: str, client_id: str, *, not_before: int) -> Client:
        row_cls = self._client_row
        actions = [row_cls.status.set(ClientStatus.REVOKED.value), row_cls.not_before.set(not_before)]
        return self._update(tenant_id, client_id, actions, active=False)

    def set_roles(self, tenant_id: str, client_id: str, roles: Sequence[RoleBinding]) -> Client:
        actions = [self._client_row.roles.set({str(binding) for binding in roles})]
        return self._update(tenant_id, client_id, actions, active=True)

    # ------------------------------------------------------------------------------ client assertions
    def use_assertion_id(self, client_id: str, jti: str, *, expires_at: int, now: int) -> None:
        # Hashed: a jti is the client's string, and a key is at most 2048 bytes.
        digest = hashlib.sha256(jti.encode("utf-8")).hexdigest()
        row_cls = self._assertion_row
        row = row_cls(f"ASSERTION#{client_id}#{digest}", ASSERTION_SK, expires_at=expires_at)
        # A row past its expiry may linger until TTL deletes it: it no longer counts.
        condition = row_cls.pk.does_not_exist() | (row_cls.expires_at < now)
        guarded(lambda: row.save(condition=condition), "the assertion was used before")

    # ------------------------------------------------------------------------------ rate windows
    def count_request(self, client_id: str, window: int) -> int:
        row_cls = self._rate_row
        row = row_cls(f"RATE#{client_id}", str(window))
        guarded(
            lambda: row.update(
                actions=[row_cls.requests.add(1), row_cls.expires_at.set(window + RATE_ROW_SECONDS)]
            )
        )
        return int(row.requests or 0)
