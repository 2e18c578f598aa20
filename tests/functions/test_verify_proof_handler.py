"""The verify-proof handler on its sample events against moto: set a vault's policy, issue nonces, verify the
sample request's context proof once (a retry of the same request gets the same answer, any other use, a
copy under another requester key or for another item included, is refused with a reason), every answer
signed with the function's stage key, malformed requests typed errors."""

from __future__ import annotations

import base64
import copy
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.zk_store import DynamoDBReplayStore
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.flow.attestation import Signer, Stage
from reliquary.zk.replay import IssuedNonce
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.attested import Attester, sample_request
from tests.support.aws import AwsStack

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events" / "verify_proof"
TENANT, VAULT = "acme", "agent-memory"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


VERIFY = load_event("verify")
FLOW = VERIFY["flow"]
BN254_R = importlib.import_module("py_ecc.optimized_bn128").curve_order
ANOTHER_KEY = base64.b64encode(HybridPrivateKey.generate().public_key().to_bytes()).decode()
SIGNALS = json.loads((REPO / "zk" / "keys" / "context_proof.signals.json").read_text())
CLAIMS = dict(zip(SIGNALS, (int(v) for v in FLOW["context_proof"]["public_signals"]), strict=True))
NOW = (CLAIMS["window_start"] + CLAIMS["window_end"]) // 2


def verify_event(**flow_changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(VERIFY), "flow": {**copy.deepcopy(FLOW), **flow_changes}}


def without(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its attestation (a retry signs the same result afresh)."""
    return {k: v for k, v in result.items() if k != "attestation"}


@pytest.fixture
def vault(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> AwsStack:
    """A vault row, the clock inside the sample proof's window, and the sample's nonce issued."""
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": f"TENANT#{TENANT}"}, "sk": {"S": f"VAULT#{VAULT}"}, "status": {"S": "active"}},
    )
    monkeypatch.setattr("reliquary.zk.service.time.time", lambda: float(NOW))
    settings = aws.settings
    store = DynamoDBReplayStore(TableConfig(settings.replay_table, settings.region, settings.endpoint_url))
    store.add_nonce(IssuedNonce(TENANT, VAULT, FLOW["nonce"], NOW - 10, NOW + 290))
    return aws


@pytest.fixture
def auditor(vault: AwsStack) -> Attester:
    """Reads the published stage keys from the table, as anyone checking a chain does."""
    return Attester(vault.settings, vault.dynamodb, clock=lambda: NOW)


def test_every_action_has_a_sample_event() -> None:
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == {"verify", "issue_nonce", "set_policy"}
    # The VerifyContext task's event: the sample access request as the state machine admits it.
    assert {"action": "verify", "flow": sample_request()} == VERIFY
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in ("verify", "issue_nonce", "set_policy"))


def test_policy_nonce_and_a_signed_verification(
    verify_proof: Invoke, vault: AwsStack, auditor: Attester
) -> None:
    policy = ok(verify_proof(load_event("set_policy")), "set_policy")["policy"]
    assert policy["device_commitments"] == [str(CLAIMS["device_commitment"])]
    issued = ok(verify_proof(load_event("issue_nonce")), "issue_nonce")
    assert len(issued["nonce"]) == 62
    assert issued["expires_at"] == NOW + 300

    result = ok(verify_proof(copy.deepcopy(VERIFY)), "verify")
    assert result["verified"] is True, result
    assert result["reason"] is None
    assert result["nullifier"] == str(CLAIMS["nullifier"])
    assert result["claims"]["region_root"] == str(CLAIMS["region_root"])
    assert len(result["proof_hash"]) == 64
    # Signed by verify-proof's stage key over exactly this result, for exactly this request.
    chain = auditor.verify({**FLOW, "context": result})
    assert (chain.context.stage, chain.context.signer) == (Stage.VERIFY_CONTEXT, Signer.VERIFY_PROOF)
    assert chain.context.statement.claim == {
        "verified": True,
        "circuit": "context_proof",
        "proof_hash": result["proof_hash"],
    }
    assert chain.context.statement.issued_at == NOW
    # What the later samples carry as the context is this answer (their attestations left out).
    score = json.loads((REPO / "events" / "score_trust" / "score.json").read_text())
    assert without(score["flow"]["context"]) == without(result)

    # The VerifyContext task retried: the same answer, signed again. Any other use of the proof: refused.
    again = ok(verify_proof(copy.deepcopy(VERIFY)), "verify")
    assert without(again) == without(result)
    auditor.verify({**FLOW, "context": again})
    other_flow = {**FLOW, "request_id": "access-0003"}
    other = ok(verify_proof({"action": "verify", "flow": other_flow}), "verify")
    assert other["verified"] is False
    assert other["reason"] == "the proof is bound to another request"
    # A refusal is what the stage decided too: signed, and the chain it starts approves nothing.
    refused = auditor.verify({**other_flow, "context": other})
    assert refused.context.statement.claim["verified"] is False
    assert not refused.approves


@pytest.mark.parametrize(
    "changes",
    [{"requester_public_key": ANOTHER_KEY}, {"item_id": "customer-43-notes"}],
    ids=["another requester key", "another item"],
)
def test_a_copy_of_the_request_is_refused_even_first(
    verify_proof: Invoke, vault: AwsStack, changes: dict[str, str]
) -> None:
    ok(verify_proof(load_event("set_policy")), "set_policy")
    copied = ok(verify_proof(verify_event(**changes)), "verify")
    assert (copied["verified"], copied["reason"]) == (False, "the proof is bound to another request")
    # The nonce was not consumed by the copy: the request itself still passes.
    assert ok(verify_proof(copy.deepcopy(VERIFY)), "verify")["verified"] is True


def test_a_policy_field_element_is_below_bn254s_r(verify_proof: Invoke, vault: AwsStack) -> None:
    r = BN254_R
    policy = load_event("set_policy")["policy"]
    top = ok(
        verify_proof(load_event("set_policy", policy={**policy, "region_root": str(r - 1)})), "set_policy"
    )
    assert top["policy"]["region_root"] == str(r - 1)
    for value in (r, r + 1):
        error(
            verify_proof(load_event("set_policy", policy={**policy, "region_root": str(value)})),
            "invalid_request",
        )


def test_a_proof_before_any_policy_or_for_an_unknown_vault_is_not_verified(
    verify_proof: Invoke, vault: AwsStack
) -> None:
    result = ok(verify_proof(copy.deepcopy(VERIFY)), "verify")
    assert (result["verified"], result["reason"]) == (False, "the vault has no context policy")
    error(verify_proof(load_event("issue_nonce", vault_id="no-such-vault")), "not_found")
    error(verify_proof(load_event("set_policy", vault_id="no-such-vault")), "not_found")


def _malformed() -> dict[str, Any]:
    proof = FLOW["context_proof"]
    return {
        "not an object": "verify",
        "unknown action": {**VERIFY, "action": "forge"},
        "the request beside the flow, not in it": {"action": "verify", **FLOW},
        "no flow": {"action": "verify"},
        "no proof": {"action": "verify", "flow": {k: v for k, v in FLOW.items() if k != "context_proof"}},
        "no requester key": {
            "action": "verify",
            "flow": {k: v for k, v in FLOW.items() if k != "requester_public_key"},
        },
        "unknown circuit": verify_event(context_proof={**proof, "circuit": "other"}),
        "point off the curve": verify_event(
            context_proof={**proof, "proof": {**proof["proof"], "pi_a": ["1", "3", "1"]}}
        ),
        "signal outside the field": verify_event(
            context_proof={**proof, "public_signals": [*proof["public_signals"][:-1], str(2**254)]}
        ),
        "signal equal to r": verify_event(
            context_proof={**proof, "public_signals": [*proof["public_signals"][:-1], str(BN254_R)]}
        ),
        "too few signals": verify_event(
            context_proof={**proof, "public_signals": proof["public_signals"][:3]}
        ),
        "bad nonce": verify_event(nonce="not hex"),
        "no item": {"action": "verify", "flow": {k: v for k, v in FLOW.items() if k != "item_id"}},
        "bad item": verify_event(item_id="no such/item"),
        "short requester key": verify_event(requester_public_key=base64.b64encode(b"k" * 32).decode()),
        "an attestation that is not one": verify_event(
            context={"verified": True, "circuit": "context_proof", "attestation": {"signer": "me"}}
        ),
        "bad policy": load_event("set_policy", policy={"circuit": "context_proof", "region_root": "-1"}),
        "policy with unknown field": load_event("set_policy", policy={"admin": True}),
    }


def test_malformed_requests_are_typed_errors(verify_proof: Invoke, vault: AwsStack) -> None:
    def check(event: Any) -> None:
        payload = verify_proof(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] in {"invalid_request", "attestation_invalid"}, payload
        assert_clean(payload)

    each_case(_malformed(), check)
    # Nothing was consumed: the sample still verifies.
    ok(verify_proof(load_event("set_policy")), "set_policy")
    assert ok(verify_proof(copy.deepcopy(VERIFY)), "verify")["verified"] is True
