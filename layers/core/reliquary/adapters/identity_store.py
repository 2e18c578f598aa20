"""Tenants, API clients and per-client request counters in DynamoDB (IdentityTable, TTL ``expires_at``).

Rows (see template.yaml):
- ``pk = TENANT#<t>``, ``sk = TENANT``: the tenant;
- ``pk = CLIENT#<client id>``, ``sk = CLIENT``: a client, with ``tenant_pk = TENANT#<t>`` for the
  ``TenantIndex`` GSI (the tenant's clients). The secret only as its scrypt hash (``identity.secrets``);
- ``pk = RATE#<client id>``, ``sk = <window>``: the requests of one one-second window (an atomic ADD),
  gone by TTL a minute later;
- ``pk = PERSON#<person id>``, ``sk = PERSON``: a person, with ``tenant_pk`` for the ``TenantIndex``
  (the index's sort key tells persons from clients), the ids of its credentials and its pending
  enrollment token's ``jti``;
- ``pk = CREDENTIAL#<credential id, base64url>``, ``sk = CREDENTIAL``: a passkey's public key (COSE),
  counter, transports, AAGUID. No ``tenant_pk``: listed through the person row's ``credential_ids``,
  which a transaction writes together with the credential (so the list is strongly consistent);
- ``pk = CHALLENGE#<challenge id>``, ``sk = CHALLENGE``: a WebAuthn challenge, deleted as it is read
  (``ReturnValues=ALL_OLD``: one reader gets it), gone by TTL after ``expires_at`` otherwise.
Client ids are global (a client authenticates by id alone), so every update is conditional on the row's
tenant: one tenant's call cannot change another tenant's client. Reads of a client are strongly
consistent, so a revocation is seen by the next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.expressions.condition import size
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded
from reliquary.errors import ConflictError, InvalidRequestError, NotFoundError, ReliquaryError
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

TENANT_INDEX = "TenantIndex"
CLIENT_SK = "CLIENT"
TENANT_SK = "TENANT"
PERSON_SK = "PERSON"
CREDENTIAL_SK = "CREDENTIAL"
CHALLENGE_SK = "CHALLENGE"
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
    secret_hash = UnicodeAttribute()
    tenant_index = TenantIndex()


class PersonIndex(GlobalSecondaryIndex["PersonRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = TENANT_INDEX
        projection = AllProjection()

    tenant_pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class PersonRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_pk = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    person_id = UnicodeAttribute()
    name = UnicodeAttribute()
    roles = UnicodeSetAttribute()
    status = UnicodeAttribute()
    created_at = NumberAttribute()
    not_before = NumberAttribute()
    user_handle = BinaryAttribute(legacy_encoding=False)
    credential_ids = UnicodeSetAttribute(null=True)  # absent when empty (DynamoDB has no empty sets)
    enrollment_jti = UnicodeAttribute(null=True)
    enrollment_expires_at = NumberAttribute(null=True)
    tenant_index = PersonIndex()


class CredentialRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    person_id = UnicodeAttribute()
    credential_id = UnicodeAttribute()
    public_key = BinaryAttribute(legacy_encoding=False)
    sign_count = NumberAttribute()
    transports = UnicodeSetAttribute(null=True)
    aaguid = UnicodeAttribute()
    created_at = NumberAttribute()
    last_used_at = NumberAttribute(null=True)
    label = UnicodeAttribute()


class ChallengeRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    challenge = BinaryAttribute(legacy_encoding=False)
    purpose = UnicodeAttribute()
    expires_at = NumberAttribute()
    tenant_id = UnicodeAttribute(null=True)
    person_id = UnicodeAttribute(null=True)
    token_jti = UnicodeAttribute(null=True)


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


def _person_pk(person_id: str) -> str:
    return f"PERSON#{person_id}"


def _credential_pk(credential_id: str) -> str:
    return f"CREDENTIAL#{credential_id}"


def _challenge_pk(challenge_id: str) -> str:
    return f"CHALLENGE#{challenge_id}"


class DynamoDBIdentityRepository:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._tenant_row = bind_model(TenantRow, config, client)
        self._client_row = bind_model(ClientRow, config, client)
        self._rate_row = bind_model(RateRow, config, client)
        self._person_row = bind_model(PersonRow, config, client)
        self._credential_row = bind_model(CredentialRow, config, client)
        self._challenge_row = bind_model(ChallengeRow, config, client)
        self._table_name = config.table_name
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
                # Client and person rows carry tenant_pk; the sort key tells them apart.
                self._client_row.tenant_index.query(
                    _tenant_pk(tenant_id), range_key_condition=self._client_row.sk == CLIENT_SK
                )
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

    # ------------------------------------------------------------------------------ people
    def _person_row_for(self, person: Person) -> PersonRow:
        return self._person_row(
            _person_pk(person.person_id),
            PERSON_SK,
            tenant_pk=_tenant_pk(person.tenant_id),
            tenant_id=person.tenant_id,
            person_id=person.person_id,
            name=person.name,
            roles={str(binding) for binding in person.roles},
            status=person.status.value,
            created_at=person.created_at,
            not_before=person.not_before,
            user_handle=person.user_handle,
            credential_ids=set(person.credential_ids) or None,
            enrollment_jti=person.enrollment_jti,
            enrollment_expires_at=person.enrollment_expires_at,
        )

    @staticmethod
    def _person_from(row: PersonRow) -> Person:
        try:
            return Person(
                person_id=row.person_id,
                tenant_id=row.tenant_id,
                name=row.name,
                roles=tuple(sorted((RoleBinding.parse(text) for text in row.roles), key=str)),
                status=PersonStatus(row.status),
                created_at=int(row.created_at),
                not_before=int(row.not_before),
                user_handle=bytes(row.user_handle),
                credential_ids=tuple(sorted(row.credential_ids or ())),
                enrollment_jti=row.enrollment_jti,
                enrollment_expires_at=None
                if row.enrollment_expires_at is None
                else int(row.enrollment_expires_at),
            )
        except (InvalidRequestError, ValueError, TypeError):
            raise ReliquaryError("a stored person is corrupt") from None

    def create_person(self, person: Person) -> None:
        row = self._person_row_for(person)
        guarded(lambda: row.save(condition=self._person_row.pk.does_not_exist()), "the person id exists")

    def get_person(self, person_id: str) -> Person:
        try:
            row = guarded(
                lambda: self._person_row.get(_person_pk(person_id), PERSON_SK, consistent_read=True)
            )
        except self._person_row.DoesNotExist:
            raise NotFoundError("no such person") from None
        return self._person_from(row)

    def list_persons(self, tenant_id: str) -> list[Person]:
        rows = guarded(
            lambda: list(
                self._person_row.tenant_index.query(
                    _tenant_pk(tenant_id), range_key_condition=self._person_row.sk == PERSON_SK
                )
            )
        )
        return sorted((self._person_from(row) for row in rows), key=lambda p: p.person_id)

    def _update_person(self, tenant_id: str, person_id: str, actions: list[Any], *, active: bool) -> Person:
        row_cls = self._person_row
        row = row_cls(_person_pk(person_id), PERSON_SK)
        condition = row_cls.pk.exists() & (row_cls.tenant_pk == _tenant_pk(tenant_id))
        if active:
            condition &= row_cls.status == PersonStatus.ACTIVE.value
        guarded(
            lambda: row.update(actions=actions, condition=condition),
            "the person is not an active person of this tenant",
        )
        return self._person_from(row)

    def set_person_roles(self, tenant_id: str, person_id: str, roles: Sequence[RoleBinding]) -> Person:
        actions = [self._person_row.roles.set({str(binding) for binding in roles})]
        return self._update_person(tenant_id, person_id, actions, active=True)

    def revoke_person(self, tenant_id: str, person_id: str, *, not_before: int) -> Person:
        row_cls = self._person_row
        actions = [
            row_cls.status.set(PersonStatus.REVOKED.value),
            row_cls.not_before.set(not_before),
            row_cls.enrollment_jti.remove(),
            row_cls.enrollment_expires_at.remove(),
        ]
        return self._update_person(tenant_id, person_id, actions, active=False)

    def set_enrollment(self, tenant_id: str, person_id: str, *, jti: str, expires_at: int) -> Person:
        row_cls = self._person_row
        actions = [row_cls.enrollment_jti.set(jti), row_cls.enrollment_expires_at.set(expires_at)]
        return self._update_person(tenant_id, person_id, actions, active=True)

    def _credential_row_for(self, credential: StoredCredential) -> CredentialRow:
        return self._credential_row(
            _credential_pk(credential.credential_id),
            CREDENTIAL_SK,
            tenant_id=credential.tenant_id,
            person_id=credential.person_id,
            credential_id=credential.credential_id,
            public_key=credential.public_key,
            sign_count=credential.sign_count,
            transports=set(credential.transports) or None,
            aaguid=credential.aaguid,
            created_at=credential.created_at,
            last_used_at=credential.last_used_at,
            label=credential.label,
        )

    @staticmethod
    def _credential_from(row: CredentialRow) -> StoredCredential:
        try:
            return StoredCredential(
                credential_id=row.credential_id,
                tenant_id=row.tenant_id,
                person_id=row.person_id,
                public_key=bytes(row.public_key),
                sign_count=int(row.sign_count),
                transports=tuple(sorted(row.transports or ())),
                aaguid=row.aaguid,
                created_at=int(row.created_at),
                label=row.label,
                last_used_at=None if row.last_used_at is None else int(row.last_used_at),
            )
        except (ValueError, TypeError):
            raise ReliquaryError("a stored credential is corrupt") from None

    def add_credential(self, credential: StoredCredential, *, enrollment_jti: str | None) -> None:
        person_cls = self._person_row
        credential_row = self._credential_row_for(credential)
        person_row = person_cls(_person_pk(credential.person_id), PERSON_SK)
        held = size(person_cls.credential_ids)  # type: ignore[no-untyped-call]
        condition = (
            person_cls.pk.exists()
            & (person_cls.tenant_pk == _tenant_pk(credential.tenant_id))
            & (person_cls.status == PersonStatus.ACTIVE.value)
            & (person_cls.credential_ids.does_not_exist() | (held < MAX_CREDENTIALS))
        )
        actions: list[Any] = [person_cls.credential_ids.add({credential.credential_id})]
        if enrollment_jti is not None:
            # Consumes the enrollment: the same token cannot register a second passkey.
            condition &= person_cls.enrollment_jti == enrollment_jti
            actions += [person_cls.enrollment_jti.remove(), person_cls.enrollment_expires_at.remove()]

        def write() -> None:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(credential_row, condition=self._credential_row.pk.does_not_exist())
                transaction.update(person_row, actions=actions, condition=condition)

        guarded(write, "the person cannot take this credential")

    def get_credential(self, credential_id: str) -> StoredCredential:
        try:
            row = guarded(
                lambda: self._credential_row.get(
                    _credential_pk(credential_id), CREDENTIAL_SK, consistent_read=True
                )
            )
        except self._credential_row.DoesNotExist:
            raise NotFoundError("no such credential") from None
        return self._credential_from(row)

    def list_credentials(self, person: Person) -> list[StoredCredential]:
        if not person.credential_ids:
            return []
        keys = [(_credential_pk(c), CREDENTIAL_SK) for c in person.credential_ids]
        rows = guarded(lambda: list(self._credential_row.batch_get(keys, consistent_read=True)))
        found = [self._credential_from(row) for row in rows]
        return sorted(
            (c for c in found if c.person_id == person.person_id and c.tenant_id == person.tenant_id),
            key=lambda c: c.credential_id,
        )

    def remove_credential(self, tenant_id: str, person_id: str, credential_id: str) -> None:
        person_cls, credential_cls = self._person_row, self._credential_row
        credential_row = credential_cls(_credential_pk(credential_id), CREDENTIAL_SK)
        person_row = person_cls(_person_pk(person_id), PERSON_SK)

        def write() -> None:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.delete(
                    credential_row,
                    condition=(credential_cls.tenant_id == tenant_id)
                    & (credential_cls.person_id == person_id),
                )
                transaction.update(
                    person_row,
                    actions=[person_cls.credential_ids.delete({credential_id})],
                    condition=person_cls.tenant_pk == _tenant_pk(tenant_id),
                )

        try:
            guarded(write, "no such credential")
        except ConflictError:
            raise NotFoundError("no such credential") from None

    def advance_sign_count(
        self, credential_id: str, old: int, new: int, *, used_at: int | None = None
    ) -> None:
        row_cls = self._credential_row
        row = row_cls(_credential_pk(credential_id), CREDENTIAL_SK)
        actions: list[Any] = [row_cls.sign_count.set(new)]
        if used_at is not None:
            actions.append(row_cls.last_used_at.set(used_at))
        guarded(
            lambda: row.update(actions=actions, condition=row_cls.pk.exists() & (row_cls.sign_count == old)),
            "the credential's counter moved",
        )

    # ------------------------------------------------------------------------------ challenges
    def put_challenge(self, challenge: Challenge) -> None:
        row = self._challenge_row(
            _challenge_pk(challenge.challenge_id),
            CHALLENGE_SK,
            challenge=challenge.challenge,
            purpose=challenge.purpose,
            expires_at=challenge.expires_at,
            tenant_id=challenge.tenant_id,
            person_id=challenge.person_id,
            token_jti=challenge.token_jti,
        )
        guarded(
            lambda: row.save(condition=self._challenge_row.pk.does_not_exist()), "the challenge id exists"
        )

    def take_challenge(self, challenge_id: str, *, now: int) -> Challenge | None:
        # DeleteItem returning the old item: of two concurrent takes, only one sees it.
        response = guarded(
            lambda: self._connection.delete_item(
                self._table_name, _challenge_pk(challenge_id), CHALLENGE_SK, return_values="ALL_OLD"
            )
        )
        attributes = response.get("Attributes")
        if not attributes:
            return None
        row = self._challenge_row.from_raw_data(attributes)
        if now >= int(row.expires_at) or row.purpose not in {"registration", "authentication"}:
            return None
        return Challenge(
            challenge_id=challenge_id,
            challenge=bytes(row.challenge),
            purpose="registration" if row.purpose == "registration" else "authentication",
            expires_at=int(row.expires_at),
            tenant_id=row.tenant_id,
            person_id=row.person_id,
            token_jti=row.token_jti,
        )
