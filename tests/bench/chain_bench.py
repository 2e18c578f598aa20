"""The cost of the attestation chain per decision, beside the Groth16 verification every decision already
pays (the context proof, the same run).

A decision of the usual shape (four agents) signs 7 statements (context, trust, 4 votes, tally) and checks
them 29 times along the way: ScoreTrust checks 1, each of the 4 votes checks 2, Convene 2, the Tally 6,
RecordDecision 7 and the grant 7 (each check includes the canonical JSON digest of the part it covers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reliquary.crypto.signing import SigningKey
from reliquary.flow.attestation import (
    SIGNER_OF,
    Signer,
    Stage,
    StageKeys,
    StageSigner,
    verify_attestation,
    verify_chain,
)
from reliquary.flow.checks import verified_decision
from reliquary.flow.keys import STAGE_ALGORITHM, StageKeyDirectory
from reliquary.flow.state import ContextOutcome, DecisionOutcome, FlowState, TrustOutcome, VoteOutcome
from reliquary.zk import groth16
from reliquary.zk.service import load_circuit_keys
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, measure
from tests.bench.zk_bench import _example

SIGNS_PER_DECISION = 7
CHECKS_PER_DECISION = 29
AGENTS = ("strict", "permissive", "neutral", "watchdog")
REQUEST: dict[str, Any] = {
    "request_id": "access-0001",
    "tenant_id": "acme",
    "vault_id": "agent-memory",
    "item_id": "customer-42-notes",
    "principal": {"subject": "support-agent-7", "roles": ["member"]},
    "requester_public_key": "A" * 1622 + "==",  # 1216 bytes of zeros, base64
    "context_proof": {
        "circuit": "context_proof",
        "proof": {"pi_a": ["1", "2", "1"]},
        "public_signals": ["1"],
    },
    "nonce": "ab" * 31,
    "purpose": "support",
    "region": "eu-west-1",
}
FACTORS = [{"name": f"factor.{n}", "value": 0.9, "weight": 0.1, "contribution": -0.01} for n in range(16)]
RULES = {"effect": "require_quorum", "reason": "restricted item", "matched": [], "policy_version": "9b" * 32}


@dataclass(frozen=True, slots=True)
class ChainResult:
    table: Table
    per_decision_vs_groth16: float


def _signed_state(signers: dict[Signer, StageSigner], now: int) -> FlowState:
    state = FlowState.model_validate(REQUEST)
    subject = state.subject
    claims = {f"signal_{n}": str(10**70 + n) for n in range(10)}

    def sign(stage: Stage, part: Any, claim: dict[str, Any], parents: list[Any]) -> Any:
        signer = signers[SIGNER_OF[stage]]
        attestation = signer.attest(
            stage, subject, part.result_json(), claim=claim, parents=parents, issued_at=now
        )
        return part.model_copy(update={"attestation": attestation})

    context = sign(
        Stage.VERIFY_CONTEXT,
        ContextOutcome(verified=True, circuit="context_proof", claims=claims, proof_hash="0" * 64),
        {"verified": True},
        [],
    )
    trust = sign(
        Stage.SCORE_TRUST,
        TrustOutcome.model_validate(
            {
                "score": 0.8,
                "band": "high",
                "template": "standard",
                "factors": FACTORS,
                "rules": RULES,
                "policy_version": "9b" * 32,
                "device": "device-1",
                "region": "eu-west-1",
                "item_version": 1,
            }
        ),
        {"effect": "require_quorum", "policy_version": "9b" * 32, "item_version": 1},
        [context.attestation],
    )
    votes = [
        sign(
            Stage.VOTE,
            VoteOutcome(agent=a, vote="approve", confidence=0.8, rationale="score 0.80 (high)"),
            {"agent": a, "vote": "approve", "veto": False},
            [context.attestation, trust.attestation],
        )
        for a in AGENTS
    ]
    decision = sign(
        Stage.TALLY,
        DecisionOutcome(
            decision="approve", reasons=["4 of 4 approved (2 required)"], policy_version="9b" * 32
        ),
        {"decision": "approve"},
        [trust.attestation, *sorted((v.attestation for v in votes), key=lambda a: a.digest)],
    )
    return state.model_copy(update={"context": context, "trust": trust, "votes": votes, "decision": decision})


def chain_table(budget: Budget) -> ChainResult:
    now = 1_800_000_000
    signers = {s: StageSigner(s, SigningKey.generate(STAGE_ALGORITHM)) for s in Signer}
    keys = StageKeys({s: [signer.verifying_key] for s, signer in signers.items()})
    directory = StageKeyDirectory(lambda: keys)
    state = _signed_state(signers, now)
    chain = state.chain()
    trust = state.trust
    if trust is None or not verify_chain(chain, keys, subject=state.subject).approves:
        raise AssertionError("the benchmark's chain does not approve")

    circuit_keys = load_circuit_keys(["context_proof"])
    proof_json, signals_json = _example("context_proof")
    vkey = circuit_keys["context_proof"].key
    proof = groth16.Proof.from_snarkjs(proof_json)
    signals = groth16.parse_public_signals(signals_json, vkey)

    stats = measure(
        {
            "groth16": lambda: groth16.verify(vkey, proof, signals),
            "sign": lambda: signers[Signer.SCORE_TRUST].attest(
                Stage.SCORE_TRUST,
                state.subject,
                trust.result_json(),
                claim={"effect": "require_quorum"},
                parents=[chain[0]],
                issued_at=now,
            ),
            "check": lambda: verify_attestation(
                chain[1], keys, stage=Stage.SCORE_TRUST, result=trust.result_json()
            ),
            "chain": lambda: verify_chain(chain, keys, subject=state.subject),
            "record": lambda: verified_decision(state, directory, now=now),
        },
        budget,
    )
    base = stats["groth16"].median_ns
    table = Table(
        "chain",
        "Attestation chain per decision (ML-DSA-65 stage keys), beside the Groth16 check of every decision",
        [
            Column("case", "case"),
            Column("p50_us", "p50 µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_groth16", "x Groth16 verify", ".2f"),
        ],
        notes=[
            (
                "sign = one stage's statement (JCS digest of its result + ML-DSA-65 sign); check = one"
                " statement verified with its result digest; chain = the 7-statement approval chain (context,"
                " trust, 4 votes, tally); record = RecordDecision's whole check of a FlowState."
            ),
            (
                f"per decision = {SIGNS_PER_DECISION} signs + {CHECKS_PER_DECISION} statement checks, from"
                " the medians above (the stages run in different functions, so this is CPU, not latency)."
            ),
        ],
    )
    rows = (
        ("groth16", "Groth16 verify, context_proof (baseline)"),
        ("sign", "sign one statement"),
        ("check", "check one statement"),
        ("chain", "verify a 7-statement approval chain"),
        ("record", "RecordDecision's check of the flow state"),
    )
    for key, label in rows:
        figures = stats[key]
        table.add(
            case=label, p50_us=figures.median_us, p99_us=figures.p99_us, vs_groth16=figures.median_ns / base
        )
    per_decision = (
        SIGNS_PER_DECISION * stats["sign"].median_ns + CHECKS_PER_DECISION * stats["check"].median_ns
    )
    table.add(
        case="per decision (estimate)", p50_us=per_decision / 1e3, p99_us=None, vs_groth16=per_decision / base
    )
    return ChainResult(table, per_decision / base)
