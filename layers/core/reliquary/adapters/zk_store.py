"""Context-proof state in DynamoDB: nonces and nullifiers (ReplayTable, TTL ``expires_at``) and each
vault's context policy (VaultsTable, ``pk = POLICY#<t>``, ``sk = VAULT#<v>#POLICY#CONTEXT``, see
``vault_policies``).

ReplayTable rows, one partition per tenant (``pk = TENANT#<t>``):
- ``sk = NONCE#<hex>``: vault, issued_at, expires_at; once consumed, ``used_by`` (request id), the proof's
  hash and its nullifier;
- ``sk = NULLIFIER#<decimal>``: the request that used it, expires_at.
Consuming is one transaction: the nonce row (only if unused and unexpired) and the nullifier row (only if
new), so two racing requests can never both pass.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded, translate_error
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.errors import (
    LogInconsistentError,
    NonceExpiredError,
    NonceUnknownError,
    NonceUsedError,
    NullifierSeenError,
)
from reliquary.zk.policy import ContextPolicy
from reliquary.zk.replay import Consumption, IssuedNonce


class ReplayRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    vault_id = UnicodeAttribute(null=True)
    issued_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    used_by = UnicodeAttribute(null=True)
    proof_hash = UnicodeAttribute(null=True)
    nullifier = UnicodeAttribute(null=True)  # decimal: a 254-bit field element
    requester = UnicodeAttribute(null=True)  # SHA-256 hex of the requester key the consuming request carried


def _pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


class DynamoDBReplayStore:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(ReplayRow, config, client)
        self._connection = self._row._get_connection().connection

    def add_nonce(self, nonce: IssuedNonce) -> None:
        row = self._row(
            _pk(nonce.tenant_id),
            f"NONCE#{nonce.nonce}",
            vault_id=nonce.vault_id,
            issued_at=nonce.issued_at,
            expires_at=nonce.expires_at,
        )
        guarded(lambda: row.save(condition=self._row.pk.does_not_exist()), "the nonce exists")

    def get_nonce(self, tenant_id: str, nonce: str) -> tuple[IssuedNonce, Consumption | None] | None:
        try:
            row = guarded(lambda: self._row.get(_pk(tenant_id), f"NONCE#{nonce}", consistent_read=True))
        except self._row.DoesNotExist:
            return None
        if row.vault_id is None or row.issued_at is None or row.expires_at is None:
            raise LogInconsistentError("a stored nonce is corrupt")
        issued = IssuedNonce(tenant_id, row.vault_id, nonce, int(row.issued_at), int(row.expires_at))
        if row.used_by is None:
            return issued, None
        used = Consumption(
            row.used_by,
            row.proof_hash or "",
            None if row.nullifier is None else int(row.nullifier),
            row.requester,
        )
        return issued, used

    def consume(self, tenant_id: str, nonce: str, used: Consumption, *, now: int, keep_until: int) -> None:
        row_cls = self._row
        nonce_row = row_cls(_pk(tenant_id), f"NONCE#{nonce}")
        actions: list[Any] = [row_cls.used_by.set(used.request_id), row_cls.proof_hash.set(used.proof_hash)]
        if used.nullifier is not None:
            actions.append(row_cls.nullifier.set(str(used.nullifier)))
        if used.requester is not None:
            actions.append(row_cls.requester.set(used.requester))
        unused_and_live = row_cls.pk.exists() & row_cls.used_by.does_not_exist() & (row_cls.expires_at > now)
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.update(nonce_row, actions=actions, condition=unused_and_live)
                if used.nullifier is not None:
                    transaction.save(
                        row_cls(
                            _pk(tenant_id),
                            f"NULLIFIER#{used.nullifier}",
                            used_by=used.request_id,
                            expires_at=keep_until,
                        ),
                        condition=row_cls.pk.does_not_exist(),
                    )
        except TransactWriteError as exc:
            # pynamodb sends puts before updates: [nullifier put, nonce update], or [nonce update].
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
            if reasons[-1:] == ["ConditionalCheckFailed"]:
                self._raise_nonce_problem(tenant_id, nonce, now)
            if len(reasons) == 2 and reasons[0] == "ConditionalCheckFailed":
                raise NullifierSeenError("the nullifier was seen") from exc
            translate_error(exc, "conflicting write")

    def _raise_nonce_problem(self, tenant_id: str, nonce: str, now: int) -> None:
        stored = self.get_nonce(tenant_id, nonce)
        if stored is None:
            raise NonceUnknownError("unknown nonce")
        if stored[1] is not None:
            raise NonceUsedError("the nonce was used")
        raise NonceExpiredError("the nonce expired", now=now)


def context_policy_store(
    config: TableConfig, client: Any | None = None
) -> DynamoDBVaultPolicyStore[ContextPolicy]:
    """The vaults' context policies (``POLICY#<t>`` / ``VAULT#<v>#POLICY#CONTEXT``)."""
    return DynamoDBVaultPolicyStore(config, ContextPolicy, kind="CONTEXT", client=client)
