"""Access requests against a running local stack: seed tenants, vaults, items and devices through the
functions' own APIs (Lambda invocations), then run requests through the real access state machine.

Used by ``make run``, the end-to-end tests and the benchmarks; nothing here reaches a function except
through moto's Lambda and Step Functions APIs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infra.local.interpreter import EXECUTION_EVENTS, install_execution_events
from infra.local.requester import Prover, Requester
from infra.local.runtime import LocalStack
from reliquary.contracts.access import AccessRequest, execution_name

if TYPE_CHECKING:
    from reliquary.flow.attestation import VerifiedChain

FUNCTIONS = {
    "encrypt": "EncryptFunction",
    "verify-proof": "VerifyProofFunction",
    "score-trust": "ScoreTrustFunction",
    "agent-vote": "AgentVoteFunction",
    "audit-append": "AuditAppendFunction",
}
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class FunctionRefused(RuntimeError):  # noqa: N818  (a refusal, named as the functions name it)
    """A function answered with a typed refusal where the caller needed a result."""

    def __init__(self, function: str, error: dict[str, Any]) -> None:
        super().__init__(f"{function} refused: {json.dumps(error)}")
        self.error = error


@dataclass(frozen=True)
class Execution:
    """An access execution's end: its status, its output (a decision) and its whole event history."""

    arn: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    seconds: float
    # GetExecutionHistory, called on the first read of ``history``: the whole history (every state's
    # input and output) is a large answer that deciding does not need, so the decision is not kept
    # waiting for it.
    read_history: Callable[[], list[dict[str, Any]]] = field(repr=False, compare=False)

    @functools.cached_property
    def history(self) -> list[dict[str, Any]]:
        return self.read_history()

    @property
    def decision(self) -> str | None:
        return None if self.output is None else self.output.get("decision")

    def states_entered(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"] for e in self.history if "stateEnteredEventDetails" in e
        ]


class LocalAccess:
    """What an operator and a requester do, against the local stack."""

    def __init__(self, stack: LocalStack, prover: Prover) -> None:
        self.stack = stack
        self.prover = prover
        self._lambda = stack.client("lambda")
        self._sfn = stack.client("stepfunctions")
        install_execution_events()  # deploy() installed it; idempotent

    # ------------------------------------------------------------------ functions
    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """The function's ``result`` (through the Lambda API); a refusal raises ``FunctionRefused``."""
        logical_id = FUNCTIONS[function]
        response = self._lambda.invoke(
            FunctionName=self.stack.outputs[f"{logical_id}Arn"], Payload=json.dumps(event).encode()
        )
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(
                f"{function} failed: {payload.get('errorType')}: {payload.get('errorMessage')}"
            )
        if payload.get("status") != "ok":
            raise FunctionRefused(function, payload.get("error", {}))
        result: dict[str, Any] = payload["result"]
        return result

    def create_vault(
        self, tenant: str, vault: str, *, permanent_storage: str | None = None
    ) -> dict[str, Any]:
        """A vault; with ``permanent_storage`` ("ipfs" / "arweave"), one whose bodies go there for good."""
        permanent = {"permanent_storage": permanent_storage, "acknowledge_permanence": True}
        return self.invoke(
            "encrypt",
            {
                "action": "create_vault",
                "request_id": _new_id("vault"),
                "tenant_id": tenant,
                "vault_id": vault,
                **(permanent if permanent_storage else {}),
            },
        )

    def seal(
        self,
        tenant: str,
        vault: str,
        item: str,
        plaintext: bytes,
        *,
        scope: tuple[str, str] = ("user", "demo"),
    ) -> dict[str, Any]:
        return self.invoke(
            "encrypt",
            {
                "action": "seal",
                "request_id": _new_id("seal"),
                "tenant_id": tenant,
                "vault_id": vault,
                "item_id": item,
                "plaintext": base64.b64encode(plaintext).decode(),
                "content_type": "text/plain; charset=utf-8",
                "memory_scope": {"kind": scope[0], "ref": scope[1]},
            },
        )

    def set_context_policy(self, tenant: str, vault: str, devices: list[Requester]) -> dict[str, Any]:
        """The vault accepts these devices (their commitments), in the requesters' regions and pattern."""
        policies = [self.prover.policy(device.seed) for device in devices]
        policy = {
            "circuit": "context_proof",
            **policies[0],
            "device_commitments": [c for p in policies for c in p["device_commitments"]],
            "pattern_commitments": sorted({c for p in policies for c in p["pattern_commitments"]}),
        }
        return self.invoke(
            "verify-proof", {"action": "set_policy", "tenant_id": tenant, "vault_id": vault, "policy": policy}
        )

    def set_trust_policy(self, tenant: str, vault: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self.invoke(
            "score-trust", {"action": "set_policy", "tenant_id": tenant, "vault_id": vault, "policy": policy}
        )

    def set_quorum_policy(self, tenant: str, vault: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self.invoke(
            "agent-vote", {"action": "set_policy", "tenant_id": tenant, "vault_id": vault, "policy": policy}
        )

    def issue_nonce(self, tenant: str, vault: str) -> str:
        issued = self.invoke(
            "verify-proof", {"action": "issue_nonce", "tenant_id": tenant, "vault_id": vault}
        )
        return str(issued["nonce"])

    # ------------------------------------------------------------------ access requests
    def request(
        self,
        requester: Requester,
        tenant: str,
        vault: str,
        item: str,
        *,
        purpose: str = "support",
        request_id: str | None = None,
        nonce: str | None = None,
        prove_as: str | None = None,
        region: str = "unknown",
    ) -> AccessRequest:
        """A request as the requester's device makes it: a fresh nonce, a context proof bound to it and to
        the whole request (tenant, vault, item, request id and the requester's key).

        ``prove_as``: prove with another device's seed (a device the vault does not know)."""
        request_id = request_id or _new_id("access")
        nonce = nonce or self.issue_nonce(tenant, vault)
        proof = self.prover.prove(
            prove_as or requester.seed,
            tenant_id=tenant,
            vault_id=vault,
            item_id=item,
            request_id=request_id,
            requester_public_key=requester.public_key,
            nonce=nonce,
        )
        return AccessRequest.model_validate(
            {
                "request_id": request_id,
                "tenant_id": tenant,
                "vault_id": vault,
                "item_id": item,
                "principal": requester.principal,
                "requester_public_key": base64.b64encode(requester.public_key).decode(),
                "context_proof": proof,
                "nonce": nonce,
                "purpose": purpose,
                "region": region,
            }
        )

    def start(self, request: AccessRequest) -> str:
        response = self._sfn.start_execution(
            stateMachineArn=self.stack.access_state_machine_arn,
            name=execution_name(request.tenant_id, request.request_id),
            input=request.execution_input(),
        )
        return str(response["executionArn"])

    def wait(self, arn: str, *, timeout: float = 120) -> Execution:
        """The execution's end, read through the Step Functions API once the interpreter says it ended
        (no polling: a DescribeExecution every few ms would take turns from the execution itself)."""
        with EXECUTION_EVENTS.watching(arn) as ended:
            described = self._sfn.describe_execution(executionArn=arn)
            if described["status"] not in TERMINAL:
                if not ended.wait(timeout):
                    raise TimeoutError(f"{arn} still running after {timeout} s")
                described = self._sfn.describe_execution(executionArn=arn)
        elapsed = (described.get("stopDate") or described["startDate"]) - described["startDate"]
        output = json.loads(described["output"]) if described.get("output") else None
        return Execution(
            arn=arn,
            status=described["status"],
            output=output,
            error=described.get("error"),
            seconds=elapsed.total_seconds(),
            read_history=functools.partial(self.history, arn),
        )

    def history(self, arn: str) -> list[dict[str, Any]]:
        """The execution's whole event history (GetExecutionHistory)."""
        events: list[dict[str, Any]] = self._sfn.get_execution_history(executionArn=arn, maxResults=1000)[
            "events"
        ]
        return events

    def open_grant(self, execution: Execution, requester: Requester) -> bytes:
        """The requester's side of a grant: verify it and the sealed item, and decrypt the plaintext."""
        from reliquary.adapters.factory import build_vault_service  # noqa: PLC0415
        from reliquary.config import get_settings  # noqa: PLC0415
        from reliquary.crypto.grants import open_grant  # noqa: PLC0415

        output = execution.output or {}
        if not output.get("grant"):
            raise ValueError(f"{execution.arn} granted nothing (decision {execution.decision})")
        request = output["request"]
        scope = (request["tenant_id"], request["vault_id"], request["item_id"])
        # The sealed item and the service's public signing keys, read as stored (an SDK fetches both).
        with self.stack.lambdas.environment_of(FUNCTIONS["encrypt"]):
            service = build_vault_service(get_settings())
            _, envelope = service.load_envelope(*scope)
            keyring = service.service_keys.keyring
        return open_grant(
            base64.b64decode(output["grant"]["grant"]),
            envelope,
            requester_private_key=requester.key,
            service_keys=keyring,
            now=int(time.time()),
            request_id=request["request_id"],
            expected=scope,
        )

    def verify_receipt(self, execution: Execution) -> int:
        """Check the decision's receipt as an outsider: the logged entry is in the tenant's log, under a
        checkpoint signed by every published key. Returns the checkpoint's tree size."""
        from reliquary.audit.note import NoteVerifier, Policy  # noqa: PLC0415
        from reliquary.audit.receipts import Receipt  # noqa: PLC0415
        from reliquary.audit.receipts import verify_receipt as verify  # noqa: PLC0415

        output = execution.output or {}
        published = self.invoke(
            "audit-append", {"action": "get_checkpoint", "tenant_id": output["request"]["tenant_id"]}
        )
        verifiers = [NoteVerifier.from_vkey(key) for key in published["verifier_keys"]]
        checkpoint = verify(
            Receipt.from_dict(output["receipt"]),
            output["entry"].encode("utf-8"),
            verifiers,
            origin=published["origin"],
            required=Policy.all_of(*verifiers),
        )
        return int(checkpoint.size)

    def verify_chain(self, execution: Execution) -> VerifiedChain:
        """Check the decision's attestation chain as an outsider: the chain the logged entry names, read
        from the audit bucket, signed by the published stage keys, about this very request, and (for an
        approval) approving it. Returns the verified chain."""
        from reliquary import jcs  # noqa: PLC0415
        from reliquary.adapters.chain_store import chain_key  # noqa: PLC0415
        from reliquary.flow.attestation import StageKeys, parse_chain, verify_chain  # noqa: PLC0415

        output = execution.output or {}
        request, entry = output["request"], json.loads(output["entry"])
        published = self.invoke(
            "audit-append", {"action": "get_checkpoint", "tenant_id": request["tenant_id"]}
        )
        keys = StageKeys.from_json(published["stage_keys"])
        bucket = self.stack.outputs["AuditBucketName"]
        data = self.stack.client("s3").get_object(
            Bucket=bucket, Key=chain_key(request["tenant_id"], entry["chain_sha256"])
        )
        raw = data["Body"].read()
        if hashlib.sha256(raw).hexdigest() != entry["chain_sha256"]:
            raise ValueError("the stored chain is not the one the log names")
        chain = verify_chain(parse_chain(jcs.parse(raw)), keys)
        subject = chain.subject
        named = (subject.tenant_id, subject.vault_id, subject.item_id, subject.request_id)
        if named != (request["tenant_id"], request["vault_id"], request["item_id"], request["request_id"]):
            raise ValueError("the chain is about another request")
        if entry.get("requester_key_sha256") not in (None, subject.requester_key_sha256):
            raise ValueError("the chain is for another requester key")
        if (entry["decision"] == "approve") != chain.approves:
            raise ValueError("the chain does not decide what the log says")
        return chain

    def forge_approval(self, execution: Execution, *, request_id: str) -> dict[str, Any]:
        """What a caller with invoke rights on audit-append tries: log an approval it made up (the state
        of ``execution`` under a new request id, its decision turned into an approval with no tally's
        signature). Returns the refusal (``FunctionRefused``'s error): the log takes no such approval."""
        output = execution.output or {}
        request = output["request"]
        flow = {
            **json.loads(self._execution_input(execution)),
            "request_id": request_id,
            "context": None,
            "trust": None,
            "votes": [],
            "decision": {"decision": "approve", "reasons": ["forged"], "policy_version": "ab" * 32},
        }
        event = {
            "action": "record_decision",
            "flow": flow,
            "decided_at": int(time.time()),
        }
        try:
            self.invoke("audit-append", event)
        except FunctionRefused as refused:
            return refused.error
        raise RuntimeError(f"audit-append logged a forged approval for {request['tenant_id']}/{request_id}")

    def try_grant(self, execution: Execution, *, request_id: str, requester: Requester) -> dict[str, Any]:
        """A grant asked for directly (not by the flow); returns the refusal."""
        request = (execution.output or {})["request"]
        try:
            self.invoke(
                "encrypt",
                {
                    "action": "grant",
                    "request_id": request_id,
                    "tenant_id": request["tenant_id"],
                    "vault_id": request["vault_id"],
                    "item_id": request["item_id"],
                    "requester_public_key": base64.b64encode(requester.public_key).decode(),
                },
            )
        except FunctionRefused as refused:
            return refused.error
        raise RuntimeError(f"encrypt granted {request_id} without an attested approval")

    @staticmethod
    def _execution_input(execution: Execution) -> str:
        started = next(e for e in execution.history if "executionStartedEventDetails" in e)
        return str(started["executionStartedEventDetails"]["input"])

    def logged_records(self, tenant: str) -> list[dict[str, Any]]:
        """Every record of the tenant's transparency log, decoded (an operator's view, for checks)."""
        from reliquary.adapters.audit_factory import build_audit  # noqa: PLC0415
        from reliquary.audit.records import decode_record  # noqa: PLC0415
        from reliquary.config import get_settings  # noqa: PLC0415

        with self.stack.lambdas.environment_of(FUNCTIONS["audit-append"]):
            service = build_audit(get_settings()).service
            size = service.checkpoint(tenant).size
            entries = service.entries(tenant, 0, size)
        records = []
        for entry in entries:
            decode_record(entry)  # refuses anything but a well-formed record in its canonical bytes
            records.append(json.loads(entry))
        return records

    def decide(self, request: AccessRequest) -> Execution:
        """Start the request's execution and wait for its end."""
        return self.wait(self.start(request))


def _new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"
