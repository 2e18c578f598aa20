"""The access flow's state: the one model of what travels between the access state machine's states.

``FlowRequest`` is the admitted request (the execution's input); ``FlowState`` adds what each stage
decided - ``context`` (VerifyContext), ``trust`` (ScoreTrust), ``votes`` (the Quorum Map), ``decision``
(the Tally, or the state machine's deny), ``approvals`` (people's passkey approvals, AwaitApprovers) -
each with the stage's ``attestation`` (see
``reliquary.flow.attestation``). Every function of the flow reads this model, and the state machine
passes it whole (``"flow.$": "$.flow"``), so adding a field touches this module only.

A stage's attestation signs the digest of its part *without* the attestation (``result_json``): any
function that receives the state recomputes it and so knows the part is the one the stage decided.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import core_schema

from reliquary import jcs
from reliquary.crypto.kem import PUBLIC_KEY_LEN, requester_key_sha256
from reliquary.errors import ReliquaryError
from reliquary.fields import Base64Bytes, Identifier, JsonInt
from reliquary.flow.attestation import Attestation, Subject, digest
from reliquary.zk.policy import Circuit
from reliquary.zk.replay import NONCE_HEX

MAX_PUBLIC_SIGNALS = 64
MAX_PROOF_BYTES = 16 * 1024  # a snarkjs Groth16 proof is about 800 bytes of JSON
MAX_DETAIL_BYTES = 16 * 1024  # rules outcomes and facts: small JSON objects
MAX_PANEL_VOTES = 16
MAX_APPROVALS = 8  # reliquary.flow.attestation.MAX_APPROVALS

Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Where a request comes from, as the trust history holds it (reliquary.trust.model.Region).
Region = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A principal as the audit log can hash it: one line, no control characters.
SubjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]


def _bounded_json(limit: int) -> AfterValidator:
    """Free-form JSON (rules outcomes, facts, proofs) must be canonical-JSON-able and small: no NaN, no
    nesting deeper than JCS allows, at most ``limit`` bytes. Checked once, on the way in."""

    def check(value: Any) -> Any:
        try:
            size = len(jcs.canonicalize(value))
        except ReliquaryError:
            raise ValueError("not a small JSON value (NaN, deep nesting or bad strings)") from None
        if size > limit:
            raise ValueError(f"at most {limit} bytes of JSON")
        return value

    return AfterValidator(check)


def _attestation(value: object) -> Attestation:
    return value if isinstance(value, Attestation) else Attestation.from_json(value)


# A plain validator, not a before-validator over the dataclass: the schema then holds no Statement or
# Subject fields, so a validation error cannot name a caller's key after one of them (reliquary.validation
# names only the schema's own words). Given as the core schema itself: pydantic's PlainValidator also
# builds the dataclass's own schema (for a serializer this one replaces), a third of each model's build
# here, six models per flow function's cold start.
_ATTESTATION_SCHEMA = core_schema.no_info_plain_validator_function(
    _attestation,
    serialization=core_schema.plain_serializer_function_ser_schema(
        lambda a: a.to_json(), return_schema=core_schema.dict_schema()
    ),
)
AttestationField = Annotated[
    Attestation,
    GetPydanticSchema(lambda _source, _handler: _ATTESTATION_SCHEMA),
    WithJsonSchema({"type": "object", "description": "a stage attestation (reliquary.flow.attestation)"}),
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Principal(_Part):
    subject: SubjectName
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64
    )


class ContextProof(_Part):
    """A snarkjs Groth16 proof, its public signals (decimal strings) and the circuit it is for."""

    circuit: Circuit
    proof: Annotated[dict[str, Any], _bounded_json(MAX_PROOF_BYTES)]
    # A JSON true or false is not a signal (lax validation would read it as 1 or 0).
    public_signals: Annotated[list[StrictStr | JsonInt], Field(max_length=MAX_PUBLIC_SIGNALS)]


class _Attested(_Part):
    attestation: AttestationField | None = None

    def result_json(self) -> dict[str, Any]:
        """What the stage's attestation signs the digest of: this part without its attestation."""
        return self.model_dump(mode="json", exclude={"attestation"})


class ContextOutcome(_Attested):
    """VerifyContext's result. ``claims`` are the proof's public signals by name (decimal strings)."""

    verified: bool
    circuit: Circuit
    reason: Annotated[str, StringConstraints(max_length=512)] | None = None
    claims: dict[Text, Annotated[str, StringConstraints(max_length=80)]] = Field(
        default_factory=dict, max_length=MAX_PUBLIC_SIGNALS
    )
    nullifier: Annotated[str, StringConstraints(max_length=80)] | None = None
    proof_hash: Hex64 | None = None
    key_fingerprint: Annotated[str, StringConstraints(max_length=128)] | None = None


class TrustFactor(_Part):
    name: Text
    value: float
    weight: float
    contribution: float


class TrustOutcome(_Attested):
    """ScoreTrust's result: the score with every factor, the rules' outcome and the facts they read, the
    device and region the history was read with, and the item version and label that were scored."""

    score: float = Field(ge=0.0, le=1.0)
    band: Literal["low", "medium", "high"]
    template: Text
    factors: list[TrustFactor] = Field(default_factory=list, max_length=64)
    rules: Annotated[dict[str, Any], _bounded_json(MAX_DETAIL_BYTES)]
    policy_version: Hex64
    facts: Annotated[dict[str, Any], _bounded_json(MAX_DETAIL_BYTES)] = Field(default_factory=dict)
    device: Text
    region: Region
    sensitivity: Literal["public", "internal", "confidential", "restricted"] = "restricted"
    item_version: int | None = Field(default=None, ge=1)

    @property
    def effect(self) -> str:
        effect = self.rules.get("effect")
        return effect if isinstance(effect, str) else "unknown"


class VoteOutcome(_Attested):
    agent: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    vote: Literal["approve", "deny", "abstain"]
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: Annotated[str, StringConstraints(max_length=1024)] = ""
    veto: bool = False


class DecisionOutcome(_Attested):
    """The decision: the Tally's (attested), or a deny the state machine made when a stage refused."""

    decision: Literal["approve", "deny"]
    reasons: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, max_length=64
    )
    # None: a denial decided before any trust policy was read.
    policy_version: Hex64 | None = None


class ApprovalOutcome(_Attested):
    """One person's answer to a step-up, signed by agent-vote once it verified the person's passkey
    assertion over the approval challenge (``reliquary.agents.approvals``)."""

    person_id: Annotated[str, StringConstraints(pattern=r"^ps-[0-9a-f]{24}$")]
    credential_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,1024}$")]
    vote: Literal["approve", "deny"]
    assertion_sha256: Hex64
    decided_at: JsonInt = Field(ge=0)


class FlowRequest(BaseModel):
    """One access request: the input of an access state machine execution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: Principal
    requester_public_key: Annotated[Base64Bytes, Field(min_length=PUBLIC_KEY_LEN, max_length=PUBLIC_KEY_LEN)]
    context_proof: ContextProof
    nonce: Annotated[str, StringConstraints(pattern=rf"^[0-9a-f]{{{NONCE_HEX}}}$")]
    purpose: Annotated[str, StringConstraints(max_length=256)] = ""
    # Where the request comes from, as the front door saw it (never as the requester claims it): trust
    # history and the watchdog compare it between requests.
    region: Region = "unknown"

    @property
    def requester_key_sha256(self) -> str:
        return requester_key_sha256(self.requester_public_key)

    def request_json(self) -> dict[str, Any]:
        """The request's own fields (what ``binding_sha256`` covers), whatever the model holds besides."""
        return self.model_dump(mode="json", include=set(FlowRequest.model_fields))

    @property
    def subject(self) -> Subject:
        """Who and what every stage's statement is about (``binding_sha256``: the whole request)."""
        return Subject(
            tenant_id=self.tenant_id,
            vault_id=self.vault_id,
            item_id=self.item_id,
            request_id=self.request_id,
            requester_key_sha256=self.requester_key_sha256,
            binding_sha256=digest(self.request_json()),
        )

    def execution_input(self) -> str:
        """The execution's input document (every field present: the state machine reads each one)."""
        return json.dumps(self.request_json(), separators=(",", ":"))

    @property
    def requester_key_b64(self) -> str:
        return base64.b64encode(self.requester_public_key).decode("ascii")


class FlowState(FlowRequest):
    """The request and what the stages decided so far (``$.flow`` in the state machine)."""

    context: ContextOutcome | None = None
    trust: TrustOutcome | None = None
    votes: list[VoteOutcome] = Field(default_factory=list, max_length=MAX_PANEL_VOTES)
    decision: DecisionOutcome | None = None
    approvals: list[ApprovalOutcome] = Field(default_factory=list, max_length=MAX_APPROVALS)

    def chain(self) -> list[Attestation]:
        """The attestations the state carries, in flow order (context, trust, votes, tally, approvals)."""
        parts: list[_Attested | None] = [self.context, self.trust, *self.votes, self.decision]
        parts += self.approvals
        return [p.attestation for p in parts if p is not None and p.attestation is not None]
