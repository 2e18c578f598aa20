"""The VerifyContext step on in-memory stores with the real circuits' keys and example proofs: a valid proof
passes once (and again for the same request's retry, whose proof is checked again), and every way of
reusing or bending it (another request, item, vault, tenant or requester key, changed signals) is refused
with a reason, while malformed input is a typed error. Also: BN254's scalar field boundary against py_ecc,
the request binding's encoding (Python and the prover's JavaScript agree), and which verification keys a
deployment accepts (production refuses the development ceremony's)."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reliquary.errors import InvalidRequestError, NotFoundError
from reliquary.zk import groth16
from reliquary.zk.memory import InMemoryPolicyStore, InMemoryReplayStore
from reliquary.zk.policy import SCALAR_FIELD, ContextPolicy, request_hash
from reliquary.zk.replay import NONCE_HEX, Consumption, IssuedNonce
from reliquary.zk.service import ContextVerifier, load_circuit_keys

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "zk" / "examples"
EXAMPLE = json.loads((EXAMPLES / "example.json").read_text())
# The request the example proofs are bound to (zk/scripts/inputs.mjs defaults; zk/README.md).
TENANT, VAULT, ITEM, REQUEST = "acme", "agent-memory", "customer-42-notes", "access-0002"
REQUESTER = EXAMPLE["requester_key_sha256"]  # SHA-256 of events/access/request.json's requester key
THIEF = "22" * 32


def _example(circuit: str) -> tuple[dict[str, Any], list[str]]:
    proof = json.loads((EXAMPLES / "proofs" / f"{circuit}.proof.json").read_text())
    public = json.loads((EXAMPLES / "proofs" / f"{circuit}.public.json").read_text())
    return proof, public


KEYS = load_circuit_keys()
PROOF, PUBLIC = _example("context_proof")
CLAIMS = dict(zip(KEYS["context_proof"].signals, (int(v) for v in PUBLIC), strict=True))
NONCE = f"{CLAIMS['nonce']:0{NONCE_HEX}x}"
NOW = (CLAIMS["window_start"] + CLAIMS["window_end"]) // 2
POLICY = ContextPolicy(
    circuit="context_proof",
    device_commitments=(CLAIMS["device_commitment"],),
    region_root=CLAIMS["region_root"],
    pattern_commitments=(CLAIMS["pattern_commitment"],),
    min_pattern_matches=CLAIMS["threshold"],
    max_window_seconds=CLAIMS["window_end"] - CLAIMS["window_start"],
)


class Fixture:
    def __init__(self, policy: ContextPolicy | None = POLICY) -> None:
        self.now = NOW
        self.replay = InMemoryReplayStore()
        self.policies = InMemoryPolicyStore()
        if policy is not None:
            self.policies.put(TENANT, VAULT, policy)
        self.verifier = ContextVerifier(KEYS, self.replay, self.policies, clock=lambda: self.now)
        # The example was proved for this nonce: as if the service had issued it.
        self.replay.add_nonce(IssuedNonce(TENANT, VAULT, NONCE, NOW - 10, NOW + 290))

    def verify(self, **changes: Any) -> Any:
        fields: dict[str, Any] = {
            "request_id": REQUEST,
            "tenant_id": TENANT,
            "vault_id": VAULT,
            "item_id": ITEM,
            "requester_key_sha256": REQUESTER,
            "nonce": NONCE,
            "circuit": "context_proof",
            "proof": copy.deepcopy(PROOF),
            "public_signals": list(PUBLIC),
        }
        fields.update(changes)
        return self.verifier.verify(**fields)


def _binding(**changes: str) -> int:
    fields = {
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "request_id": REQUEST,
        "requester_key_sha256": REQUESTER,
    }
    return request_hash(**{**fields, **changes})


def test_the_example_is_bound_to_its_whole_request() -> None:
    assert _binding() == CLAIMS["request_hash"]
    assert EXAMPLE["request_id"] == REQUEST
    assert (EXAMPLE["tenant_id"], EXAMPLE["vault_id"], EXAMPLE["item_id"]) == (TENANT, VAULT, ITEM)


def test_a_valid_proof_passes_once_with_its_claims_and_a_retry_gets_the_same_answer() -> None:
    fx = Fixture()
    result = fx.verify()
    assert result.verified, result.reason
    assert result.nullifier == CLAIMS["nullifier"]
    assert result.claims == CLAIMS
    assert len(result.proof_hash) == 64
    body = result.to_dict()
    assert body["claims"]["nonce"] == str(CLAIMS["nonce"])
    stored = fx.replay.get_nonce(TENANT, NONCE)
    assert stored is not None
    assert stored[1] == Consumption(REQUEST, result.proof_hash, CLAIMS["nullifier"], REQUESTER)
    # Step Functions retries the task: the same request, the same proof, the same answer.
    assert fx.verify() == result


def test_a_retry_is_verified_again_so_changed_signals_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fx = Fixture()
    first = fx.verify()
    assert first.verified
    # The retry carries the same request, nonce and proof but a window moved by a second: every binding
    # and policy check still passes, the consumption still matches (it names the proof, not the signals).
    signals = list(PUBLIC)
    names = KEYS["context_proof"].signals
    signals[names.index("window_end")] = str(CLAIMS["window_end"] - 1)
    changed = fx.verify(public_signals=signals)
    assert not changed.verified
    assert changed.reason == "the proof does not verify"
    # The honest retry is still answered the same, and Groth16 ran for it too.
    checked: list[object] = []
    real_verify = groth16.verify

    def spy(*args: Any) -> bool:
        checked.append(args)
        return real_verify(*args)

    monkeypatch.setattr("reliquary.zk.service.groth16.verify", spy)
    assert fx.verify() == first
    assert len(checked) == 1


def test_a_copy_under_another_requester_key_is_refused_even_when_it_comes_first() -> None:
    fx = Fixture()
    # The proof was made for the example's key; the copy carries the thief's, and arrives first.
    stolen = fx.verify(requester_key_sha256=THIEF)
    assert not stolen.verified
    assert stolen.reason == "the proof is bound to another request"
    assert fx.replay.get_nonce(TENANT, NONCE) == (fx.replay.nonces[(TENANT, NONCE)][0], None)  # unused
    first = fx.verify()
    assert first.verified  # the real request still passes
    # After it, the copy is refused by the binding still (before the used nonce is even looked at).
    assert fx.verify(requester_key_sha256=THIEF).reason == "the proof is bound to another request"
    assert fx.verify() == first


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "another request": ({"request_id": "access-0003"}, "bound to another request"),
    "another item": ({"item_id": "customer-43-notes"}, "bound to another request"),
    "another requester key": ({"requester_key_sha256": THIEF}, "bound to another request"),
    "another nonce": ({"nonce": "ab" * (NONCE_HEX // 2)}, "bound to another nonce"),
    "another vault": ({"vault_id": "other-vault"}, "no context policy"),
    "another tenant": ({"tenant_id": "globex"}, "no context policy"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_proof_for_something_else_is_refused(case: str) -> None:
    changes, reason = REFUSALS[case]
    fx = Fixture()
    result = fx.verify(**changes)
    assert not result.verified
    assert reason in (result.reason or "")
    assert fx.replay.get_nonce(TENANT, NONCE) == (fx.replay.nonces[(TENANT, NONCE)][0], None)


@pytest.mark.parametrize("scope", ["vault_id", "tenant_id"])
def test_a_proof_for_another_vault_or_tenant_is_refused_by_its_binding(scope: str) -> None:
    """Even where the other vault (or tenant's vault) has the very same policy and issued the nonce."""
    other = {"vault_id": VAULT, "tenant_id": TENANT, scope: "elsewhere"}
    fx = Fixture()
    fx.policies.put(other["tenant_id"], other["vault_id"], POLICY)
    issued = IssuedNonce(other["tenant_id"], other["vault_id"], NONCE, NOW - 10, NOW + 290)
    fx.replay.nonces[(other["tenant_id"], NONCE)] = (issued, None)
    result = fx.verify(**{scope: "elsewhere"})
    assert not result.verified
    assert result.reason == "the proof is bound to another request"


def test_the_request_binding_encodes_each_field_apart() -> None:
    base = _binding()
    assert base < 2**248 < SCALAR_FIELD
    # Moving characters between neighbouring fields changes the hash (each value is length-prefixed).
    assert _binding(tenant_id="acm", vault_id="eagent-memory") != base
    assert _binding(item_id="customer-42-note", request_id="saccess-0002") != base
    variants = {
        _binding(**{name: value})
        for name, value in (
            ("tenant_id", "globex"),
            ("vault_id", "other-vault"),
            ("item_id", "customer-43-notes"),
            ("request_id", "access-0003"),
            ("requester_key_sha256", THIEF),
        )
    }
    assert len(variants) == 5
    assert base not in variants


@pytest.mark.parametrize(
    "changes",
    [
        {"requester_key_sha256": REQUESTER.upper()},
        {"requester_key_sha256": REQUESTER[:-1]},
        {"requester_key_sha256": ""},
        {"requester_key_sha256": None},
        {"item_id": "bad item!"},
        {"item_id": ""},
    ],
)
def test_a_malformed_binding_is_a_typed_error(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        _binding(**changes)
    fx = Fixture()
    with pytest.raises(InvalidRequestError):
        fx.verify(**changes)
    assert fx.replay.get_nonce(TENANT, NONCE) == (fx.replay.nonces[(TENANT, NONCE)][0], None)


@pytest.mark.parametrize(
    ("policy_changes", "reason"),
    [
        ({"circuit": "device_proof"}, "requires the device_proof circuit"),
        ({"device_commitments": (1,)}, "device is not one this vault knows"),
        ({"region_root": 1}, "another set of allowed regions"),
        ({"pattern_commitments": (1,)}, "access pattern is not one"),
        ({"min_pattern_matches": CLAIMS["threshold"] + 1}, "threshold is below"),
        ({"max_window_seconds": 1}, "window is longer"),
    ],
)
def test_the_vault_policy_decides_what_a_proof_must_show(policy_changes: dict[str, Any], reason: str) -> None:
    result = Fixture(POLICY.model_copy(update=policy_changes)).verify()
    assert not result.verified
    assert reason in (result.reason or "")


def test_a_vault_without_policy_accepts_no_proof_and_issues_no_nonce() -> None:
    fx = Fixture(policy=None)
    assert fx.verify().reason == "the vault has no context policy"
    with pytest.raises(NotFoundError):
        fx.verifier.issue_nonce(TENANT, VAULT)


def test_a_window_that_is_not_now_is_refused() -> None:
    fx = Fixture()
    fx.now = CLAIMS["window_end"] + POLICY.clock_skew_seconds + 1
    assert fx.verify().reason == "the time window is not now"


def test_nonces_are_single_use_and_expire() -> None:
    fx = Fixture()
    assert fx.verify().verified
    # The nonce used by another request: refused.
    fx.replay.nonces[(TENANT, NONCE)] = (fx.replay.nonces[(TENANT, NONCE)][0], Consumption("x", "y", 1))
    assert fx.verify().reason == "nonce_used"
    expired = Fixture()
    expired.replay.nonces[(TENANT, NONCE)] = (IssuedNonce(TENANT, VAULT, NONCE, NOW - 300, NOW), None)
    assert expired.verify().reason == "nonce_expired"
    unknown = Fixture()
    del unknown.replay.nonces[(TENANT, NONCE)]
    assert unknown.verify().reason == "nonce_unknown"


def test_a_seen_nullifier_is_refused() -> None:
    fx = Fixture()
    fx.replay.nullifiers[(TENANT, CLAIMS["nullifier"])] = NOW + 86_400
    result = fx.verify()
    assert result.reason == "nullifier_seen"
    assert fx.replay.get_nonce(TENANT, NONCE) == (fx.replay.nonces[(TENANT, NONCE)][0], None)


@pytest.mark.parametrize("index", range(len(PUBLIC)))
def test_every_public_signal_is_bound(index: int) -> None:
    signals = list(PUBLIC)
    signals[index] = str(int(signals[index]) + 1)
    result = Fixture().verify(public_signals=signals)
    assert not result.verified


@pytest.mark.parametrize("part", ["pi_a", "pi_b", "pi_c"])
def test_a_tampered_proof_does_not_verify(part: str) -> None:
    proof = copy.deepcopy(PROOF)
    other, _ = _example("device_proof")  # valid curve points from another proof
    proof[part] = other[part]
    result = Fixture().verify(proof=proof)
    assert result.reason == "the proof does not verify"
    assert Fixture().verify().verified  # and the untouched proof still does


def test_a_proof_of_another_circuit_is_refused() -> None:
    proof, public = _example("device_proof")
    with pytest.raises(InvalidRequestError):  # four signals where the context circuit has ten
        Fixture().verify(proof=proof, public_signals=public)
    result = Fixture().verify(circuit="device_proof", proof=proof, public_signals=public)
    assert result.reason == "the vault's policy requires the context_proof circuit"


@pytest.mark.parametrize(
    "changes",
    [
        {"circuit": "no_such_circuit"},
        {"nonce": "xyz"},
        {"nonce": NONCE.upper()},
        {"request_id": "bad id!"},
        {"public_signals": [*PUBLIC[:-1], "-1"]},
        {"public_signals": [*PUBLIC[:-1], str(SCALAR_FIELD)]},
        {"public_signals": [*PUBLIC[:-1], str(SCALAR_FIELD + 1)]},
        {"proof": {**PROOF, "pi_a": ["1", "3", "1"]}},
        {"proof": {"pi_a": PROOF["pi_a"]}},
    ],
)
def test_malformed_requests_are_typed_errors_and_consume_nothing(changes: dict[str, Any]) -> None:
    fx = Fixture()
    with pytest.raises(InvalidRequestError):
        fx.verify(**changes)
    assert fx.replay.get_nonce(TENANT, NONCE) is not None
    assert fx.replay.get_nonce(TENANT, NONCE)[1] is None  # type: ignore[index]


def test_issued_nonces_are_fresh_field_elements() -> None:
    fx = Fixture()
    first, second = fx.verifier.issue_nonce(TENANT, VAULT), fx.verifier.issue_nonce(TENANT, VAULT)
    assert first.nonce != second.nonce
    assert len(first.nonce) == NONCE_HEX
    assert first.expires_at == NOW + 300
    assert int(first.nonce, 16) < 2**248


# --- BN254's scalar field ---------------------------------------------------------------------------
# py_ecc, the tests' independent oracle (untyped: it has no __all__).
CURVE_ORDER: int = importlib.import_module("py_ecc.optimized_bn128").curve_order


def test_the_scalar_field_is_bn254s_group_order() -> None:
    assert SCALAR_FIELD == CURVE_ORDER == groth16.SCALAR_FIELD
    # The prover's scripts use the same r.
    common = (REPO / "zk" / "scripts" / "common.mjs").read_text()
    assert f"export const FIELD_MODULUS = {CURVE_ORDER}n;" in common
    assert f"r = {CURVE_ORDER}" in (REPO / "zk" / "README.md").read_text()


def test_a_policy_field_element_is_below_r() -> None:
    assert ContextPolicy(region_root=CURVE_ORDER - 1).region_root == CURVE_ORDER - 1
    assert ContextPolicy(device_commitments=(str(CURVE_ORDER - 1),)).device_commitments == (CURVE_ORDER - 1,)
    for value in (CURVE_ORDER, CURVE_ORDER + 1, str(CURVE_ORDER), str(CURVE_ORDER + 1)):
        with pytest.raises(ValidationError, match=r"\[0, r\) of BN254"):
            ContextPolicy(region_root=value)


def test_a_public_signal_is_below_r() -> None:
    key = KEYS["context_proof"].key
    top = [*PUBLIC[:-1], str(CURVE_ORDER - 1)]
    assert groth16.parse_public_signals(top, key)[-1] == CURVE_ORDER - 1
    for value in (CURVE_ORDER, CURVE_ORDER + 1):
        with pytest.raises(InvalidRequestError, match="not below the BN254 scalar field order"):
            groth16.parse_public_signals([*PUBLIC[:-1], str(value)], key)
    # r - 1 is a well-formed signal: the verifier answers (the proof does not verify for it), no error.
    result = Fixture().verify(public_signals=top)
    assert (result.verified, result.reason) == (False, "the proof is bound to another request")
