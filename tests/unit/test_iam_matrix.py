"""Least privilege, proved by evaluating every role's policy from template.yaml.

The roles' policies are taken from the translated template with concrete ARNs
(``tests.support.stack_policies``) and judged by the evaluator in ``tests.support.iam`` together with the
root key's policy and the buckets' policies. The tables below are the specification: for every role,
every table partition and bucket prefix, every KMS purpose and every relevant action, the expected answer
is written down, and anything not written down must be denied. The outside review's attacks are listed by
name as well (``ATTACKS``), and every Allow statement of every role must be exercised by some allowed
request, so a grant nobody needs cannot hide in the template.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.iam import Decision, Evaluation, Request, evaluate
from tests.support.stack_policies import ACCOUNT, REGION, STACK, StackPolicies, stack_policies

ROLES = {
    "encrypt": "EncryptFunctionRole",
    "audit-append": "AuditAppendFunctionRole",
    "verify-proof": "VerifyProofFunctionRole",
    "score-trust": "ScoreTrustFunctionRole",
    "agent-vote": "AgentVoteFunctionRole",
    "state-machine": "AccessStateMachineRole",
    "api": "ApiFunctionRole",
    "apigateway-logs": "ApiGatewayCloudWatchRole",  # API Gateway's, for its access logs
}
FUNCTIONS = ("encrypt", "audit-append", "verify-proof", "score-trust", "agent-vote")
FUNCTION_IDS = (
    "EncryptFunction",
    "AuditAppendFunction",
    "VerifyProofFunction",
    "ScoreTrustFunction",
    "AgentVoteFunction",
)
STAGES = ("verify-proof", "score-trust", "agent-vote")  # the flow functions that sign attestations
CLIENT = "cl-0123456789abcdef01234567"  # an API client id
PERSON = "ps-0123456789abcdef01234567"  # an approver
CREDENTIAL = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # one of its passkeys (base64url)

# ------------------------------------------------------------------------------------------ DynamoDB

GET, BATCH_GET, QUERY, SCAN = "GetItem", "BatchGetItem", "Query", "Scan"
PUT, UPDATE, DELETE, CHECK, BATCH_WRITE = (
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "ConditionCheckItem",
    "BatchWriteItem",
)
DYNAMODB_ACTIONS = (
    GET,
    BATCH_GET,
    QUERY,
    SCAN,
    PUT,
    UPDATE,
    DELETE,
    CHECK,
    BATCH_WRITE,
    "PartiQLSelect",
    "DescribeTable",
)

# The partitions probed in each table. A victim tenant's rows stand for every tenant's.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "VaultsTable": (
        "TENANT#victim",  # vault rows and vault key rows
        "SERVICE",  # service signing keys
        "POLICY#victim",  # vault policies (CONTEXT, TRUST, QUORUM)
        *(f"STAGE#{stage}" for stage in STAGES),  # each flow function's attestation keys
        "PSEUDONYM",  # the wrapped pseudonym key
        "STAGE",  # lookalikes of the granted partitions
        "TENANT",
    ),
    "ItemsTable": ("TENANT#victim#VAULT#v1",),
    # The scope index (a resource of its own: a grant on the table does not reach it), and a lookalike.
    "ItemsTable/index/ScopeIndex": ("TENANT#victim#VAULT#v1#SCOPE#user#u1", "SERVICE"),
    "AuditTable": ("LOG#victim", "CHECKPOINT", "ANCHOR"),
    "IdentityTable": (
        "TENANT#victim",  # a tenant
        f"CLIENT#{CLIENT}",  # a client: its secret's hash, its roles
        f"RATE#{CLIENT}",  # its request counter
        f"PERSON#{PERSON}",  # a person: its roles, status
        f"CREDENTIAL#{CREDENTIAL}",  # a passkey: its public key and sign counter
        "CHALLENGE#00ff",  # a WebAuthn ceremony's challenge
        f"ASSERTION#{CLIENT}#00ff",  # a private_key_jwt assertion id, used once
        "CLIENT",  # a lookalike
    ),
    # A request waiting for people: the view approvers see, and the execution's task token.
    "ApprovalsTable": ("TENANT#victim", "TOKEN#victim", "TOKEN"),
    "IdentityTable/index/TenantIndex": ("TENANT#victim",),
    "IdempotencyTable": ("reliquary-encrypt.handler#0123abcd",),
    "HistoryTable": ("TENANT#victim#P#00ff",),
    "ReplayTable": ("TENANT#victim",),
    "AgentMemoryTable": ("TENANT#victim#AGENT#strict", "KEY"),
}

READ_STAGE_KEYS = {f"STAGE#{stage}": {GET, QUERY} for stage in STAGES}


def _flow_vault_rows(stage: str, *, pseudonym: bool) -> dict[tuple[str, str], set[str]]:
    rows = {("VaultsTable", "POLICY#victim"): {GET, PUT}, ("VaultsTable", "TENANT#victim"): {CHECK}}
    rows |= {("VaultsTable", partition): set(actions) for partition, actions in READ_STAGE_KEYS.items()}
    rows[("VaultsTable", f"STAGE#{stage}")] = {GET, QUERY, PUT}
    if pseudonym:
        rows[("VaultsTable", "PSEUDONYM")] = {GET, PUT}
    return rows


# The API reads: vault rows and key versions' metadata, policies, stage and service keys, items, the logs,
# the views of waiting requests; it reads and writes only the identity table (people, passkeys and
# challenges too).
API_ROWS = {
    ("VaultsTable", "TENANT#victim"): {GET, QUERY},
    ("VaultsTable", "POLICY#victim"): {GET, QUERY},
    **{("VaultsTable", partition): set(actions) for partition, actions in READ_STAGE_KEYS.items()},
    # The service keys' public halves, published for requesters (listed: never one row by its key).
    ("VaultsTable", "SERVICE"): {QUERY},
    ("ItemsTable", "TENANT#victim#VAULT#v1"): {GET, QUERY},
    ("ItemsTable/index/ScopeIndex", "TENANT#victim#VAULT#v1#SCOPE#user#u1"): {QUERY},
    ("AuditTable", "LOG#victim"): {GET, QUERY},
    ("AuditTable", "CHECKPOINT"): {QUERY},
    **{
        ("IdentityTable", p): {GET, PUT, UPDATE}
        for p in ("TENANT#victim", f"CLIENT#{CLIENT}", f"RATE#{CLIENT}", f"PERSON#{PERSON}")
    },
    # A person's passkeys: registered beside the person row, read together, counted, removed.
    ("IdentityTable", f"CREDENTIAL#{CREDENTIAL}"): {GET, BATCH_GET, PUT, UPDATE, DELETE},
    # WebAuthn challenges: written, then taken by a DeleteItem that returns them.
    ("IdentityTable", "CHALLENGE#00ff"): {PUT, DELETE},
    # A client assertion's id: put once, on the condition that it is new (or expired); never read.
    ("IdentityTable", f"ASSERTION#{CLIENT}#00ff"): {PUT},
    ("IdentityTable/index/TenantIndex", "TENANT#victim"): {QUERY},
    # The views of waiting requests, never a task token.
    ("ApprovalsTable", "TENANT#victim"): {GET, QUERY},
}

# role -> (table, partition) -> the DynamoDB actions allowed; every other combination is denied.
DYNAMODB_GRANTS: dict[str, dict[tuple[str, str], set[str]]] = {
    "encrypt": {
        ("VaultsTable", "TENANT#victim"): {GET, PUT, UPDATE, QUERY, CHECK},
        ("VaultsTable", "SERVICE"): {QUERY, PUT},
        **{("VaultsTable", partition): set(actions) for partition, actions in READ_STAGE_KEYS.items()},
        ("ItemsTable", "TENANT#victim#VAULT#v1"): {GET, PUT, UPDATE, QUERY},
        ("ItemsTable/index/ScopeIndex", "TENANT#victim#VAULT#v1#SCOPE#user#u1"): {QUERY},  # forget
        ("IdempotencyTable", "reliquary-encrypt.handler#0123abcd"): {GET, PUT, UPDATE, DELETE},
        ("AuditTable", "LOG#victim"): {GET},
    },
    "audit-append": {
        ("AuditTable", "LOG#victim"): {GET, BATCH_GET, PUT, UPDATE, QUERY},
        ("AuditTable", "CHECKPOINT"): {QUERY, PUT},
        ("AuditTable", "ANCHOR"): {GET, PUT, QUERY},  # the logs the scheduled anchoring visits
        **{("VaultsTable", partition): set(actions) for partition, actions in READ_STAGE_KEYS.items()},
        ("VaultsTable", "PSEUDONYM"): {GET, PUT},
    },
    "verify-proof": {
        ("ReplayTable", "TENANT#victim"): {GET, PUT, UPDATE},
        **_flow_vault_rows("verify-proof", pseudonym=False),
    },
    "score-trust": {
        ("HistoryTable", "TENANT#victim#P#00ff"): {QUERY, PUT},
        ("ItemsTable", "TENANT#victim#VAULT#v1"): {GET, QUERY},
        ("IdempotencyTable", "reliquary-encrypt.handler#0123abcd"): {GET, PUT, UPDATE, DELETE},
        **_flow_vault_rows("score-trust", pseudonym=True),
    },
    "agent-vote": {
        ("AgentMemoryTable", "TENANT#victim#AGENT#strict"): {GET, PUT},
        ("AgentMemoryTable", "KEY"): {GET, PUT},
        **_flow_vault_rows("agent-vote", pseudonym=True),
        # Requests waiting for people (both rows), and who may answer them with which passkey.
        **{("ApprovalsTable", p): {GET, PUT, UPDATE} for p in ("TENANT#victim", "TOKEN#victim")},
        ("IdentityTable", f"PERSON#{PERSON}"): {GET},
        ("IdentityTable", f"CREDENTIAL#{CREDENTIAL}"): {GET, UPDATE},
    },
    "state-machine": {},
    "api": API_ROWS,
    "apigateway-logs": {},
}

# -------------------------------------------------------------------------------------------- KMS

PURPOSES = (
    "vault-key",
    "service-signing",
    "checkpoint-signing",
    "principal-pseudonym",
    "agent-memory",
    "arweave-wallet/anchors",
    *(f"stage-signing/{stage}" for stage in STAGES),
    "stage-signing/encrypt",  # no such stage: nobody may use it
)
KMS_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
)
# role -> the purposes it may Encrypt and Decrypt under (and no other KMS action, called directly).
OWNED_PURPOSES: dict[str, set[str]] = {
    "encrypt": {"vault-key", "service-signing", "arweave-wallet/bodies"},
    "audit-append": {"checkpoint-signing", "principal-pseudonym", "arweave-wallet/anchors"},
    "verify-proof": {"stage-signing/verify-proof"},
    "score-trust": {"stage-signing/score-trust", "principal-pseudonym"},
    "agent-vote": {"stage-signing/agent-vote", "agent-memory", "principal-pseudonym"},
    "state-machine": set(),
    "api": set(),
    "apigateway-logs": set(),
}
# role -> service -> the KMS actions it may have that service perform for it (table and bucket keys).
VIA_SERVICE: dict[str, dict[str, set[str]]] = {
    "encrypt": {"dynamodb": {"kms:Decrypt"}, "s3": {"kms:Decrypt", "kms:GenerateDataKey"}},
    "audit-append": {"dynamodb": {"kms:Decrypt"}, "s3": {"kms:Decrypt", "kms:GenerateDataKey"}},
    "verify-proof": {"dynamodb": {"kms:Decrypt"}},
    "score-trust": {"dynamodb": {"kms:Decrypt"}},
    "agent-vote": {"dynamodb": {"kms:Decrypt"}},
    "state-machine": {},
    "api": {"dynamodb": {"kms:Decrypt"}, "s3": {"kms:Decrypt"}},
    "apigateway-logs": {},
}
# The access-token keys: the API signs with the active one and reads every public key; nobody else
# signs, and no one may do anything else with them (administration aside).
TOKEN_KEY_ACTIONS = (
    "kms:Sign",
    "kms:GetPublicKey",
    "kms:Verify",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
)

# --------------------------------------------------------------------------------------------- S3

S3_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:PutObjectAcl",
)
S3_KEYS: dict[str, tuple[str, ...]] = {
    "ItemsBucket": ("tenants/victim/v1/item/1", "logs/victim/checkpoint"),
    "AuditBucket": (
        "logs/victim/checkpoint",
        "chains/victim/r1",
        "exports/victim/e1.jsonl",
        "tenants/victim/x",
    ),
}
# role -> (bucket, top-level prefix) -> the object actions allowed.
S3_GRANTS: dict[str, dict[tuple[str, str], set[str]]] = {
    "encrypt": {
        ("ItemsBucket", "tenants"): {"s3:GetObject", "s3:PutObject", "s3:DeleteObjectVersion"},
        ("AuditBucket", "logs"): {"s3:GetObject"},
        ("AuditBucket", "chains"): {"s3:GetObject"},
    },
    "audit-append": {
        ("AuditBucket", "logs"): {"s3:GetObject", "s3:PutObject"},
        ("AuditBucket", "chains"): {"s3:GetObject", "s3:PutObject"},
        ("AuditBucket", "exports"): {"s3:PutObject", "s3:AbortMultipartUpload"},
    },
    # Proofs and chains, and the exports it presigns download URLs for: read only.
    "api": {
        ("AuditBucket", "logs"): {"s3:GetObject"},
        ("AuditBucket", "chains"): {"s3:GetObject"},
        ("AuditBucket", "exports"): {"s3:GetObject"},
    },
}


@dataclass(frozen=True)
class Case:
    role: str
    action: str
    resource: str  # a logical id, or "<logical id>/<suffix>" for a bucket object or a stream
    context: Mapping[str, Any]
    allowed: bool
    why: str = ""

    def request(self, stack: StackPolicies) -> Request:
        logical, _, suffix = self.resource.partition("/")
        arn = stack.arns.get(logical, self.resource)
        principal = stack.arns[ROLES[self.role]]
        context = {
            "aws:SecureTransport": "true",
            "aws:PrincipalAccount": ACCOUNT,
            "aws:PrincipalArn": principal,
            **self.context,
        }
        return Request(self.action, f"{arn}/{suffix}" if suffix else arn, context, principal=principal)

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        keys = ",".join(
            f"{k.split(':')[-1]}={v}" for k, v in self.context.items() if k != "aws:SecureTransport"
        )
        return f"{self.role} {self.action} {self.resource} [{keys}] -> {verdict}"


def leading(*keys: str) -> dict[str, Any]:
    return {"dynamodb:LeadingKeys": keys}


def kms_context(purpose: str, *more: str) -> dict[str, Any]:
    """A direct KMS call with an encryption context that names ``purpose`` (and ``more`` keys)."""
    return {
        "kms:EncryptionContextKeys": ("purpose", *more),
        "kms:EncryptionContext:purpose": purpose,
        "kms:CallerAccount": ACCOUNT,
    }


def via(service: str, *, region: str = REGION) -> dict[str, Any]:
    """A KMS call a service makes for the caller, with that service's encryption context."""
    context_keys = (
        ("aws:dynamodb:tableName", "aws:dynamodb:subscriberId") if service == "dynamodb" else ("aws:s3:arn",)
    )
    return {
        "kms:ViaService": f"{service}.{region}.amazonaws.com",
        "kms:EncryptionContextKeys": context_keys,
        "kms:CallerAccount": ACCOUNT,
    }


def _dynamodb_cases() -> Iterator[Case]:
    for role, grants in DYNAMODB_GRANTS.items():
        for table, partitions in PARTITIONS.items():
            for partition, action in itertools.product(partitions, DYNAMODB_ACTIONS):
                context = {} if action in (SCAN, "DescribeTable", "PartiQLSelect") else leading(partition)
                allowed = action in grants.get((table, partition), set()) and bool(context)
                yield Case(role, f"dynamodb:{action}", table, context, allowed)


def _kms_cases() -> Iterator[Case]:
    for role, purpose, action in itertools.product(ROLES, PURPOSES, KMS_ACTIONS):
        allowed = action in ("kms:Encrypt", "kms:Decrypt") and purpose in OWNED_PURPOSES[role]
        yield Case(role, action, "RootKey", kms_context(purpose, "tenant_id"), allowed)
    for role, service, action in itertools.product(ROLES, ("dynamodb", "s3", "secretsmanager"), KMS_ACTIONS):
        allowed = action in VIA_SERVICE[role].get(service, set())
        yield Case(role, action, "RootKey", via(service), allowed)
        # The service must be in this stack's region.
        yield Case(role, action, "RootKey", via(service, region="us-east-1"), allowed=False)
    for role, action in itertools.product(ROLES, TOKEN_KEY_ACTIONS):
        # By default key A signs and B is retired (not created).
        allowed = role == "api" and action in ("kms:Sign", "kms:GetPublicKey")
        yield Case(role, action, "TokenKeyA", {}, allowed)


def _s3_cases() -> Iterator[Case]:
    for role, (bucket, keys), action in itertools.product(ROLES, S3_KEYS.items(), S3_OBJECT_ACTIONS):
        for key in keys:
            granted = S3_GRANTS.get(role, {}).get((bucket, key.split("/", 1)[0]), set())
            yield Case(role, action, f"{bucket}/{key}", {}, action in granted)
    for role, prefix in itertools.product(ROLES, ("tenants/victim/v1/", "tenants/", "", "logs/")):
        allowed = role == "encrypt" and prefix.startswith("tenants/")
        context = {"s3:prefix": prefix} if prefix else {}
        yield Case(role, "s3:ListBucketVersions", "ItemsBucket", context, allowed)
    for role, bucket in itertools.product(ROLES, ("ItemsBucket", "AuditBucket")):
        yield Case(role, "s3:ListBucket", bucket, {"s3:prefix": "tenants/"}, allowed=False)


def _other_cases() -> Iterator[Case]:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-access"
    executions = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STACK}-access"
    other_machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-other"
    for role in ROLES:
        # The state machine and the API invoke the five functions; the functions invoke nothing, and
        # no role invokes the API function (API Gateway does, by the function's resource policy).
        for function in FUNCTION_IDS:
            yield Case(role, "lambda:InvokeFunction", function, {}, role in ("state-machine", "api"))
        yield Case(role, "lambda:InvokeFunction", "ApiFunction", {}, allowed=False)
        yield Case(
            role, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other", {}, False
        )
        # Only the API starts access executions and reads them; nobody stops one.
        yield Case(role, "states:StartExecution", "AccessStateMachine", {}, role == "api")
        yield Case(role, "states:DescribeExecution", f"{executions}:0123abcd", {}, role == "api")
        for action in ("states:StopExecution", "states:StartSyncExecution", "states:UpdateStateMachine"):
            yield Case(role, action, machine, {}, allowed=False)
        yield Case(role, "states:StartExecution", other_machine, {}, allowed=False)
        # Only agent-vote resumes an execution waiting for people (the API relays answers to it).
        for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
            yield Case(role, action, machine, {}, role == "agent-vote")
            yield Case(role, action, other_machine, {}, allowed=False)
        yield Case(role, "states:SendTaskHeartbeat", machine, {}, allowed=False)
        yield Case(
            role,
            "states:DescribeExecution",
            f"{other_machine}:x".replace("stateMachine", "execution"),
            {},
            False,
        )
        yield Case(role, "sqs:SendMessage", "ItemsExpiredFailureQueue", {}, role == "encrypt")
        for action in (
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:DescribeStream",
            "dynamodb:ListStreams",
        ):
            yield Case(role, action, "ItemsTable/stream/2026-01-01T00:00:00.000", {}, role == "encrypt")
            yield Case(role, action, "HistoryTable/stream/2026-01-01T00:00:00.000", {}, allowed=False)
        log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/x:*"
        yield Case(role, "logs:PutLogEvents", log_group, {}, role != "state-machine")
        # Reading logs back: only API Gateway's logging role (AWS's managed policy for it).
        yield Case(role, "logs:FilterLogEvents", log_group, {}, role == "apigateway-logs")
        yield Case(role, "logs:CreateLogDelivery", "*", {}, role == "state-machine")
        yield Case(role, "xray:PutTraceSegments", "*", {}, role != "apigateway-logs")
        for action in ("iam:PassRole", "iam:PutRolePolicy", "sts:AssumeRole", "lambda:UpdateFunctionCode"):
            yield Case(role, action, f"arn:aws:iam::{ACCOUNT}:role/any", {}, allowed=False)


# The outside review's attacks (an attacker who can make a function's role act) and their neighbours.
ATTACKS = [
    Case(
        "verify-proof",
        "dynamodb:GetItem",
        "VaultsTable",
        leading("TENANT#victim"),
        False,
        "read a vault key row",
    ),
    Case(
        "score-trust",
        "dynamodb:GetItem",
        "VaultsTable",
        leading("TENANT#victim"),
        False,
        "read a vault key row",
    ),
    Case(
        "agent-vote",
        "dynamodb:GetItem",
        "VaultsTable",
        leading("TENANT#victim"),
        False,
        "read a vault key row",
    ),
    Case(
        "agent-vote", "dynamodb:Query", "VaultsTable", leading("TENANT#victim"), False, "list a tenant's keys"
    ),
    Case(
        "score-trust",
        "kms:Decrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "unwrap a vault key",
    ),
    Case(
        "verify-proof",
        "kms:Decrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "unwrap a vault key",
    ),
    Case(
        "agent-vote",
        "kms:Decrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "unwrap a vault key",
    ),
    Case(
        "audit-append",
        "kms:Decrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "unwrap a vault key",
    ),
    Case(
        "agent-vote",
        "kms:Encrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "wrap a planted vault key",
    ),
    Case(
        "agent-vote", "dynamodb:PutItem", "VaultsTable", leading("TENANT#x"), False, "plant a vault key row"
    ),
    Case(
        "agent-vote", "dynamodb:UpdateItem", "VaultsTable", leading("TENANT#x"), False, "swap a vault's key"
    ),
    Case(
        "verify-proof",
        "dynamodb:PutItem",
        "VaultsTable",
        leading("STAGE#score-trust"),
        False,
        "plant another stage's key",
    ),
    Case(
        "agent-vote",
        "dynamodb:PutItem",
        "VaultsTable",
        leading("STAGE#verify-proof"),
        False,
        "plant another stage's key",
    ),
    Case(
        "score-trust",
        "kms:Decrypt",
        "RootKey",
        kms_context("stage-signing/agent-vote"),
        False,
        "unwrap another stage's key",
    ),
    Case(
        "score-trust",
        "kms:Encrypt",
        "RootKey",
        kms_context("service-signing"),
        False,
        "wrap a forged service key",
    ),
    Case(
        "agent-vote",
        "dynamodb:PutItem",
        "VaultsTable",
        leading("SERVICE"),
        False,
        "plant a service signing key",
    ),
    Case(
        "encrypt",
        "kms:Decrypt",
        "RootKey",
        kms_context("checkpoint-signing"),
        False,
        "unwrap a checkpoint key",
    ),
    Case("encrypt", "dynamodb:PutItem", "AuditTable", leading("CHECKPOINT"), False, "plant a checkpoint key"),
    Case(
        "encrypt", "dynamodb:PutItem", "AuditTable", leading("LOG#victim"), False, "forge a logged decision"
    ),
    Case("encrypt", "s3:PutObject", "AuditBucket/chains/victim/r1", {}, False, "forge an attestation chain"),
    Case("agent-vote", "kms:Decrypt", "RootKey", {}, False, "any key use without a context (key policy)"),
    # A batch may not smuggle a forbidden partition in beside an allowed one.
    Case(
        "verify-proof",
        "dynamodb:BatchGetItem",
        "VaultsTable",
        leading("STAGE#verify-proof", "TENANT#victim"),
        False,
        "smuggle a key row into a batch",
    ),
    Case(
        "audit-append",
        "dynamodb:BatchGetItem",
        "AuditTable",
        leading("LOG#victim", "CHECKPOINT"),
        False,
        "batch beyond LOG#",
    ),
    # What each needs (the same requests, by the right role).
    Case(
        "encrypt", "dynamodb:GetItem", "VaultsTable", leading("TENANT#victim"), True, "read its vault key row"
    ),
    Case(
        "encrypt",
        "dynamodb:Query",
        "ItemsTable/index/ScopeIndex",
        leading("TENANT#victim#VAULT#v1#SCOPE#user#u1"),
        True,
        "list a memory scope to forget it",
    ),
    Case(
        "score-trust",
        "dynamodb:Query",
        "ItemsTable/index/ScopeIndex",
        leading("TENANT#victim#VAULT#v1#SCOPE#user#u1"),
        False,
        "list a person's memories (labels are read from the table only)",
    ),
    Case(
        "encrypt", "kms:Decrypt", "RootKey", kms_context("vault-key", "tenant_id"), True, "unwrap a vault key"
    ),
    Case(
        "verify-proof",
        "dynamodb:PutItem",
        "VaultsTable",
        leading("STAGE#verify-proof"),
        True,
        "add its stage key",
    ),
    Case(
        "encrypt",
        "dynamodb:Query",
        "VaultsTable",
        leading("STAGE#score-trust"),
        True,
        "read stage public keys",
    ),
    Case(
        "audit-append",
        "dynamodb:BatchGetItem",
        "AuditTable",
        leading("LOG#a", "LOG#b"),
        True,
        "request ids in a batch",
    ),
    Case(
        "encrypt",
        "s3:GetObject",
        "AuditBucket/logs/victim/tile/entries/000",
        {},
        True,
        "read a logged decision",
    ),
    # TLS only: the bucket policies deny plain HTTP to every role.
    Case(
        "encrypt",
        "s3:GetObject",
        "ItemsBucket/tenants/victim/v1/item/1",
        {"aws:SecureTransport": "false"},
        False,
        "plain HTTP",
    ),
    # The API: a door with no key rights. It reads metadata, invokes the functions and starts
    # executions; whoever subverts it still cannot unwrap a key, sign a stage, or write the record.
    *(
        Case("api", "kms:Decrypt", "RootKey", kms_context(purpose, "tenant_id"), False, why)
        for purpose, why in (
            ("vault-key", "unwrap a vault key"),
            ("service-signing", "unwrap the service signing key"),
            ("checkpoint-signing", "unwrap a checkpoint key"),
            ("stage-signing/verify-proof", "unwrap a stage key to sign a stage"),
            ("stage-signing/agent-vote", "unwrap a stage key to sign a vote"),
            ("principal-pseudonym", "unwrap the pseudonym key"),
        )
    ),
    Case(
        "api",
        "kms:Encrypt",
        "RootKey",
        kms_context("vault-key", "tenant_id"),
        False,
        "wrap a planted vault key",
    ),
    Case("api", "kms:GenerateDataKey", "RootKey", via("s3"), False, "write an encrypted object"),
    Case("api", "dynamodb:PutItem", "VaultsTable", leading("TENANT#victim"), False, "plant a vault key row"),
    Case("api", "dynamodb:UpdateItem", "VaultsTable", leading("TENANT#victim"), False, "swap a vault's key"),
    Case(
        "api",
        "dynamodb:PutItem",
        "VaultsTable",
        leading("POLICY#victim"),
        False,
        "set a policy around the flow",
    ),
    Case("api", "dynamodb:PutItem", "VaultsTable", leading("STAGE#verify-proof"), False, "plant a stage key"),
    Case("api", "dynamodb:PutItem", "VaultsTable", leading("SERVICE"), False, "plant a service signing key"),
    Case("api", "dynamodb:PutItem", "ItemsTable", leading("TENANT#victim#VAULT#v1"), False, "write an item"),
    Case(
        "api",
        "dynamodb:UpdateItem",
        "ItemsTable",
        leading("TENANT#victim#VAULT#v1"),
        False,
        "unshred an item",
    ),
    Case("api", "dynamodb:PutItem", "AuditTable", leading("LOG#victim"), False, "forge a logged decision"),
    Case("api", "dynamodb:PutItem", "AuditTable", leading("CHECKPOINT"), False, "plant a checkpoint key"),
    Case("api", "s3:PutObject", "AuditBucket/logs/victim/checkpoint", {}, False, "rewrite the log"),
    Case("api", "s3:PutObject", "AuditBucket/chains/victim/r1", {}, False, "forge an attestation chain"),
    Case("api", "s3:GetObject", "ItemsBucket/tenants/victim/v1/item/1", {}, False, "read a sealed body"),
    Case("api", "dynamodb:DeleteItem", "IdentityTable", leading(f"CLIENT#{CLIENT}"), False, "erase a client"),
    *(
        Case("api", "dynamodb:Scan", table, {}, False, "scan a table")
        for table in ("VaultsTable", "ItemsTable", "AuditTable", "IdentityTable")
    ),
    Case("api", "dynamodb:PartiQLSelect", "IdentityTable", {}, False, "PartiQL (no leading key)"),
    Case("api", "dynamodb:BatchGetItem", "VaultsTable", leading("TENANT#victim"), False, "batch reads"),
    Case("api", "lambda:InvokeFunction", "ApiFunction", {}, False, "invoke itself"),
    Case("score-trust", "kms:Sign", "TokenKeyA", {}, False, "forge an access token"),
    Case("encrypt", "kms:Sign", "TokenKeyA", {}, False, "forge an access token"),
    # ... and what it needs.
    Case("api", "kms:Sign", "TokenKeyA", {}, True, "sign an access token"),
    Case("api", "kms:GetPublicKey", "TokenKeyA", {}, True, "publish the JWKS"),
    Case("api", "dynamodb:GetItem", "VaultsTable", leading("TENANT#victim"), True, "read a vault's metadata"),
    Case("api", "dynamodb:UpdateItem", "IdentityTable", leading(f"RATE#{CLIENT}"), True, "count a request"),
    Case("api", "dynamodb:GetItem", "ApprovalsTable", leading("TOKEN#victim"), False, "read a task token"),
    Case("api", "dynamodb:Query", "ApprovalsTable", leading("TOKEN#victim"), False, "list tokens"),
    Case(
        "api", "dynamodb:PutItem", "ApprovalsTable", leading("TENANT#victim"), False, "plant a pending view"
    ),
    Case("api", "states:SendTaskSuccess", "AccessStateMachine", {}, False, "resume a waiting execution"),
    Case("agent-vote", "states:SendTaskSuccess", "AccessStateMachine", {}, True, "resume with approvals"),
    Case("agent-vote", "dynamodb:GetItem", "ApprovalsTable", leading("TOKEN#victim"), True, "its task token"),
    Case(
        "agent-vote", "dynamodb:GetItem", "IdentityTable", leading(f"CLIENT#{CLIENT}"), False, "a client row"
    ),
    Case("agent-vote", "dynamodb:UpdateItem", "IdentityTable", leading(f"PERSON#{PERSON}"), False, "re-role"),
    # People and passkeys: the API manages them; agent-vote reads who may approve and counts a passkey's
    # use; nobody else touches them.
    Case("api", "dynamodb:PutItem", "IdentityTable", leading(f"PERSON#{PERSON}"), True, "create a person"),
    Case(
        "api", "dynamodb:PutItem", "IdentityTable", leading(f"CREDENTIAL#{CREDENTIAL}"), True, "add a passkey"
    ),
    Case(
        "api", "dynamodb:BatchGetItem", "IdentityTable", leading(f"CREDENTIAL#{CREDENTIAL}"), True, "passkeys"
    ),
    Case("api", "dynamodb:DeleteItem", "IdentityTable", leading("CHALLENGE#00ff"), True, "take a challenge"),
    Case("api", "dynamodb:DeleteItem", "IdentityTable", leading(f"PERSON#{PERSON}"), False, "erase a person"),
    Case("api", "dynamodb:GetItem", "IdentityTable", leading("CHALLENGE#00ff"), False, "peek at a challenge"),
    Case("api", "dynamodb:BatchGetItem", "IdentityTable", leading(f"CLIENT#{CLIENT}"), False, "batch-read"),
    Case(
        "agent-vote",
        "dynamodb:PutItem",
        "IdentityTable",
        leading(f"CREDENTIAL#{CREDENTIAL}"),
        False,
        "plant a passkey",
    ),
    Case(
        "agent-vote",
        "dynamodb:DeleteItem",
        "IdentityTable",
        leading("CHALLENGE#00ff"),
        False,
        "take a sign-in challenge",
    ),
    Case(
        "agent-vote",
        "dynamodb:UpdateItem",
        "IdentityTable",
        leading(f"CREDENTIAL#{CREDENTIAL}"),
        True,
        "advance a passkey's counter",
    ),
    Case("agent-vote", "dynamodb:Query", "ApprovalsTable", leading("TOKEN#victim"), False, "list tokens"),
    Case("encrypt", "dynamodb:GetItem", "IdentityTable", leading(f"PERSON#{PERSON}"), False, "read a person"),
    Case("api", "kms:Decrypt", "RootKey", via("dynamodb"), True, "read an encrypted table"),
    Case("api", "s3:GetObject", "AuditBucket/exports/victim/e1.jsonl", {}, True, "presign an export"),
    Case("api", "lambda:InvokeFunction", "EncryptFunction", {}, True, "seal a memory"),
    Case("api", "states:StartExecution", "AccessStateMachine", {}, True, "start an access request"),
]

ALL_CASES = [*_dynamodb_cases(), *_kms_cases(), *_s3_cases(), *_other_cases(), *ATTACKS]


def _evaluate(stack: StackPolicies, case: Case) -> Evaluation:
    request = case.request(stack)
    return evaluate(request, stack.roles[ROLES[case.role]], stack.resource_policies_for(request.resource))


@pytest.fixture(scope="module")
def stack() -> StackPolicies:
    return stack_policies()


def test_every_role_is_in_the_matrix(stack: StackPolicies) -> None:
    assert set(stack.roles) == set(ROLES.values())


def test_the_matrix(stack: StackPolicies) -> None:
    """Every row of the matrix (a few thousand requests) gets the answer the specification gives."""
    evaluations = [(case, _evaluate(stack, case)) for case in ALL_CASES]
    wrong = [f"{case}, got {got.decision.value}" for case, got in evaluations if got.allowed != case.allowed]
    assert not wrong, "\n".join(wrong[:40])
    assert len(ALL_CASES) > 2000


@pytest.mark.parametrize("case", ATTACKS, ids=str)
def test_the_reviews_attacks_and_what_each_function_needs(stack: StackPolicies, case: Case) -> None:
    assert _evaluate(stack, case).allowed is case.allowed, case.why


def test_every_allow_statement_is_exercised_by_an_allowed_request(stack: StackPolicies) -> None:
    """A grant that no needed request uses is a grant too many."""
    used: dict[str, set[str]] = {logical: set() for logical in stack.roles}
    for case in ALL_CASES:
        if case.allowed:
            used[ROLES[case.role]].update(_evaluate(stack, case).allowed_by)
    for logical, documents in stack.roles.items():
        statements = {
            str(statement.get("Sid", f"#{index}"))
            for document in documents
            for index, statement in enumerate(document["Statement"])
            if statement["Effect"] == "Allow"
        }
        assert statements - used[logical] == set(), logical


def test_only_encrypt_may_unwrap_or_write_vault_keys(stack: StackPolicies) -> None:
    """The API reads vault rows (key versions' metadata); a key row's private key is wrapped for
    `vault-key`, which only the encrypt role may decrypt. The flow functions do not even read them."""

    def can(role: str, action: str, resource: str, context: Mapping[str, Any]) -> bool:
        return _evaluate(stack, Case(role, action, resource, context, allowed=True)).allowed

    for role in ROLES:
        reads_rows = can(role, "dynamodb:GetItem", "VaultsTable", leading("TENANT#t"))
        unwraps = can(role, "kms:Decrypt", "RootKey", kms_context("vault-key"))
        writes = can(role, "dynamodb:PutItem", "VaultsTable", leading("TENANT#t")) or can(
            role, "kms:Encrypt", "RootKey", kms_context("vault-key")
        )
        expected = {"encrypt": (True, True, True), "api": (True, False, False)}.get(
            role, (False, False, False)
        )
        assert (reads_rows, unwraps, writes) == expected, role


def test_the_key_policy_denies_any_use_without_an_encryption_context(stack: StackPolicies) -> None:
    request = Case("encrypt", "kms:Decrypt", "RootKey", {}, allowed=False).request(stack)
    evaluation = evaluate(
        request, stack.roles["EncryptFunctionRole"], stack.resource_policies_for(request.resource)
    )
    assert evaluation.decision is Decision.EXPLICIT_DENY
    assert evaluation.denied_by == ("DenyCryptographicUseWithoutEncryptionContext",)


# ------------------------------------------------------------------------------ the token keys' rotation

# (TokenSigningKey, TokenStandbyKey) -> the keys that exist, the one that signs, the ones that verify.
ROTATION = {
    ("A", "retired"): ({"TokenKeyA"}, "TokenKeyA", ["TokenKeyA"]),
    ("A", "published"): ({"TokenKeyA", "TokenKeyB"}, "TokenKeyA", ["TokenKeyA", "TokenKeyB"]),
    ("B", "published"): ({"TokenKeyA", "TokenKeyB"}, "TokenKeyB", ["TokenKeyB", "TokenKeyA"]),
    ("B", "retired"): ({"TokenKeyB"}, "TokenKeyB", ["TokenKeyB"]),
}


@pytest.mark.parametrize(
    ("slots", "expected"), ROTATION.items(), ids=lambda v: "-".join(v) if len(v) == 2 else ""
)
def test_every_step_of_a_rotation_signs_with_one_key_and_verifies_with_the_published_ones(
    slots: tuple[str, str], expected: tuple[set[str], str, list[str]]
) -> None:
    """The API's settings name the signing key and the published standby (what the JWKS serves and
    verification accepts); its role signs with the signing key alone and reads every public key."""
    from reliquary.config import Settings

    exists, signing, verifying = expected
    stack = stack_policies(TokenSigningKey=slots[0], TokenStandbyKey=slots[1])
    assert {lid for lid in stack.arns if lid.startswith("TokenKey")} == exists
    environment = stack.environments["ApiFunction"]
    settings = Settings(
        token_signing_key_id=environment["RELIQUARY_TOKEN_SIGNING_KEY_ID"],
        token_previous_key_ids=json.loads(environment["RELIQUARY_TOKEN_PREVIOUS_KEY_IDS"]),
    )
    assert [settings.token_signing_key_id, *settings.token_previous_key_ids] == [
        stack.arns[k] for k in verifying
    ]
    for key in exists:
        for role, action in itertools.product(ROLES, TOKEN_KEY_ACTIONS):
            allowed = role == "api" and (
                action == "kms:GetPublicKey" or (action == "kms:Sign" and key == signing)
            )
            case = Case(role, action, key, {}, allowed)
            assert _evaluate(stack, case).allowed is allowed, case


def test_an_account_principal_allowed_every_kms_action_still_cannot_sign_tokens(stack: StackPolicies) -> None:
    """The key policies delegate administration to the account's IAM, but deny signing to everyone but
    the API role: an administrator would have to change the key policy first (logged in CloudTrail)."""
    admin = f"arn:aws:iam::{ACCOUNT}:role/administrator"
    everything = (
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    )
    key = stack.arns["TokenKeyA"]

    def decide(action: str) -> Evaluation:
        request = Request(action, key, {"aws:PrincipalArn": admin}, principal=admin)
        return evaluate(request, everything, stack.resource_policies_for(key))

    assert decide("kms:Sign").denied_by == ("OnlyTheApiSigns",)
    assert decide("kms:GetPublicKey").allowed
    assert decide("kms:ScheduleKeyDeletion").allowed  # administration stays with the account
