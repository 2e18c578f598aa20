"""A vault's policies in the vaults table: one row per kind (``pk = POLICY#<t>``,
``sk = VAULT#<v>#POLICY#<KIND>``), holding the policy model's JSON, written only for a vault that exists (one
transaction with a check of the vault row, ``TENANT#<t>`` / ``VAULT#<v>``).

Policies have a partition of their own so that the functions that keep them (verify-proof, score-trust,
agent-vote) are granted ``POLICY#*`` rows and never the ``TENANT#<t>`` rows that hold the vault keys
(template.yaml, docs/iam.md)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded, translate_error
from reliquary.errors import LogInconsistentError, NotFoundError

P = TypeVar("P", bound=BaseModel)


class PolicyRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    policy = UnicodeAttribute(null=True)  # the policy model's JSON


class DynamoDBVaultPolicyStore(Generic[P]):
    """``get`` / ``put`` of one kind of vault policy (``CONTEXT`` for proofs, ``TRUST`` for scoring)."""

    def __init__(self, config: TableConfig, model: type[P], *, kind: str, client: Any | None = None) -> None:
        self._row = bind_model(PolicyRow, config, client)
        self._connection = self._row._get_connection().connection
        self._model = model
        self._kind = kind

    def _key(self, tenant_id: str, vault_id: str) -> tuple[str, str]:
        return f"POLICY#{tenant_id}", f"VAULT#{vault_id}#POLICY#{self._kind}"

    def get(self, tenant_id: str, vault_id: str) -> P | None:
        try:
            row = guarded(lambda: self._row.get(*self._key(tenant_id, vault_id), consistent_read=True))
        except self._row.DoesNotExist:
            return None
        if not row.policy:
            raise LogInconsistentError(f"a stored {self._kind.lower()} policy is corrupt", vault_id=vault_id)
        return self._model.model_validate_json(row.policy)

    def put(self, tenant_id: str, vault_id: str, policy: P) -> None:
        row_cls = self._row
        row = row_cls(*self._key(tenant_id, vault_id), policy=policy.model_dump_json())
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.condition_check(
                    row_cls, f"TENANT#{tenant_id}", f"VAULT#{vault_id}", condition=row_cls.pk.exists()
                )
                transaction.save(row)
        except TransactWriteError as exc:
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise NotFoundError("no such vault", vault_id=vault_id) from exc
            translate_error(exc, "conflicting write")
