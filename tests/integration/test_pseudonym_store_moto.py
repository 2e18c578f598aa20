"""The pseudonym secret's row in the vaults table (moto, KMS as the root of trust): written once by a
conditional put, shared by every later cold start, wrapped so that neither the table nor the row's bytes
hold the secret, and refused when the row holds a blob of another purpose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reliquary.adapters.clients import build_root_of_trust
from reliquary.adapters.pseudonym_store import KEY_ROW, PARTITION, load_pseudonym_secret, pseudonym_key_store
from reliquary.crypto.pseudonym import PSEUDONYM_KEY_CONTEXT, SECRET_BYTES
from reliquary.errors import ConflictError, RootOfTrustError
from tests.support.aws import AwsStack, moto_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with moto_stack(monkeypatch, tmp_path_factory.mktemp("moto")) as stack:
        yield stack


def test_the_secret_is_stored_once_wrapped_and_shared_by_later_cold_starts(aws: AwsStack) -> None:
    store, root = pseudonym_key_store(aws.settings, aws.dynamodb), build_root_of_trust(aws.settings)
    assert store.wrapped_key() is None
    secret = load_pseudonym_secret(aws.settings, root, aws.dynamodb)
    assert len(secret) == SECRET_BYTES
    assert load_pseudonym_secret(aws.settings, build_root_of_trust(aws.settings)) == secret  # a new client
    wrapped = store.wrapped_key()
    assert wrapped is not None
    assert secret not in wrapped
    assert root.unwrap(wrapped, context=PSEUDONYM_KEY_CONTEXT) == secret
    with pytest.raises(ConflictError):  # the conditional put: a racing cold start never overwrites it
        store.add_wrapped_key(root.wrap(bytes(32), context=PSEUDONYM_KEY_CONTEXT))
    assert store.wrapped_key() == wrapped
    (row,) = aws.dynamodb.query(
        TableName=aws.settings.vaults_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": PARTITION}},
    )["Items"]
    assert row["sk"] == {"S": KEY_ROW}
    assert secret not in repr(row).encode()


@pytest.mark.parametrize(
    "context",
    [{"purpose": "agent-memory", "version": "1"}, {"purpose": "principal-pseudonym", "tenant": "acme"}, {}],
)
def test_a_row_wrapped_under_another_context_is_refused(aws: AwsStack, context: dict[str, str]) -> None:
    store, root = pseudonym_key_store(aws.settings, aws.dynamodb), build_root_of_trust(aws.settings)
    blob = aws.kms.encrypt(KeyId=aws.settings.kms_key_id, Plaintext=bytes(32), EncryptionContext=context)
    store.add_wrapped_key(blob["CiphertextBlob"])
    with pytest.raises(RootOfTrustError):
        load_pseudonym_secret(aws.settings, root, aws.dynamodb)
