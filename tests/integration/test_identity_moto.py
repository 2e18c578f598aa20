"""The identity adapters on moto: the IdentityTable repository (one contract suite, run against it and
the in-memory repository), the KMS token key (ECC_NIST_P256, Sign on the digest), the JWKS, rotation
with overlap, and the service the factory builds from Settings."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from reliquary.adapters.clients import table_config
from reliquary.adapters.identity_factory import build_identity_service
from reliquary.adapters.identity_store import DynamoDBIdentityRepository
from reliquary.adapters.token_keys import KmsTokenSigner, load_token_keys
from reliquary.config import Settings
from reliquary.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ReliquaryError,
    RootOfTrustError,
    StorageUnavailableError,
)
from reliquary.identity import secrets
from reliquary.identity.jwk import b64url_decode, public_jwk, thumbprint
from reliquary.identity.memory import InMemoryIdentityRepository
from reliquary.identity.models import Client, ClientStatus, StoredClient, Tenant
from reliquary.identity.ports import IdentityRepository
from reliquary.identity.scopes import Role, RoleBinding
from reliquary.identity.tokens import TokenVerifier
from tests.support.aws import AwsStack, moto_stack

pytestmark = pytest.mark.integration

HASH = secrets.hash_secret("rqs_contract", secrets.ScryptParams(log2_n=10))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with moto_stack(monkeypatch, tmp_path_factory.mktemp("moto")) as stack:
        yield stack


def _store(aws: AwsStack) -> DynamoDBIdentityRepository:
    return DynamoDBIdentityRepository(table_config(aws.settings, aws.settings.identity_table), aws.dynamodb)


@pytest.fixture(params=["memory", "dynamodb"])
def repository(request: pytest.FixtureRequest) -> IdentityRepository:
    if request.param == "memory":
        return InMemoryIdentityRepository()
    return _store(request.getfixturevalue("aws"))


def _fields(client_id: str, tenant_id: str = "acme") -> dict[str, Any]:
    return {
        "client_id": client_id,
        "tenant_id": tenant_id,
        "name": "agent ✓",
        "roles": (RoleBinding(Role.AUDITOR), RoleBinding(Role.WRITER, "v1")),
        "status": ClientStatus.ACTIVE,
        "created_at": 100,
        "secret_rotated_at": 100,
        "not_before": 0,
    }


def _client(client_id: str, tenant_id: str = "acme", **changes: Any) -> StoredClient:
    return StoredClient(Client(**{**_fields(client_id, tenant_id), **changes}), HASH)


A, B, C = ("cl-" + digit * 24 for digit in "abc")


# ------------------------------------------------------------------------------------------- the contract


def test_tenants(repository: IdentityRepository) -> None:
    tenant = Tenant("acme", "Acme", 100)
    repository.create_tenant(tenant, _client(A))
    assert repository.get_tenant("acme") == tenant
    assert repository.get_client(A) == _client(A)
    with pytest.raises(ConflictError):
        repository.create_tenant(Tenant("acme", "Again", 101), _client(B))
    with pytest.raises(NotFoundError):
        repository.get_client(B)  # the transaction wrote nothing
    with pytest.raises(NotFoundError):
        repository.get_tenant("globex")


def test_clients(repository: IdentityRepository) -> None:
    repository.create_tenant(Tenant("acme", "Acme", 100), _client(B))
    repository.create_tenant(Tenant("globex", "Globex", 100), _client(C, "globex"))
    repository.create_client(_client(A))
    with pytest.raises(ConflictError):
        repository.create_client(_client(A, "globex"))
    assert repository.get_client(A).client.tenant_id == "acme"
    assert [c.client_id for c in repository.list_clients("acme")] == [A, B]
    assert repository.list_clients("acme")[0] == _client(A).client
    assert [c.client_id for c in repository.list_clients("globex")] == [C]
    assert repository.list_clients("initech") == []
    with pytest.raises(NotFoundError):
        repository.get_client("cl-" + "d" * 24)


def test_updates_are_bound_to_the_tenant(repository: IdentityRepository) -> None:
    repository.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    before = repository.get_client(A)
    updates: list[Callable[[], object]] = [
        lambda: repository.rotate_secret("globex", A, secret_hash="x", rotated_at=200, not_before=201),
        lambda: repository.revoke("globex", A, not_before=201),
        lambda: repository.set_roles("globex", A, [RoleBinding(Role.TENANT_ADMIN)]),
        lambda: repository.rotate_secret("acme", B, secret_hash="x", rotated_at=200, not_before=None),
    ]
    for update in updates:
        with pytest.raises(ConflictError):
            update()
    assert repository.get_client(A) == before


def test_rotate_revoke_and_roles(repository: IdentityRepository) -> None:
    repository.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    new_hash = secrets.hash_secret("rqs_new", secrets.ScryptParams(log2_n=10))
    rotated = repository.rotate_secret("acme", A, secret_hash=new_hash, rotated_at=200, not_before=None)
    assert (rotated.secret_rotated_at, rotated.not_before) == (200, 0)
    assert repository.get_client(A) == StoredClient(rotated, new_hash)
    rotated = repository.rotate_secret("acme", A, secret_hash=HASH, rotated_at=300, not_before=301)
    assert (rotated.secret_rotated_at, rotated.not_before) == (300, 301)
    roles = (RoleBinding(Role.APPROVER, "v2"), RoleBinding(Role.VAULT_ADMIN))
    assert repository.set_roles("acme", A, roles).roles == roles
    revoked = repository.revoke("acme", A, not_before=400)
    assert (revoked.status, revoked.not_before, revoked.roles) == (ClientStatus.REVOKED, 400, roles)
    assert repository.get_client(A).client == revoked
    with pytest.raises(ConflictError):
        repository.rotate_secret("acme", A, secret_hash=HASH, rotated_at=500, not_before=None)
    with pytest.raises(ConflictError):
        repository.set_roles("acme", A, roles)


def test_replace_secret_hash_is_conditional(repository: IdentityRepository) -> None:
    repository.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    with pytest.raises(ConflictError):
        repository.replace_secret_hash(A, old_hash="stale", new_hash="new")
    repository.replace_secret_hash(A, old_hash=HASH, new_hash="new")
    assert repository.get_client(A).secret_hash == "new"


def test_request_counts(repository: IdentityRepository) -> None:
    assert [repository.count_request(A, 1000) for _ in range(3)] == [1, 2, 3]
    assert repository.count_request(A, 1001) == 1
    assert repository.count_request(B, 1000) == 1


def test_a_did_client_has_no_secret_hash(repository: IdentityRepository) -> None:
    did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    stored = StoredClient(Client(**{**_fields(B), "did": did}), None)
    repository.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    repository.create_client(stored)
    assert repository.get_client(B) == stored
    assert repository.get_client(A).client.did is None


def test_assertion_ids_are_single_use_until_they_expire(repository: IdentityRepository) -> None:
    repository.use_assertion_id(A, "jti-1", expires_at=1300, now=1000)
    with pytest.raises(ConflictError):
        repository.use_assertion_id(A, "jti-1", expires_at=1310, now=1010)
    with pytest.raises(ConflictError):
        repository.use_assertion_id(A, "jti-1", expires_at=1600, now=1300)  # the last second it holds
    repository.use_assertion_id(B, "jti-1", expires_at=1300, now=1000)  # another client's is its own
    repository.use_assertion_id(A, "jti-2", expires_at=1300, now=1000)
    # Past its expiry (a row TTL has not deleted yet) it no longer counts; the new use holds again.
    repository.use_assertion_id(A, "jti-1", expires_at=1700, now=1301)
    with pytest.raises(ConflictError):
        repository.use_assertion_id(A, "jti-1", expires_at=1800, now=1400)


# ---------------------------------------------------------------------------------------------- the table


def test_the_table_as_stored(aws: AwsStack) -> None:
    store = _store(aws)
    store.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    store.count_request(A, 1000)
    store.use_assertion_id(A, "a jti", expires_at=1330, now=1000)
    table = aws.settings.identity_table
    client_row = aws.dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"CLIENT#{A}"}, "sk": {"S": "CLIENT"}}
    )
    item = client_row["Item"]
    assert item["tenant_pk"] == {"S": "TENANT#acme"}
    assert item["secret_hash"] == {"S": HASH}
    assert set(item["roles"]["SS"]) == {"auditor", "writer/v1"}
    rate = aws.dynamodb.get_item(TableName=table, Key={"pk": {"S": f"RATE#{A}"}, "sk": {"S": "1000"}})["Item"]
    assert rate["requests"] == {"N": "1"}
    assert rate["expires_at"] == {"N": "1060"}
    used = hashlib.sha256(b"a jti").hexdigest()
    assertion = aws.dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"ASSERTION#{A}#{used}"}, "sk": {"S": "ASSERTION"}}
    )["Item"]
    assert assertion["expires_at"] == {"N": "1330"}
    ttl = aws.dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    (index,) = aws.dynamodb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "TenantIndex"
    assert index["KeySchema"] == [
        {"AttributeName": "tenant_pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


def test_a_corrupt_client_row_is_an_internal_error(aws: AwsStack) -> None:
    store = _store(aws)
    store.create_tenant(Tenant("acme", "Acme", 100), _client(A))
    aws.dynamodb.update_item(
        TableName=aws.settings.identity_table,
        Key={"pk": {"S": f"CLIENT#{A}"}, "sk": {"S": "CLIENT"}},
        UpdateExpression="SET #roles = :roles",
        ExpressionAttributeNames={"#roles": "roles"},
        ExpressionAttributeValues={":roles": {"SS": ["owner"]}},
    )
    with pytest.raises(ReliquaryError) as caught:
        store.get_client(A)
    assert caught.value.code == "internal_error"
    assert "owner" not in caught.value.message


def test_aws_errors_become_typed_errors(aws: AwsStack) -> None:
    missing = DynamoDBIdentityRepository(table_config(aws.settings, "no-such-table"), aws.dynamodb)
    with pytest.raises(ReliquaryError) as caught:
        missing.get_client(A)
    assert caught.value.details == {"aws_code": "ResourceNotFoundException"}
    assert not isinstance(caught.value, StorageUnavailableError)


# -------------------------------------------------------------------------------------- the KMS token key


def _token_key(aws: AwsStack, key_spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> str:
    arn: str = aws.kms.create_key(KeySpec=key_spec, KeyUsage=usage)["KeyMetadata"]["Arn"]
    return arn


def test_the_kms_signer(aws: AwsStack) -> None:
    key_arn = _token_key(aws)
    signer = KmsTokenSigner.load(aws.kms, key_arn)
    der = aws.kms.get_public_key(KeyId=key_arn)["PublicKey"]
    public = load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert signer.public_jwk() == public_jwk(public)
    assert signer.key_id == thumbprint(signer.public_jwk())
    message = b"header.claims"
    raw = signer.sign(message)
    assert len(raw) == 64
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))  # over the message, hashed once
    # KMS itself agrees: it signed the signing input (RAW, hashed once by KMS).
    verified = aws.kms.verify(
        KeyId=key_arn,
        Message=message,
        MessageType="RAW",
        Signature=signature,
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert verified["SignatureValid"]


def test_an_alias_is_pinned_to_its_key(aws: AwsStack) -> None:
    key_arn = _token_key(aws)
    aws.kms.create_alias(AliasName="alias/token", TargetKeyId=key_arn)
    signer = KmsTokenSigner.load(aws.kms, "alias/token")
    other = _token_key(aws)
    aws.kms.update_alias(AliasName="alias/token", TargetKeyId=other)
    raw = signer.sign(b"x")  # still the key the JWKS names, not the alias's new target
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = load_der_public_key(aws.kms.get_public_key(KeyId=key_arn)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"x", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("key_spec", "usage"),
    [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P384", "SIGN_VERIFY")],
)
def test_a_token_key_must_be_p256(aws: AwsStack, key_spec: str, usage: str) -> None:
    with pytest.raises(ConfigurationError, match="ECC_NIST_P256"):
        KmsTokenSigner.load(aws.kms, _token_key(aws, key_spec, usage))


def test_kms_refusals_are_typed(aws: AwsStack) -> None:
    with pytest.raises(RootOfTrustError) as caught:
        KmsTokenSigner.load(
            aws.kms, "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        )
    assert caught.value.details == {"aws_code": "NotFoundException"}


@pytest.mark.parametrize(
    ("failure", "error", "aws_code"),
    [
        (
            ClientError({"Error": {"Code": "ThrottlingException"}}, "Sign"),
            StorageUnavailableError,
            "ThrottlingException",
        ),
        (
            ClientError({"Error": {"Code": "DisabledException"}}, "Sign"),
            RootOfTrustError,
            "DisabledException",
        ),
        (
            ClientError({"Error": {"Code": "AccessDeniedException"}}, "Sign"),
            RootOfTrustError,
            "AccessDeniedException",
        ),
        (EndpointConnectionError(endpoint_url="https://kms"), StorageUnavailableError, None),
    ],
)
def test_sign_failures_are_typed(
    aws: AwsStack, failure: Exception, error: type[ReliquaryError], aws_code: str | None
) -> None:
    class Failing:
        def get_public_key(self, **kwargs: Any) -> Any:
            return aws.kms.get_public_key(**kwargs)

        def sign(self, **_: Any) -> Any:
            raise failure

    signer = KmsTokenSigner.load(Failing(), _token_key(aws))  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        signer.sign(b"x")
    assert caught.value.details.get("aws_code") == aws_code


def test_a_signature_that_does_not_verify_is_never_used(aws: AwsStack) -> None:
    """A KMS that signs something else (a digest hashed again, as moto's DIGEST mode does, or a key
    mix-up) answers with a valid signature of the wrong message, and the signer refuses it."""
    key_arn = _token_key(aws)

    class Rehashing:
        def __init__(self, kms: Any) -> None:
            self._kms = kms

        def get_public_key(self, **kwargs: Any) -> Any:
            return self._kms.get_public_key(**kwargs)

        def sign(self, **kwargs: Any) -> Any:
            return self._kms.sign(**{**kwargs, "Message": hashlib.sha256(kwargs["Message"]).digest()})

    signer = KmsTokenSigner.load(Rehashing(aws.kms), key_arn)  # type: ignore[arg-type]
    with pytest.raises(RootOfTrustError, match="does not verify"):
        signer.sign(b"header.claims")


# -------------------------------------------------------------------------------------------- the service


def _settings(monkeypatch: pytest.MonkeyPatch, signing: str, previous: tuple[str, ...] = ()) -> Settings:
    monkeypatch.setenv("RELIQUARY_TOKEN_SIGNING_KEY_ID", signing)
    monkeypatch.setenv("RELIQUARY_TOKEN_PREVIOUS_KEY_IDS", json.dumps(list(previous)))
    return Settings()


def test_a_kms_signed_token_verifies_with_the_jwks(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    service = build_identity_service(_settings(monkeypatch, _token_key(aws)))
    _, admin, secret = service.create_tenant("acme", "Acme")
    issued = service.issue_token(service.authenticate(admin.client_id, secret))
    jwks = service.jwks()
    verifier = TokenVerifier(
        jwks["keys"], issuer=aws.settings.token_issuer, audience=aws.settings.token_audience
    )
    verified = verifier.verify(issued.access_token, now=int(time.time()))
    assert (verified.tenant_id, verified.client_id) == ("acme", admin.client_id)
    # Without jose: the JWK's point and the raw signature, as any ES256 verifier would use them.
    (jwk,) = jwks["keys"]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    head, body, signature = issued.access_token.split(".")
    raw = b64url_decode(signature)
    public.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{head}.{body}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    assert service.authorize(issued.access_token).tenant_id == "acme"
    service.revoke_client("acme", admin.client_id)
    with pytest.raises(AuthenticationError):
        service.authorize(issued.access_token)


def test_key_rotation_with_overlap(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = _token_key(aws), _token_key(aws)
    before = build_identity_service(_settings(monkeypatch, old_key))
    _, admin, _ = before.create_tenant("acme", "Acme")
    old_token = before.issue_token(admin).access_token
    during = build_identity_service(_settings(monkeypatch, new_key, (old_key,)))
    keys = load_token_keys(aws.kms, new_key, [old_key])
    assert [k["kid"] for k in during.jwks()["keys"]] == [keys.signer.key_id, keys.previous[0]["kid"]]
    assert during.authorize(old_token).client_id == admin.client_id
    new_token = during.issue_token(admin).access_token
    after = build_identity_service(_settings(monkeypatch, new_key))
    assert len(after.jwks()["keys"]) == 1
    with pytest.raises(AuthenticationError):
        after.authorize(old_token)
    assert after.authorize(new_token).client_id == admin.client_id


def test_the_factory_needs_a_token_key(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELIQUARY_TOKEN_SIGNING_KEY_ID", raising=False)
    with pytest.raises(ConfigurationError, match="RELIQUARY_TOKEN_SIGNING_KEY_ID"):
        build_identity_service(Settings())
