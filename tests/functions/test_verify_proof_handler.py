"""The verify-proof handler on its sample events against moto: set a vault's policy, issue nonces, verify
the example context proof once (a retry of the same request gets the same answer, any other use, a copy
under another requester key or for another item included, is refused with a reason), malformed requests
are typed errors."""

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
from reliquary.zk.replay import IssuedNonce
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.aws import AwsStack

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events" / "verify_proof"
TENANT, VAULT = "acme", "agent-memory"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


VERIFY = load_event("verify")
BN254_R = importlib.import_module("py_ecc.optimized_bn128").curve_order
ANOTHER_KEY = base64.b64encode(HybridPrivateKey.generate().public_key().to_bytes()).decode()
SIGNALS = json.loads((REPO / "zk" / "keys" / "context_proof.signals.json").read_text())
CLAIMS = dict(zip(SIGNALS, (int(v) for v in VERIFY["context_proof"]["public_signals"]), strict=True))
NOW = (CLAIMS["window_start"] + CLAIMS["window_end"]) // 2


@pytest.fixture
def vault(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> AwsStack:
    """A vault row, the verifier's clock inside the example's window, and the example's nonce issued."""
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": f"TENANT#{TENANT}"}, "sk": {"S": f"VAULT#{VAULT}"}, "status": {"S": "active"}},
    )
    monkeypatch.setattr("reliquary.zk.service.time.time", lambda: float(NOW))
    settings = aws.settings
    store = DynamoDBReplayStore(TableConfig(settings.replay_table, settings.region, settings.endpoint_url))
    store.add_nonce(IssuedNonce(TENANT, VAULT, VERIFY["nonce"], NOW - 10, NOW + 290))
    return aws


def test_every_action_has_a_sample_event_made_from_the_committed_example() -> None:
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == {"verify", "issue_nonce", "set_policy"}
    example = REPO / "zk" / "examples" / "proofs"
    assert VERIFY["context_proof"]["proof"] == json.loads((example / "context_proof.proof.json").read_text())
    assert VERIFY["context_proof"]["public_signals"] == json.loads(
        (example / "context_proof.public.json").read_text()
    )
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in ("verify", "issue_nonce", "set_policy"))


def test_policy_nonce_and_verification(verify_proof: Invoke, vault: AwsStack) -> None:
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
    # The VerifyContext task retried: the same answer. Any other use of the proof: refused.
    assert ok(verify_proof(copy.deepcopy(VERIFY)), "verify") == result
    other = ok(verify_proof({**copy.deepcopy(VERIFY), "request_id": "access-0003"}), "verify")
    assert other["verified"] is False
    assert other["reason"] == "the proof is bound to another request"


@pytest.mark.parametrize(
    "changes",
    [{"requester_public_key": ANOTHER_KEY}, {"item_id": "customer-43-notes"}],
    ids=["another requester key", "another item"],
)
def test_a_copy_of_the_request_is_refused_even_first(
    verify_proof: Invoke, vault: AwsStack, changes: dict[str, str]
) -> None:
    ok(verify_proof(load_event("set_policy")), "set_policy")
    copied = ok(verify_proof({**copy.deepcopy(VERIFY), **changes}), "verify")
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
    proof = VERIFY["context_proof"]
    return {
        "not an object": "verify",
        "unknown action": {**VERIFY, "action": "forge"},
        "no proof": {k: v for k, v in VERIFY.items() if k != "context_proof"},
        "unknown circuit": {**VERIFY, "context_proof": {**proof, "circuit": "other"}},
        "point off the curve": {
            **VERIFY,
            "context_proof": {**proof, "proof": {**proof["proof"], "pi_a": ["1", "3", "1"]}},
        },
        "signal outside the field": {
            **VERIFY,
            "context_proof": {**proof, "public_signals": [*proof["public_signals"][:-1], str(2**254)]},
        },
        "too few signals": {
            **VERIFY,
            "context_proof": {**proof, "public_signals": proof["public_signals"][:3]},
        },
        "bad nonce": {**VERIFY, "nonce": "not hex"},
        "no item": {k: v for k, v in VERIFY.items() if k != "item_id"},
        "bad item": {**VERIFY, "item_id": "no such/item"},
        "no requester key": {k: v for k, v in VERIFY.items() if k != "requester_public_key"},
        "short requester key": {**VERIFY, "requester_public_key": base64.b64encode(b"k" * 32).decode()},
        "signal equal to r": {
            **VERIFY,
            "context_proof": {**proof, "public_signals": [*proof["public_signals"][:-1], str(BN254_R)]},
        },
        "bad policy": load_event("set_policy", policy={"circuit": "context_proof", "region_root": "-1"}),
        "policy with unknown field": load_event("set_policy", policy={"admin": True}),
    }


def test_malformed_requests_are_typed_errors(verify_proof: Invoke, vault: AwsStack) -> None:
    def check(event: Any) -> None:
        payload = verify_proof(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] == "invalid_request", payload
        assert_clean(payload)

    each_case(_malformed(), check)
