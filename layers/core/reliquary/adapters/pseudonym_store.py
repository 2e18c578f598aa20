"""The deployment's principal-pseudonym secret in DynamoDB (VaultsTable), and loading it per cold start.

One row: ``pk = PSEUDONYM``, ``sk = KEY#1``, holding the secret only wrapped by the root of trust (context
``{"purpose": "principal-pseudonym"}``, see ``reliquary.crypto.pseudonym``). Written once, by a conditional
put, so two cold starts racing on a new deployment agree on the one stored first.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute
from pynamodb.models import Model

from reliquary.adapters.clients import table_config
from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded
from reliquary.config import Settings
from reliquary.crypto.pseudonym import Pseudonyms, load_or_create_secret
from reliquary.crypto.root import RootOfTrust

PARTITION = "PSEUDONYM"
KEY_ROW = "KEY#1"


class PseudonymKeyRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    wrapped_key = BinaryAttribute(legacy_encoding=False, null=True)


class DynamoDBPseudonymKeyStore:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(PseudonymKeyRow, config, client)

    def wrapped_key(self) -> bytes | None:
        try:
            row = guarded(lambda: self._row.get(PARTITION, KEY_ROW, consistent_read=True))
        except self._row.DoesNotExist:
            return None
        return bytes(row.wrapped_key) if row.wrapped_key else None

    def add_wrapped_key(self, wrapped: bytes) -> None:
        row = self._row(PARTITION, KEY_ROW, wrapped_key=wrapped)
        guarded(lambda: row.save(condition=self._row.pk.does_not_exist()), "a pseudonym key is stored")


def pseudonym_key_store(settings: Settings, client: Any | None = None) -> DynamoDBPseudonymKeyStore:
    return DynamoDBPseudonymKeyStore(table_config(settings, settings.vaults_table), client)


def load_pseudonym_secret(settings: Settings, root: RootOfTrust, client: Any | None = None) -> bytes:
    """The deployment's pseudonym secret, unwrapped (created on the first cold start of any function)."""
    return load_or_create_secret(pseudonym_key_store(settings, client), root)


def load_pseudonyms(settings: Settings, root: RootOfTrust, client: Any | None = None) -> Pseudonyms:
    return Pseudonyms(load_pseudonym_secret(settings, root, client))
