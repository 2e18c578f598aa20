"""template.yaml: it lints, translates offline, and declares what the code and the tests rely on."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.template import (
    REPO_ROOT,
    TEMPLATE_PATH,
    bucket_logical_ids,
    create_tables,
    function_environment,
    load_template,
    sam_translate,
    table_specs,
)

REGION = "us-east-1"
SCOPED_SERVICES = ("dynamodb:", "s3:", "kms:", "sqs:")
TABLES = ("VaultsTable", "ItemsTable", "IdempotencyTable")
ENCRYPT_ENVIRONMENT = {
    "RELIQUARY_STAGE",
    "RELIQUARY_VAULTS_TABLE",
    "RELIQUARY_ITEMS_TABLE",
    "RELIQUARY_IDEMPOTENCY_TABLE",
    "RELIQUARY_ITEMS_BUCKET",
    "RELIQUARY_AUDIT_TABLE",
    "RELIQUARY_AUDIT_BUCKET",
    "RELIQUARY_KMS_KEY_ID",
    "RELIQUARY_ROOT_OF_TRUST",
    "RELIQUARY_LARGE_ITEM_THRESHOLD",
    "RELIQUARY_IPFS_API_URL",
    "RELIQUARY_ARWEAVE_URL",
    "RELIQUARY_ARWEAVE_WALLET_KEY_ID",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# Set only when the deployment names the node (an empty parameter leaves the variable out).
PERMANENT_STORAGE_ENVIRONMENT = {
    "RELIQUARY_IPFS_API_URL": {"Fn::If": ["HasIpfsApiUrl", {"Ref": "IpfsApiUrl"}, {"Ref": "AWS::NoValue"}]},
    "RELIQUARY_ARWEAVE_URL": {"Fn::If": ["HasArweaveUrl", {"Ref": "ArweaveUrl"}, {"Ref": "AWS::NoValue"}]},
    "RELIQUARY_ARWEAVE_WALLET_KEY_ID": {
        "Fn::If": [
            "HasKmsArweaveWallet",
            {"Fn::GetAtt": ["ArweaveWalletKey", "Arn"]},
            {"Ref": "AWS::NoValue"},
        ]
    },
}


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return sam_translate(region=REGION)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def dynamodb(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource(translated: dict[str, Any], logical_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = translated["Resources"][logical_id]
    return resource


# ------------------------------------------------------------------ lint and translation


def test_cfn_lint_reports_nothing() -> None:
    venv_cfn_lint = Path(sys.executable).with_name("cfn-lint")
    cfn_lint = str(venv_cfn_lint) if venv_cfn_lint.exists() else shutil.which("cfn-lint")
    assert cfn_lint is not None, "cfn-lint is not installed"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [cfn_lint, "--format", "parseable", str(TEMPLATE_PATH)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_translates_offline_to_every_declared_resource(translated: dict[str, Any]) -> None:
    by_type: dict[str, list[str]] = {}
    for logical_id, resource in translated["Resources"].items():
        by_type.setdefault(resource["Type"], []).append(logical_id)

    assert "Transform" not in translated
    # Resources added later (functions, tables, the state machine) must not break this test.
    assert "EncryptFunction" in by_type["AWS::Lambda::Function"]
    assert set(TABLES) <= set(by_type["AWS::DynamoDB::Table"])
    assert "ItemsBucket" in by_type["AWS::S3::Bucket"]
    # The root key, and the two slots of the access-token key (docs/iam.md, Rotating the token key).
    # With ArweaveWallet kms, the Arweave wallet's RSA_4096 signing key (docs/storage.md).
    assert by_type["AWS::KMS::Key"] == ["ArweaveWalletKey", "RootKey", "TokenKeyA", "TokenKeyB"]
    assert by_type["AWS::KMS::Alias"] == ["RootKeyAlias"]
    # SAM gives layer versions a content-hash suffix; the function refers to the suffixed ids.
    layers = sorted(by_type["AWS::Lambda::LayerVersion"])
    assert len(layers) == 2
    assert all(
        layer.startswith(prefix) for layer, prefix in zip(layers, ("CoreLayer", "NativeLayer"), strict=True)
    )
    function = _resource(translated, "EncryptFunction")["Properties"]
    assert sorted(ref["Ref"] for ref in function["Layers"]) == layers
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Architectures"] == ["x86_64"]
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "EncryptFunctionLogGroup"}}


def test_outputs_name_the_stack_resources(translated: dict[str, Any]) -> None:
    assert set(translated["Outputs"]) >= {
        "VaultsTableName",
        "ItemsTableName",
        "IdempotencyTableName",
        "ItemsBucketName",
        "RootKeyArn",
        "EncryptFunctionArn",
        "CoreLayerArn",
        "NativeLayerArn",
        "IdentityTableName",
        "ApiUrl",
        "ApiFunctionArn",
        "TokenSigningKeyArn",
        "TokenKeyAArn",
        "TokenKeyBArn",
    }
    # A slot's output exists only while its key does.
    assert translated["Outputs"]["TokenKeyBArn"]["Condition"] == "HasTokenKeyB"


# ------------------------------------------------------------------ tables


def test_table_specs_are_what_the_code_expects() -> None:
    specs = table_specs()
    assert set(TABLES) <= set(specs)
    for logical_id in ("VaultsTable", "ItemsTable"):
        assert (specs[logical_id].hash_key, specs[logical_id].range_key) == ("pk", "sk")
        assert specs[logical_id].attribute_definitions[:2] == [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ]
    assert specs["VaultsTable"].global_secondary_indexes == []
    assert specs["VaultsTable"].ttl_attribute is None
    assert specs["ItemsTable"].ttl_attribute == "expires_at"
    assert all(spec.billing_mode == "PAY_PER_REQUEST" for spec in specs.values())
    assert all(spec.provisioned_throughput is None for spec in specs.values())


def test_the_scope_index_is_the_one_the_items_adapter_queries_and_holds_no_envelope() -> None:
    from reliquary.adapters.dynamodb import SCOPE_INDEX_ATTRIBUTES, ItemRow

    items = table_specs()["ItemsTable"]
    assert items.attribute_definitions[2:] == [{"AttributeName": "scope_pk", "AttributeType": "S"}]
    (index,) = items.global_secondary_indexes
    assert index["IndexName"] == "ScopeIndex"
    assert index["KeySchema"] == [
        {"AttributeName": "scope_pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(SCOPE_INDEX_ATTRIBUTES),
    }
    # Every projected attribute is one the items adapter writes, and none is the envelope (a wrapped
    # data key) or the S3 key of a body.
    written = set(ItemRow.get_attributes())
    assert set(SCOPE_INDEX_ATTRIBUTES) <= written
    assert {"envelope", "blob_key"} & set(SCOPE_INDEX_ATTRIBUTES) == set()


def test_idempotency_table_matches_powertools_defaults() -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters
    spec = table_specs()["IdempotencyTable"]
    assert (spec.hash_key, spec.range_key) == (defaults["key_attr"].default, None)
    assert spec.attribute_definitions == [{"AttributeName": "id", "AttributeType": "S"}]
    assert spec.ttl_attribute == defaults["expiry_attr"].default == "expiration"


@pytest.mark.integration
def test_create_tables_on_moto(dynamodb: Any) -> None:
    names = create_tables(dynamodb, prefix="unit")

    assert names == {logical_id: f"unit-{logical_id}" for logical_id in table_specs()}
    assert set(TABLES) <= set(names)
    for logical_id, spec in table_specs().items():
        table = dynamodb.describe_table(TableName=names[logical_id])["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["KeySchema"] == spec.key_schema
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = {
        logical_id: dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        for logical_id, name in names.items()
    }
    assert ttl["ItemsTable"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert ttl["IdempotencyTable"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}
    assert ttl["VaultsTable"]["TimeToLiveStatus"] == "DISABLED"


@pytest.mark.integration
def test_create_tables_handles_indexes_and_provisioned_tables(dynamodb: Any, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PROVISIONED
      ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: gsi1
          KeySchema: [{AttributeName: gsi1pk, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
          ContributorInsightsSpecification: {Enabled: false}
""",
        encoding="utf-8",
    )
    names = create_tables(dynamodb, prefix="gsi", path=template)

    table = dynamodb.describe_table(TableName=names["Things"])["Table"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]


def test_table_specs_refuse_intrinsics_in_key_schema(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: !Ref KeyName, AttributeType: S}]
      KeySchema: [{AttributeName: !Ref KeyName, KeyType: HASH}]
""",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"must be a literal"):
        table_specs(template)


# ------------------------------------------------------------------ storage and the root key


def test_storage_is_encrypted_with_the_root_key() -> None:
    resources = load_template()["Resources"]
    root_key_arn = {"Fn::GetAtt": ["RootKey", "Arn"]}
    for logical_id in TABLES:
        assert resources[logical_id]["Properties"]["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": root_key_arn,
        }
    for logical_id in ("VaultsTable", "ItemsTable"):
        properties = resources[logical_id]["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}

    assert "ItemsBucket" in bucket_logical_ids()
    bucket = resources["ItemsBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": root_key_arn},
        "BucketKeyEnabled": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_bucket_policy_denies_requests_without_tls() -> None:
    resources = load_template()["Resources"]
    policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    buckets = [logical for logical, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    assert sorted(policy["Properties"]["Bucket"]["Ref"] for policy in policies) == sorted(buckets)
    assert set(buckets) == {"ItemsBucket", "AuditBucket"}
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            statement["Effect"] == "Deny"
            and statement["Principal"] == "*"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for statement in statements
        )


def test_root_key_rotates_and_refuses_use_without_encryption_context() -> None:
    key = load_template()["Resources"]["RootKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    statements = key["KeyPolicy"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert len(deny) == 1
    assert {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"} <= set(deny[0]["Action"])
    assert deny[0]["Condition"] == {"Null": {"kms:EncryptionContextKeys": "true"}}


# ------------------------------------------------------------------ the encrypt function


def test_encrypt_function_environment_is_exactly_the_contract() -> None:
    from reliquary.config import ENV_PREFIX, Settings

    environment = function_environment("EncryptFunction")
    assert set(environment) == ENCRYPT_ENVIRONMENT
    assert environment["RELIQUARY_ROOT_OF_TRUST"] == "kms"
    assert environment["RELIQUARY_KMS_KEY_ID"] == {"Fn::GetAtt": ["RootKey", "Arn"]}
    assert environment["RELIQUARY_LARGE_ITEM_THRESHOLD"] == {"Ref": "LargeItemThresholdBytes"}
    assert environment["RELIQUARY_VAULTS_TABLE"] == {"Ref": "VaultsTable"}
    assert environment["RELIQUARY_ITEMS_BUCKET"] == {"Ref": "ItemsBucket"}
    # A grant reads the decision logged for its request in the tenant's transparency log.
    assert environment["RELIQUARY_AUDIT_TABLE"] == {"Ref": "AuditTable"}
    assert environment["RELIQUARY_AUDIT_BUCKET"] == {"Ref": "AuditBucket"}
    assert environment["POWERTOOLS_SERVICE_NAME"] == "reliquary-encrypt"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "Reliquary"
    for name, value in PERMANENT_STORAGE_ENVIRONMENT.items():
        assert environment[name] == value
    # Every RELIQUARY_* variable is read by the one settings object.
    reliquary_fields = {
        name.removeprefix(ENV_PREFIX).lower() for name in environment if name.startswith(ENV_PREFIX)
    }
    assert reliquary_fields <= set(Settings.model_fields)


def test_function_environment_refuses_unknown_functions() -> None:
    with pytest.raises(KeyError, match="NoSuchFunction"):
        function_environment("NoSuchFunction")


def _allow_statements(translated: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = _resource(translated, role)["Properties"].get("Policies", [])
    return [
        statement
        for policy in policies
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
        if statement["Effect"] == "Allow"
    ]


ENCRYPT_DECRYPT = ("kms:Encrypt", "kms:Decrypt")
VIA_DYNAMODB = (
    ("kms:Decrypt",),
    {"StringEquals": {"kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}}},
)
VIA_S3 = (
    ("kms:Decrypt", "kms:GenerateDataKey"),
    {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}},
)


def _purposes(*purposes: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    return ENCRYPT_DECRYPT, {"StringEquals": {"kms:EncryptionContext:purpose": list(purposes)}}


def _kms_grants(statements: list[dict[str, Any]]) -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """Sid -> (actions, condition) of every statement on the root key: each has a condition."""
    grants = {}
    for statement in statements:
        if _as_list(statement["Action"])[0].startswith("kms:"):
            assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": ["RootKey", "Arn"]}]
            grants[statement["Sid"]] = (tuple(_as_list(statement["Action"])), statement["Condition"])
    return grants


def test_encrypt_function_role_is_least_privilege(translated: dict[str, Any]) -> None:
    role = _resource(translated, "EncryptFunctionRole")["Properties"]
    # Only the managed policies SAM attaches itself: logs, and X-Ray from `Tracing: Active`.
    assert sorted(arn.rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]) == [
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    ]
    statements = _allow_statements(translated, "EncryptFunctionRole")
    assert statements
    granted: dict[str, set[str]] = {}
    for statement in statements:
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        assert "*" not in actions
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        for action in actions:
            assert action.startswith(SCOPED_SERVICES), action
            assert not action.endswith("*"), action
            assert "*" not in resources, action
            granted.setdefault(action.split(":", 1)[0], set()).update(map(json.dumps, resources))

    assert granted == {
        "dynamodb": {json.dumps({"Fn::GetAtt": [table, "Arn"]}) for table in (*TABLES, "AuditTable")}
        | {json.dumps({"Fn::Sub": "${ItemsTable.Arn}/stream/*"})}
        | {json.dumps({"Fn::Sub": "${ItemsTable.Arn}/index/ScopeIndex"})},
        "sqs": {json.dumps({"Fn::GetAtt": ["ItemsExpiredFailureQueue", "Arn"]})},
        "s3": {
            json.dumps({"Fn::Sub": "${ItemsBucket.Arn}/tenants/*"}),
            json.dumps({"Fn::GetAtt": ["ItemsBucket", "Arn"]}),
            json.dumps({"Fn::Sub": "${AuditBucket.Arn}/logs/*"}),
            json.dumps({"Fn::Sub": "${AuditBucket.Arn}/chains/*"}),
        },
        "kms": {json.dumps({"Fn::GetAtt": ["RootKey", "Arn"]})},
    }
    by_sid = {s.get("Sid"): s for s in statements}
    # The stream grant reads the items table's stream and nothing else.
    assert sorted(_as_list(by_sid["ItemsStream"]["Action"])) == [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    assert _as_list(by_sid["ItemsExpiredFailures"]["Action"]) == ["sqs:SendMessage"]
    # Per table, exactly what the code does: rows of vaults and items are never deleted (shredding
    # keeps a tombstone); only powertools deletes idempotency records.
    per_table: dict[str, set[str]] = {}
    for statement in statements:
        for resource in _as_list(statement["Resource"]):
            if isinstance(resource, dict) and resource.get("Fn::GetAtt", [None, None])[1] == "Arn":
                per_table.setdefault(resource["Fn::GetAtt"][0], set()).update(_as_list(statement["Action"]))
    rows = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert per_table["VaultsTable"] == rows | {"dynamodb:Query", "dynamodb:ConditionCheckItem"}
    assert per_table["ItemsTable"] == rows | {"dynamodb:Query"}
    assert per_table["IdempotencyTable"] == rows | {"dynamodb:DeleteItem"}
    # The transparency log is read, never written: a grant's decision lookup (a request id's row, the
    # head), then the entry bundles and attestation chains in S3. Never the checkpoint keys' rows.
    assert per_table["AuditTable"] == {"dynamodb:GetItem"}
    assert by_sid["AuditDecisionRows"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LOG#*"]}
    }
    assert "AuditCheckpointKeys" not in by_sid
    assert _as_list(by_sid["AuditLogObjects"]["Action"]) == ["s3:GetObject"]
    assert _as_list(by_sid["AuditLogObjects"]["Resource"]) == [
        {"Fn::Sub": "${AuditBucket.Arn}/logs/*"},
        {"Fn::Sub": "${AuditBucket.Arn}/chains/*"},
    ]
    # Bodies are deleted version by version: no unversioned delete (it would only add a marker).
    assert _as_list(by_sid["ItemObjects"]["Action"]) == [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObjectVersion",
    ]
    # Listing versions (for shredding) is the only bucket-level action, and only under tenants/.
    assert _as_list(by_sid["ItemObjectVersions"]["Action"]) == ["s3:ListBucketVersions"]
    assert by_sid["ItemObjectVersions"]["Condition"] == {"StringLike": {"s3:prefix": "tenants/*"}}
    assert _kms_grants(statements) == {
        "RootKeyForVaultAndServiceKeys": _purposes("vault-key", "service-signing", "arweave-wallet/bodies"),
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
        "RootKeyThroughS3": VIA_S3,
    }


def test_encrypt_function_has_an_errors_alarm() -> None:
    alarms = [
        r["Properties"]
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert any(
        alarm["MetricName"] == "Errors"
        and alarm["Namespace"] == "AWS/Lambda"
        and alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "EncryptFunction"}}]
        and alarm["Period"] == 300
        and alarm["Threshold"] == 0
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        for alarm in alarms
    )


def test_every_function_and_the_state_machine_have_an_alarm_that_notifies_the_alarm_topic() -> None:
    template = load_template()
    alarms = {
        lid: r["Properties"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for logical_id, alarm in alarms.items():
        assert alarm["AlarmActions"] == notify, logical_id
        assert alarm["OKActions"] == notify, logical_id
        assert alarm["TreatMissingData"] == "notBreaching", logical_id
    watched = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms.values() if a.get("MetricName") == "Errors"}
    functions = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert watched >= functions
    (machine,) = [a for a in alarms.values() if "Metrics" in a]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in machine["Metrics"] if "MetricStat" in m}
    assert {s["MetricName"] for s in stats.values()} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert all(
        s["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "AccessStateMachine"}}]
        for s in stats.values()
    )
    # An empty topic (the default) notifies nobody; anything else must be an SNS topic ARN.
    parameter = template["Parameters"]["AlarmTopicArn"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert re.fullmatch(parameter["AllowedPattern"], "arn:aws:sns:eu-west-1:123456789012:on-call")
    assert not re.fullmatch(parameter["AllowedPattern"], "arn:aws:sqs:eu-west-1:123456789012:queue")


# ------------------------------------------------------------------ the audit-append function


def test_audit_append_environment_is_exactly_the_contract() -> None:
    from reliquary.config import ENV_PREFIX, Settings

    environment = function_environment("AuditAppendFunction")
    assert set(environment) == {
        "RELIQUARY_STAGE",
        "RELIQUARY_AUDIT_TABLE",
        "RELIQUARY_AUDIT_BUCKET",
        "RELIQUARY_AUDIT_ORIGIN",
        "RELIQUARY_VAULTS_TABLE",
        "RELIQUARY_KMS_KEY_ID",
        "RELIQUARY_ROOT_OF_TRUST",
        "RELIQUARY_AUDIT_ANCHOR_BACKEND",
        "RELIQUARY_IPFS_API_URL",
        "RELIQUARY_ARWEAVE_URL",
        "RELIQUARY_ARWEAVE_WALLET_KEY_ID",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    assert environment["RELIQUARY_AUDIT_ANCHOR_BACKEND"] == {"Ref": "AuditAnchorBackend"}
    assert environment["RELIQUARY_AUDIT_TABLE"] == {"Ref": "AuditTable"}
    assert environment["RELIQUARY_AUDIT_BUCKET"] == {"Ref": "AuditBucket"}
    assert environment["RELIQUARY_ROOT_OF_TRUST"] == "kms"
    # The origin is unique per account, region and stage, and a valid origin once substituted.
    origin = environment["RELIQUARY_AUDIT_ORIGIN"]["Fn::Sub"]
    resolved = origin.replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "eu-west-1")
    assert Settings(audit_origin=resolved.replace("${Stage}", "prod")).audit_origin == (
        "reliquary.123456789012.eu-west-1/prod/audit"
    )
    reliquary_fields = {
        name.removeprefix(ENV_PREFIX).lower() for name in environment if name.startswith(ENV_PREFIX)
    }
    assert reliquary_fields <= set(Settings.model_fields)


def test_audit_append_role_is_least_privilege(translated: dict[str, Any]) -> None:
    role = _resource(translated, "AuditAppendFunctionRole")["Properties"]
    assert sorted(arn.rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]) == [
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    ]
    statements = _allow_statements(translated, "AuditAppendFunctionRole")
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        for resource in _as_list(statement["Resource"]):
            assert resource != "*"
            for action in _as_list(statement["Action"]):
                assert not action.endswith("*"), action
                granted.setdefault(action, set()).add(json.dumps(resource))
    audit_table = json.dumps({"Fn::GetAtt": ["AuditTable", "Arn"]})
    vaults = json.dumps({"Fn::GetAtt": ["VaultsTable", "Arn"]})
    logs = json.dumps({"Fn::Sub": "${AuditBucket.Arn}/logs/*"})
    chains = json.dumps({"Fn::Sub": "${AuditBucket.Arn}/chains/*"})
    exports = json.dumps({"Fn::Sub": "${AuditBucket.Arn}/exports/*"})
    root_key = json.dumps({"Fn::GetAtt": ["RootKey", "Arn"]})
    # The log is append-only: no delete of any row or object. In the vaults table only the stages'
    # public keys and the pseudonym key (partitions: test_iam_matrix.py).
    assert granted == {
        "dynamodb:GetItem": {audit_table, vaults},
        "dynamodb:BatchGetItem": {audit_table},
        "dynamodb:PutItem": {audit_table, vaults},
        "dynamodb:UpdateItem": {audit_table},
        "dynamodb:Query": {audit_table, vaults},
        "s3:GetObject": {logs, chains},
        "s3:PutObject": {logs, chains, exports},
        "s3:AbortMultipartUpload": {exports},
        "kms:Encrypt": {root_key},
        "kms:Decrypt": {root_key},
        "kms:GenerateDataKey": {root_key},
    }
    assert _kms_grants(statements) == {
        "RootKeyForCheckpointAndPseudonymKeys": _purposes(
            "checkpoint-signing", "principal-pseudonym", "arweave-wallet/anchors"
        ),
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
        "RootKeyThroughS3": VIA_S3,
    }


# ------------------------------------------------------------------ the verify-proof function


def test_verify_proof_environment_is_exactly_the_contract() -> None:
    from reliquary.config import ENV_PREFIX, Settings

    environment = function_environment("VerifyProofFunction")
    assert set(environment) == {
        "RELIQUARY_STAGE",
        "RELIQUARY_VAULTS_TABLE",
        "RELIQUARY_REPLAY_TABLE",
        "RELIQUARY_KMS_KEY_ID",
        "RELIQUARY_ROOT_OF_TRUST",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    assert environment["RELIQUARY_REPLAY_TABLE"] == {"Ref": "ReplayTable"}
    reliquary_fields = {
        name.removeprefix(ENV_PREFIX).lower() for name in environment if name.startswith(ENV_PREFIX)
    }
    assert reliquary_fields <= set(Settings.model_fields)


def test_verify_proof_role_is_least_privilege(translated: dict[str, Any]) -> None:
    statements = _allow_statements(translated, "VerifyProofFunctionRole")
    granted: dict[str, set[str]] = {}
    for statement in statements:
        for resource in _as_list(statement["Resource"]):
            for action in _as_list(statement["Action"]):
                granted.setdefault(action, set()).add(json.dumps(resource))
    replay = json.dumps({"Fn::GetAtt": ["ReplayTable", "Arn"]})
    vaults = json.dumps({"Fn::GetAtt": ["VaultsTable", "Arn"]})
    root_key = json.dumps({"Fn::GetAtt": ["RootKey", "Arn"]})
    # No delete anywhere (nonces leave by TTL), no S3, no other table; in the vaults table the context
    # policies and the stages' keys only (partitions: test_iam_matrix.py).
    assert granted == {
        "dynamodb:GetItem": {replay, vaults},
        "dynamodb:PutItem": {replay, vaults},
        "dynamodb:UpdateItem": {replay},
        "dynamodb:Query": {vaults},
        "dynamodb:ConditionCheckItem": {vaults},
        "kms:Encrypt": {root_key},
        "kms:Decrypt": {root_key},
    }
    assert _kms_grants(_allow_statements(translated, "VerifyProofFunctionRole")) == {
        "RootKeyForStageSigning": _purposes("stage-signing/verify-proof"),
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
    }


def test_replay_rows_expire_by_ttl() -> None:
    replay = load_template()["Resources"]["ReplayTable"]["Properties"]
    assert replay["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# ------------------------------------------------------------------ the score-trust function


def test_score_trust_role_is_least_privilege_and_history_expires(translated: dict[str, Any]) -> None:
    assert set(function_environment("ScoreTrustFunction")) == {
        "RELIQUARY_STAGE",
        "RELIQUARY_HISTORY_TABLE",
        "RELIQUARY_VAULTS_TABLE",
        "RELIQUARY_ITEMS_TABLE",
        "RELIQUARY_IDEMPOTENCY_TABLE",
        "RELIQUARY_KMS_KEY_ID",
        "RELIQUARY_ROOT_OF_TRUST",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    assert function_environment("ScoreTrustFunction")["RELIQUARY_IDEMPOTENCY_TABLE"] == {
        "Ref": "IdempotencyTable"
    }
    granted: dict[str, set[str]] = {}
    for statement in _allow_statements(translated, "ScoreTrustFunctionRole"):
        for resource in _as_list(statement["Resource"]):
            for action in _as_list(statement["Action"]):
                granted.setdefault(action, set()).add(json.dumps(resource))
    history = json.dumps({"Fn::GetAtt": ["HistoryTable", "Arn"]})
    vaults = json.dumps({"Fn::GetAtt": ["VaultsTable", "Arn"]})
    idempotency = json.dumps({"Fn::GetAtt": ["IdempotencyTable", "Arn"]})
    root_key = json.dumps({"Fn::GetAtt": ["RootKey", "Arn"]})
    items = json.dumps({"Fn::GetAtt": ["ItemsTable", "Arn"]})
    # History rows leave by TTL only; only powertools deletes (in-progress) idempotency records; the
    # items table is read (labels), never written, and no bucket at all.
    assert granted == {
        "dynamodb:Query": {history, items, vaults},
        "dynamodb:PutItem": {history, vaults, idempotency},
        "dynamodb:GetItem": {items, vaults, idempotency},
        "dynamodb:UpdateItem": {idempotency},
        "dynamodb:DeleteItem": {idempotency},
        "dynamodb:ConditionCheckItem": {vaults},
        "kms:Encrypt": {root_key},
        "kms:Decrypt": {root_key},
    }
    assert _kms_grants(_allow_statements(translated, "ScoreTrustFunctionRole")) == {
        "RootKeyForStageSigningAndPseudonyms": _purposes("stage-signing/score-trust", "principal-pseudonym"),
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
    }
    table = load_template()["Resources"]["HistoryTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# ------------------------------------------------------------------ the agent-vote function


def test_agent_vote_role_is_least_privilege_and_memories_expire(translated: dict[str, Any]) -> None:
    granted: dict[str, set[str]] = {}
    for statement in _allow_statements(translated, "AgentVoteFunctionRole"):
        for resource in _as_list(statement["Resource"]):
            for action in _as_list(statement["Action"]):
                granted.setdefault(action, set()).add(json.dumps(resource))
    memories = json.dumps({"Fn::GetAtt": ["AgentMemoryTable", "Arn"]})
    vaults = json.dumps({"Fn::GetAtt": ["VaultsTable", "Arn"]})
    approvals = json.dumps({"Fn::GetAtt": ["ApprovalsTable", "Arn"]})
    identity = json.dumps({"Fn::GetAtt": ["IdentityTable", "Arn"]})
    root_key = json.dumps({"Fn::GetAtt": ["RootKey", "Arn"]})
    machine = json.dumps(
        {
            "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
            ":stateMachine:${AWS::StackName}-access"
        }
    )
    # Requests waiting for people by key only (never listed); who may approve, read; a passkey's
    # counter advanced; the waiting execution resumed (which partitions: test_iam_matrix.py).
    assert granted == {
        "dynamodb:GetItem": {memories, vaults, approvals, identity},
        "dynamodb:PutItem": {memories, vaults, approvals},
        "dynamodb:UpdateItem": {approvals, identity},
        "dynamodb:Query": {vaults},
        "dynamodb:ConditionCheckItem": {vaults},
        "states:SendTaskSuccess": {machine},
        "states:SendTaskFailure": {machine},
        "kms:Encrypt": {root_key},
        "kms:Decrypt": {root_key},
    }
    assert _kms_grants(_allow_statements(translated, "AgentVoteFunctionRole")) == {
        "RootKeyForStageSigningMemoriesAndPseudonyms": _purposes(
            "stage-signing/agent-vote", "agent-memory", "principal-pseudonym"
        ),
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
    }
    table = load_template()["Resources"]["AgentMemoryTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert function_environment("AgentVoteFunction")["RELIQUARY_ROOT_OF_TRUST"] == "kms"


# ------------------------------------------------------------------ partitions


FUNCTION_ROLES = (
    "EncryptFunctionRole",
    "AuditAppendFunctionRole",
    "VerifyProofFunctionRole",
    "ScoreTrustFunctionRole",
    "AgentVoteFunctionRole",
    "ApiFunctionRole",
)


@pytest.mark.parametrize("role", FUNCTION_ROLES)
def test_vault_and_audit_rows_are_granted_by_partition_only(translated: dict[str, Any], role: str) -> None:
    """Vault keys, policies, signing keys and logs share two tables: every grant on them names its
    partitions (dynamodb:LeadingKeys), never the whole table (what each may do: test_iam_matrix.py)."""
    shared = [{"Fn::GetAtt": ["VaultsTable", "Arn"]}, {"Fn::GetAtt": ["AuditTable", "Arn"]}]
    statements = [
        s
        for s in _allow_statements(translated, role)
        if set(map(json.dumps, _as_list(s["Resource"]))) & set(map(json.dumps, shared))
    ]
    assert statements
    for statement in statements:
        assert len(_as_list(statement["Resource"])) == 1, statement["Sid"]
        ((operator, keys),) = statement["Condition"].items()
        assert operator in ("ForAllValues:StringLike", "ForAllValues:StringEquals"), statement["Sid"]
        assert list(keys) == ["dynamodb:LeadingKeys"], statement["Sid"]
        assert all(not key.endswith("*") or key.endswith("#*") for key in keys["dynamodb:LeadingKeys"])


# ------------------------------------------------------------------ the API


API_ENVIRONMENT = {
    "RELIQUARY_STAGE",
    "RELIQUARY_IDENTITY_TABLE",
    "RELIQUARY_VAULTS_TABLE",
    "RELIQUARY_ITEMS_TABLE",
    "RELIQUARY_AUDIT_TABLE",
    "RELIQUARY_AUDIT_BUCKET",
    "RELIQUARY_AUDIT_ORIGIN",
    "RELIQUARY_TOKEN_SIGNING_KEY_ID",
    "RELIQUARY_TOKEN_PREVIOUS_KEY_IDS",
    "RELIQUARY_TOKEN_ISSUER",
    "RELIQUARY_TOKEN_AUDIENCE",
    "RELIQUARY_OPERATOR_TENANT",
    "RELIQUARY_CLIENT_REQUESTS_PER_SECOND",
    "RELIQUARY_APPROVALS_TABLE",
    "RELIQUARY_WEBAUTHN_RP_ID",
    "RELIQUARY_WEBAUTHN_RP_NAME",
    "RELIQUARY_WEBAUTHN_ORIGINS",
    "RELIQUARY_WEBAUTHN_CHALLENGE_TTL_SECONDS",
    "RELIQUARY_ENROLLMENT_TTL_SECONDS",
    "RELIQUARY_ENCRYPT_FUNCTION",
    "RELIQUARY_VERIFY_PROOF_FUNCTION",
    "RELIQUARY_SCORE_TRUST_FUNCTION",
    "RELIQUARY_AGENT_VOTE_FUNCTION",
    "RELIQUARY_AUDIT_APPEND_FUNCTION",
    "RELIQUARY_ACCESS_STATE_MACHINE_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def test_api_function_environment_is_exactly_the_contract() -> None:
    from reliquary.config import ENV_PREFIX, Settings

    environment = function_environment("ApiFunction")
    assert set(environment) == API_ENVIRONMENT
    # No root of trust: the API never wraps or unwraps anything.
    assert "RELIQUARY_KMS_KEY_ID" not in environment
    assert "RELIQUARY_ITEMS_BUCKET" not in environment
    assert environment["RELIQUARY_IDENTITY_TABLE"] == {"Ref": "IdentityTable"}
    for variable, function in (
        ("RELIQUARY_ENCRYPT_FUNCTION", "EncryptFunction"),
        ("RELIQUARY_VERIFY_PROOF_FUNCTION", "VerifyProofFunction"),
        ("RELIQUARY_SCORE_TRUST_FUNCTION", "ScoreTrustFunction"),
        ("RELIQUARY_AGENT_VOTE_FUNCTION", "AgentVoteFunction"),
        ("RELIQUARY_AUDIT_APPEND_FUNCTION", "AuditAppendFunction"),
    ):
        assert environment[variable] == {"Fn::GetAtt": [function, "Arn"]}
    # The audit reader names checkpoints exactly as audit-append signs them.
    assert (
        environment["RELIQUARY_AUDIT_ORIGIN"]
        == function_environment("AuditAppendFunction")["RELIQUARY_AUDIT_ORIGIN"]
    )
    # The state machine by the name it is given (and the execution ARNs the role may read).
    machine = load_template()["Resources"]["AccessStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    arn = environment["RELIQUARY_ACCESS_STATE_MACHINE_ARN"]["Fn::Sub"]
    assert arn.endswith(f":stateMachine:{machine}")
    assert environment["POWERTOOLS_SERVICE_NAME"] == "reliquary-api"
    reliquary_fields = {
        name.removeprefix(ENV_PREFIX).lower() for name in environment if name.startswith(ENV_PREFIX)
    }
    assert reliquary_fields <= set(Settings.model_fields)


def test_api_settings_take_the_template_parameters() -> None:
    """Parameters' constraints match the settings' own, so a value CloudFormation accepts also starts."""
    from reliquary.config import Settings

    parameters = load_template()["Parameters"]
    fields = Settings.model_fields
    operator = parameters["OperatorTenant"]
    assert operator["Default"] == fields["operator_tenant"].default
    assert re.fullmatch(operator["AllowedPattern"], "operator")
    rate = parameters["ClientRequestsPerSecond"]
    assert rate["Default"] == fields["client_requests_per_second"].default
    bounds = {type(m).__name__: m for m in fields["client_requests_per_second"].metadata}
    assert (rate["MinValue"], rate["MaxValue"]) == (bounds["Ge"].ge, bounds["Le"].le)
    issuer = parameters["TokenIssuer"]["AllowedPattern"]
    assert re.fullmatch(issuer, "")
    assert re.fullmatch(issuer, "https://vault.example.com/v1")
    assert not re.fullmatch(issuer, "http://vault.example.com")  # an issuer is https
    for previous in ("[]", '["arn:aws:kms:eu-west-1:123456789012:key/b"]'):
        assert Settings(token_previous_key_ids=json.loads(previous)).token_previous_key_ids == tuple(
            json.loads(previous)
        )


def test_the_api_function_runs_the_app_on_the_core_and_native_layers(translated: dict[str, Any]) -> None:
    properties = load_template()["Resources"]["ApiFunction"]["Properties"]
    assert (properties["CodeUri"], properties["Handler"], properties["Runtime"]) == (
        "functions/api/",
        "app.handler",
        "python3.12",
    )
    assert (REPO_ROOT / "functions/api/app.py").is_file()
    assert properties["Layers"] == [{"Ref": "CoreLayer"}, {"Ref": "NativeLayer"}]
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "ApiFunctionLogGroup"}}
    # API Gateway stops waiting after 29 s: a longer timeout would only run on for nobody.
    assert properties["Timeout"] <= 29
    # Every path and method goes to the app, and no authorizer stands in front: the app checks tokens.
    events = properties["Events"]
    assert {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events.values()} == {
        ("/", "ANY"),
        ("/{proxy+}", "ANY"),
    }
    assert all(
        e["Type"] == "Api" and e["Properties"]["RestApiId"] == {"Ref": "RestApi"} for e in events.values()
    )
    assert all("Auth" not in e["Properties"] for e in events.values())
    api = _resource(translated, "RestApi")["Properties"]
    assert "securitySchemes" not in json.dumps(api["Body"])
    assert "x-amazon-apigateway-authorizer" not in json.dumps(api["Body"])
    assert not [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::Authorizer"]
    assert not [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]


def _api_stage(translated: dict[str, Any]) -> dict[str, Any]:
    (stage,) = [
        r["Properties"] for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"
    ]
    properties: dict[str, Any] = stage
    return properties


def test_the_rest_api_throttles_every_method_and_logs_every_request(translated: dict[str, Any]) -> None:
    stage = _api_stage(translated)
    # One stage, named by the Stage parameter (per samconfig profile): no stray "Stage" stage.
    assert stage["StageName"] == {"Ref": "Stage"}
    assert stage["TracingEnabled"] is True
    (method,) = stage["MethodSettings"]
    assert (method["ResourcePath"], method["HttpMethod"]) == ("/*", "*")
    assert method["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert method["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    # Execution logs at INFO would hold bodies: off; the access log is the record.
    assert (method["LoggingLevel"], method["DataTraceEnabled"]) == ("OFF", False)
    access = stage["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    # Exactly these fields: never a body, a header (Authorization) or a query string.
    assert json.loads(access["Format"]) == {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
    }
    group = load_template()["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_usage_plan_throttles_and_limits_the_stage(translated: dict[str, Any]) -> None:
    (plan,) = [
        r["Properties"] for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::UsagePlan"
    ]
    stage_id = next(
        lid for lid, r in translated["Resources"].items() if r["Type"] == "AWS::ApiGateway::Stage"
    )
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": stage_id}}]
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApiThrottleRateLimit"},
        "BurstLimit": {"Ref": "ApiThrottleBurstLimit"},
    }
    assert plan["Quota"] == {"Limit": {"Ref": "ApiQuotaPerDay"}, "Period": "DAY"}


def test_api_gateways_own_answers_are_problems_that_reveal_nothing(translated: dict[str, Any]) -> None:
    responses = _resource(translated, "RestApi")["Properties"]["Body"][
        "x-amazon-apigateway-gateway-responses"
    ]
    assert set(responses) == {
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "REQUEST_TOO_LARGE",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    expected = {
        "THROTTLED": ("429", "rate_limited"),
        "QUOTA_EXCEEDED": ("429", "rate_limited"),
        "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
        "DEFAULT_4XX": (None, "invalid_request"),
        "DEFAULT_5XX": (None, "transient"),
    }
    from reliquary.api.problems import problem_title
    from reliquary.errors import error_class_for

    for name, response in responses.items():
        status, code = expected[name]
        assert response.get("statusCode") == status, name
        parameters = response["responseParameters"]
        assert parameters["gatewayresponse.header.Content-Type"] == "'application/problem+json'", name
        body = json.loads(response["responseTemplates"]["application/json"])
        # The app's problem shape, with a stable code of the one error hierarchy.
        assert body["type"] == f"urn:reliquary:problem:{code}", name
        assert body["code"] == error_class_for(code).code == code, name
        assert body["title"] == problem_title(code), name
        assert body["request_id"] == "$context.requestId", name
        assert body["retryable"] is error_class_for(code).retryable, name
        if status is not None:
            assert body["status"] == int(status) == error_class_for(code).http_status, name
        # Nothing from API Gateway's own error text (it can name the deployment's resources).
        assert "$context.error" not in response["responseTemplates"]["application/json"], name
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"


def test_api_gateway_can_write_its_logs_when_the_stack_sets_the_account(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    assert resources["ApiGatewayAccount"]["Condition"] == "CreatesApiGatewayLoggingRole"
    assert resources["ApiGatewayAccount"]["Properties"] == {
        "CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    }
    role = resources["ApiGatewayCloudWatchRole"]
    assert role["Condition"] == "CreatesApiGatewayLoggingRole"
    assert role["DeletionPolicy"] == "Retain"  # other REST APIs of the account may log through it
    # The REST API waits for the account settings (a conditional dependency through a handle).
    assert resources["RestApi"]["DependsOn"] == "ApiGatewayAccountReady"
    ready = resources["ApiGatewayAccountReady"]["Metadata"]["After"]
    assert ready == {"Fn::If": ["CreatesApiGatewayLoggingRole", {"Ref": "ApiGatewayAccount"}, ""]}


def test_the_token_keys_are_es256_keys_only_the_api_signs_with() -> None:
    resources = load_template()["Resources"]
    for slot in ("A", "B"):
        key = resources[f"TokenKey{slot}"]
        assert key["Condition"] == f"HasTokenKey{slot}"
        properties = key["Properties"]
        assert (properties["KeySpec"], properties["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
        by_sid = {s["Sid"]: s for s in properties["KeyPolicy"]["Statement"]}
        assert set(by_sid) == {"EnableAccountAdministration", "ApiSignsAndPublishes", "OnlyTheApiSigns"}
        api = by_sid["ApiSignsAndPublishes"]
        assert api["Principal"] == {"AWS": {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}}
        assert api["Action"] == {
            "Fn::If": [f"SignsWithTokenKey{slot}", ["kms:Sign", "kms:GetPublicKey"], "kms:GetPublicKey"]
        }
        deny = by_sid["OnlyTheApiSigns"]
        assert (deny["Effect"], deny["Action"]) == ("Deny", "kms:Sign")
        assert deny["Condition"] == {
            "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}}
        }
    # Each function's role names no token key (the key policies name the API role).
    assert "TokenKey" not in json.dumps(resources["ApiFunction"]["Properties"]["Policies"])


def test_api_role_is_least_privilege(translated: dict[str, Any]) -> None:
    role = _resource(translated, "ApiFunctionRole")["Properties"]
    assert sorted(arn.rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]) == [
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    ]
    granted: dict[str, set[str]] = {}
    for statement in _allow_statements(translated, "ApiFunctionRole"):
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        for resource in _as_list(statement["Resource"]):
            assert resource != "*"
            for action in _as_list(statement["Action"]):
                assert not action.endswith("*"), action
                granted.setdefault(action, set()).add(json.dumps(resource))

    def arn(logical_id: str) -> str:
        return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]})

    def sub(text: str) -> str:
        return json.dumps({"Fn::Sub": text})

    machine = (
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-access"
    )
    functions = {arn(f) for f in ("EncryptFunction", "VerifyProofFunction", "ScoreTrustFunction")}
    functions |= {arn("AgentVoteFunction"), arn("AuditAppendFunction")}
    # Read only, except its own identity table (where a passkey's rows are batch-read and removed, and
    # a ceremony's challenge is taken by deleting it); no Scan, no PartiQL anywhere; no write to the
    # approvals (agent-vote's), no task callback.
    assert granted == {
        "lambda:InvokeFunction": functions,
        "states:StartExecution": {sub(machine)},
        "states:DescribeExecution": {sub(machine.replace(":stateMachine:", ":execution:") + ":*")},
        "dynamodb:GetItem": {
            arn("IdentityTable"),
            arn("VaultsTable"),
            arn("ItemsTable"),
            arn("AuditTable"),
            arn("ApprovalsTable"),
        },
        "dynamodb:Query": {
            sub("${IdentityTable.Arn}/index/TenantIndex"),
            arn("VaultsTable"),
            arn("ItemsTable"),
            sub("${ItemsTable.Arn}/index/ScopeIndex"),
            arn("AuditTable"),
            arn("ApprovalsTable"),
        },
        "dynamodb:PutItem": {arn("IdentityTable")},
        "dynamodb:UpdateItem": {arn("IdentityTable")},
        "dynamodb:BatchGetItem": {arn("IdentityTable")},
        "dynamodb:DeleteItem": {arn("IdentityTable")},
        "s3:GetObject": {sub(f"${{AuditBucket.Arn}}/{prefix}/*") for prefix in ("logs", "chains", "exports")},
        "kms:Decrypt": {arn("RootKey")},
    }
    # The root key only through DynamoDB and S3: no purpose of its own.
    assert _kms_grants(_allow_statements(translated, "ApiFunctionRole")) == {
        "RootKeyThroughDynamoDB": VIA_DYNAMODB,
        "RootKeyThroughS3": (("kms:Decrypt",), VIA_S3[1]),
    }


def test_the_identity_table_is_what_the_identity_store_expects() -> None:
    spec = table_specs()["IdentityTable"]
    assert (spec.hash_key, spec.range_key) == ("pk", "sk")
    assert spec.ttl_attribute == "expires_at"
    assert spec.global_secondary_indexes == [
        {
            "IndexName": "TenantIndex",
            "KeySchema": [
                {"AttributeName": "tenant_pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    table = load_template()["Resources"]["IdentityTable"]
    assert table["DeletionPolicy"] == "Retain"  # tenants and clients outlive the stack
    properties = table["Properties"]
    assert properties["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["RootKey", "Arn"]}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


# ------------------------------------------------------------------ layers


def test_core_layer_requirements_are_pinned_runtime_dependencies() -> None:
    # The layer holds what every function imports (tests/unit/test_lambda_packages.py checks the split).
    with (REPO_ROOT / "pyproject.toml").open("rb") as stream:
        dependencies = tomllib.load(stream)["project"]["dependencies"]
    lines = (REPO_ROOT / "layers/core/requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
    assert all("==" in requirement for requirement in requirements)
    for shared in (
        "aws-lambda-powertools",
        "boto3",
        "cryptography",
        "pydantic",
        "pynamodb",
    ):
        assert next(d for d in dependencies if d.startswith(f"{shared}==")) in requirements, shared


# ------------------------------------------------------------------ the loader


def test_load_template_reads_every_short_tag(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Version: 2012-10-17
Resources:
  R:
    Properties:
      Ref: !Ref Stage
      GetAtt: !GetAtt Db.Endpoint.Address
      GetAttList: !GetAtt [Db, Arn]
      Sub: !Sub "${AWS::StackName}-x"
      SubList: !Sub ["${A}", {A: !Ref B}]
      If: !If [IsProd, true, false]
      Equals: !Equals [!Ref Stage, prod]
      Join: !Join ["", [a, b]]
      Select: !Select [0, !Split [",", "a,b"]]
      FindInMap: !FindInMap [M, K, V]
      Logic: !And [!Not [!Condition IsProd], !Or [!Condition A, !Condition B]]
      ImportValue: !ImportValue Exported
      GetAZs: !GetAZs ""
      Base64: !Base64 text
      Cidr: !Cidr [10.0.0.0/16, 4, 8]
""",
        encoding="utf-8",
    )
    loaded = load_template(template)
    properties = loaded["Resources"]["R"]["Properties"]

    assert loaded["Version"] == "2012-10-17"
    assert properties == {
        "Ref": {"Ref": "Stage"},
        "GetAtt": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "GetAttList": {"Fn::GetAtt": ["Db", "Arn"]},
        "Sub": {"Fn::Sub": "${AWS::StackName}-x"},
        "SubList": {"Fn::Sub": ["${A}", {"A": {"Ref": "B"}}]},
        "If": {"Fn::If": ["IsProd", True, False]},
        "Equals": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "Join": {"Fn::Join": ["", ["a", "b"]]},
        "Select": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        "FindInMap": {"Fn::FindInMap": ["M", "K", "V"]},
        "Logic": {
            "Fn::And": [
                {"Fn::Not": [{"Condition": "IsProd"}]},
                {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]},
            ]
        },
        "ImportValue": {"Fn::ImportValue": "Exported"},
        "GetAZs": {"Fn::GetAZs": ""},
        "Base64": {"Fn::Base64": "text"},
        "Cidr": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
    }


def test_load_template_returns_a_fresh_copy_each_time() -> None:
    first = load_template()
    first["Resources"].clear()
    assert load_template()["Resources"]
    assert load_template(TEMPLATE_PATH) == load_template()


def test_ttl_deletions_reach_the_encrypt_function_through_the_items_stream() -> None:
    resources = load_template()["Resources"]
    # Keys only: a stream image would keep each changed row's envelope (its wrapped key) for 24 hours.
    assert resources["ItemsTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}
    mapping = resources["ItemsExpiredEventSource"]["Properties"]
    assert mapping["FunctionName"] == {"Ref": "EncryptFunction"}
    failures = {"Fn::GetAtt": ["ItemsExpiredFailureQueue", "Arn"]}
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": failures}}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ItemsTable", "StreamArn"]}
    pattern = json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
    }


def test_the_anchor_schedule_exists_only_when_checkpoints_are_anchored() -> None:
    template = load_template()
    assert template["Parameters"]["AuditAnchorBackend"]["AllowedValues"] == ["none", "ipfs", "arweave"]
    assert template["Parameters"]["AuditAnchorBackend"]["Default"] == "none"
    assert template["Conditions"]["AnchorsCheckpoints"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AuditAnchorBackend"}, "none"]}]
    }
    rule = template["Resources"]["AuditAnchorSchedule"]
    permission = template["Resources"]["AuditAnchorSchedulePermission"]
    assert rule["Condition"] == permission["Condition"] == "AnchorsCheckpoints"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AuditAppendFunction", "Arn"]}
    # The schedule's event is the anchor_due action as the function's contract parses it.
    from reliquary.contracts.audit import AnchorDueRequest

    assert AnchorDueRequest.model_validate_json(target["Input"]).max_logs == 100
    schedule = rule["Properties"]["ScheduleExpression"]
    assert schedule == {"Fn::Sub": "rate(${AuditAnchorIntervalMinutes} minutes)"}
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": ["AuditAnchorSchedule", "Arn"]}


def test_the_arweave_wallet_key_exists_only_when_chosen_and_signs_only_for_the_paying_functions(
    translated: dict[str, Any],
) -> None:
    key = _resource(translated, "ArweaveWalletKey")
    assert key["Condition"] == "HasKmsArweaveWallet"
    assert translated["Conditions"]["HasKmsArweaveWallet"] == {
        "Fn::Equals": [{"Ref": "ArweaveWallet"}, "kms"]
    }
    properties = key["Properties"]
    assert (properties["KeySpec"], properties["KeyUsage"]) == ("RSA_4096", "SIGN_VERIFY")
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    statements = {s["Sid"]: s for s in properties["KeyPolicy"]["Statement"]}
    payers = [
        {"Fn::GetAtt": ["EncryptFunctionRole", "Arn"]},
        {"Fn::GetAtt": ["AuditAppendFunctionRole", "Arn"]},
    ]
    assert statements["PayingFunctionsSign"]["Principal"] == {"AWS": payers}
    assert statements["PayingFunctionsSign"]["Action"] == ["kms:Sign", "kms:GetPublicKey"]
    deny = statements["OnlyThePayingFunctionsSign"]
    assert (deny["Effect"], deny["Action"]) == ("Deny", "kms:Sign")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": payers}}
