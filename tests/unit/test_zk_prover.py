"""The prover helper (reliquary.zk.prover): snarkjs in a Node subprocess, every proof verified here.

A fake ``prove.mjs`` in a temporary zk directory covers the plumbing (errors, timeouts, output checks)
with a toy key whose valid proof is known in closed form; the real circuits in ``zk/`` make fresh
proofs when they are built (tests skip with a reason otherwise).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reliquary.crypto.kem import HybridPrivateKey, requester_key_sha256
from reliquary.errors import ConfigurationError, InvalidRequestError, TransientError
from reliquary.zk import groth16, prover
from reliquary.zk.memory import InMemoryPolicyStore, InMemoryReplayStore
from reliquary.zk.policy import ContextPolicy, request_hash
from reliquary.zk.replay import NONCE_HEX, IssuedNonce
from reliquary.zk.service import ContextVerifier, load_circuit_keys

# py_ecc re-exports without __all__, so mypy sees none of its names: use it untyped.
bn: Any = importlib.import_module("py_ecc.optimized_bn128")
ZK_DIR = prover.default_zk_dir()
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def g1(k: int) -> list[str]:
    x, y = bn.normalize(bn.multiply(bn.G1, k))
    return [str(x.n), str(y.n), "1"]


G2 = [
    [str(c) for c in bn.normalize(bn.G2)[0].coeffs],
    [str(c) for c in bn.normalize(bn.G2)[1].coeffs],
    ["1", "0"],
]
# alpha = IC_0 = IC_1 = g1, beta = gamma = delta = g2: e(3 g1, g2) = e(g1, g2) e(g1 + 0 g1, g2) e(g1, g2),
# so A = 3 g1, B = g2, C = g1 proves the public signal 0 (and nothing else).
TOY_VKEY = {"protocol": "groth16", "curve": "bn128", "nPublic": 1, "vk_alpha_1": g1(1), "vk_beta_2": G2,
            "vk_gamma_2": G2, "vk_delta_2": G2, "IC": [g1(1), g1(1)]}  # fmt: skip
TOY_PROOF = {"pi_a": g1(3), "pi_b": G2, "pi_c": g1(1), "protocol": "groth16", "curve": "bn128"}

FAKE_PROVE = """
import fs from "fs";
const [circuit, inputPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inputPath === "-" ? 0 : inputPath, "utf8"));
const proof = JSON.parse(fs.readFileSync(new URL("proof.json", import.meta.url), "utf8"));
if (input.mode === "fail") {
  console.error("prove: the input does not satisfy the toy circuit: Assert Failed");
  process.exit(2);
}
if (input.mode === "crash") { console.error("missing artifact"); process.exit(66); }
if (input.mode === "sleep") { await new Promise((r) => setTimeout(r, 5000)); }
if (input.mode === "garbage") { console.log("not json"); process.exit(0); }
console.log(JSON.stringify({ proof, publicSignals: [input.x], circuit }));
"""


@pytest.fixture
def fake_zk(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "keys").mkdir()
    (tmp_path / "scripts" / "prove.mjs").write_text(FAKE_PROVE)
    (tmp_path / "scripts" / "proof.json").write_text(json.dumps(TOY_PROOF))
    (tmp_path / "keys" / "toy.vkey.json").write_text(json.dumps(TOY_VKEY))
    return tmp_path


# --- plumbing, with the fake script ---------------------------------------------------------------
@needs_node
def test_fake_proof_is_returned_after_verifying(fake_zk: Path) -> None:
    proof, public = prover.prove("toy", {"x": 0}, zk_dir=fake_zk)
    assert public == ["0"]
    assert proof == TOY_PROOF
    vk = groth16.VerificationKey.from_snarkjs(TOY_VKEY)
    assert groth16.verify(vk, groth16.Proof.from_snarkjs(proof), groth16.parse_public_signals(public, vk))


@needs_node
def test_big_integers_reach_node_as_strings(fake_zk: Path) -> None:
    # 2^200 as a JSON number would come back rounded; as a string it round-trips, then fails to verify.
    with pytest.raises(ConfigurationError, match=r"does not verify under toy\.vkey\.json"):
        prover.prove("toy", {"x": 2**200}, zk_dir=fake_zk)


@needs_node
def test_constraint_failure_is_an_invalid_request_with_the_scripts_message(fake_zk: Path) -> None:
    with pytest.raises(
        InvalidRequestError, match="proving toy failed: prove: the input does not satisfy the toy circuit"
    ) as caught:
        prover.prove("toy", {"mode": "fail"}, zk_dir=fake_zk)
    assert caught.value.details == {"field": "inputs", "circuit": "toy"}


@needs_node
def test_other_script_failures_are_configuration_errors(fake_zk: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"exit 66\): missing artifact"):
        prover.prove("toy", {"mode": "crash"}, zk_dir=fake_zk)


@needs_node
def test_a_proof_that_does_not_verify_is_never_returned(fake_zk: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not verify"):
        prover.prove("toy", {"x": "1"}, zk_dir=fake_zk)


@needs_node
def test_garbage_output_is_a_configuration_error(fake_zk: Path) -> None:
    with pytest.raises(ConfigurationError, match="printed no proof"):
        prover.prove("toy", {"mode": "garbage"}, zk_dir=fake_zk)


@needs_node
def test_timeout_is_transient(fake_zk: Path) -> None:
    with pytest.raises(TransientError, match=r"longer than 0\.5 s"):
        prover.prove("toy", {"mode": "sleep"}, zk_dir=fake_zk, timeout=0.5)


def test_missing_node_is_a_clear_error(fake_zk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(ConfigurationError, match=r"node is not on PATH.*GPL-3\.0"):
        prover.prove("toy", {"x": 0}, zk_dir=fake_zk)


@pytest.mark.parametrize("name", ["", "../keys/x", "Device", "a b", "x" * 65])
def test_circuit_name_is_checked(fake_zk: Path, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="circuit"):
        prover.prove(name, {}, zk_dir=fake_zk)


def test_missing_circuit_key_is_a_configuration_error(fake_zk: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.vkey\.json is missing"):
        prover.prove("nope", {}, zk_dir=fake_zk)


def test_inputs_must_be_a_mapping(fake_zk: Path) -> None:
    bad: Any = [("x", 0)]
    with pytest.raises(InvalidRequestError, match="inputs"):
        prover.prove("toy", bad, zk_dir=fake_zk)


# --- the real circuits ----------------------------------------------------------------------------
def example_inputs(circuit: str) -> dict[str, Any]:
    for path in (ZK_DIR / "scripts" / "prove.mjs", ZK_DIR / "examples" / "inputs" / f"{circuit}.json"):
        if not path.exists():
            pytest.skip(f"zk/{path.relative_to(ZK_DIR)} is absent: build the circuits in zk/ first")
    if NODE is None:
        pytest.skip("node is not installed")
    inputs: dict[str, Any] = json.loads((ZK_DIR / "examples" / "inputs" / f"{circuit}.json").read_text())
    return inputs


def check_fresh_proof(circuit: str) -> None:
    proof, public = prover.prove(circuit, example_inputs(circuit))
    vk = groth16.VerificationKey.from_snarkjs(
        json.loads((ZK_DIR / "keys" / f"{circuit}.vkey.json").read_text())
    )
    assert groth16.verify(vk, groth16.Proof.from_snarkjs(proof), groth16.parse_public_signals(public, vk))


def test_fresh_device_proof() -> None:
    check_fresh_proof("device_proof")


@pytest.mark.slow
@pytest.mark.parametrize(
    "circuit", ["location_chain", "timestamp_verifier", "pattern_match", "context_proof"]
)
def test_fresh_proof(circuit: str) -> None:
    check_fresh_proof(circuit)


def test_device_proof_with_a_wrong_commitment_is_refused() -> None:
    inputs = example_inputs("device_proof")
    inputs["device_commitment"] = str(int(inputs["device_commitment"]) + 1)
    with pytest.raises(InvalidRequestError, match="proving device_proof failed"):
        prover.prove("device_proof", inputs)


# --- the request binding: one encoding on both sides ---------------------------------------------
BINDINGS = [
    {
        "tenantId": "acme",
        "vaultId": "agent-memory",
        "itemId": "customer-42-notes",
        "requestId": "access-0002",
    },
    {"tenantId": "a", "vaultId": "b", "itemId": "c", "requestId": "d"},
    # The same characters split between fields otherwise: the length prefixes keep them apart.
    {
        "tenantId": "acm",
        "vaultId": "eagent-memory",
        "itemId": "customer-42-notes",
        "requestId": "access-0002",
    },
    {"tenantId": "T" * 128, "vaultId": "v.1:@-_", "itemId": "0", "requestId": "x" * 128},
]


@needs_node
def test_the_prover_scripts_bind_a_request_as_the_verifier_does() -> None:
    keys = ["ab" * 32, "0" * 64, "f" * 64, "31ae98ce7ae5bcaa022279ef7fbd53b3fbd088197bca6f29ebe9b59a53281e35"]
    cases = [{**b, "requesterKeySha256": k} for b, k in zip(BINDINGS, keys, strict=True)]
    script = (
        'import { requestHash } from "./scripts/inputs.mjs";'
        f"for (const c of {json.dumps(cases)}) console.log(requestHash(c).toString());"
    )
    done = subprocess.run(  # noqa: S603  (our own script, fixed arguments)
        [str(NODE), "--input-type=module", "-e", script],
        cwd=ZK_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    from_js = [int(line) for line in done.stdout.split()]
    from_python = [
        request_hash(
            tenant_id=c["tenantId"],
            vault_id=c["vaultId"],
            item_id=c["itemId"],
            request_id=c["requestId"],
            requester_key_sha256=c["requesterKeySha256"],
        )
        for c in cases
    ]
    assert from_js == from_python
    assert len(set(from_python)) == len(cases)


def test_a_fresh_proof_with_binding_inputs_verifies_for_its_request_only() -> None:
    """The SDK's way: the circuit's own inputs plus binding_inputs for the request, then the verifier."""
    inputs = example_inputs("device_proof")
    key = HybridPrivateKey.generate().public_key().to_bytes()
    nonce = "7e" * (NONCE_HEX // 2)
    request = {"tenant_id": "acme", "vault_id": "vault-1", "item_id": "item-9", "request_id": "req-77"}
    binding = prover.binding_inputs(**request, requester_public_key=key, nonce=nonce)
    assert binding["nonce"] == str(int(nonce, 16))
    proof, public = prover.prove("device_proof", {**inputs, **binding})

    keys = load_circuit_keys(("device_proof",))
    policy = ContextPolicy(circuit="device_proof", device_commitments=(int(inputs["device_commitment"]),))

    def verify(**changes: Any) -> Any:
        replay, policies = InMemoryReplayStore(), InMemoryPolicyStore()
        policies.put("acme", "vault-1", policy)
        replay.add_nonce(IssuedNonce("acme", "vault-1", nonce, 0, 2**40))
        verifier = ContextVerifier(keys, replay, policies, clock=lambda: 1)
        fields = {**request, "requester_key_sha256": requester_key_sha256(key), "nonce": nonce}
        return verifier.verify(
            **{**fields, **changes}, circuit="device_proof", proof=proof, public_signals=public
        )

    assert verify().verified
    assert verify(item_id="item-10").reason == "the proof is bound to another request"
    assert verify(requester_key_sha256="00" * 32).reason == "the proof is bound to another request"


@pytest.mark.parametrize(
    "bad",
    [
        {"nonce": "7E" * 31},
        {"nonce": "7e"},
        {"item_id": "no/such"},
        {"requester_public_key": b""},
    ],
)
def test_binding_inputs_refuse_malformed_values(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "vault_id": "vault-1",
        "item_id": "item-9",
        "request_id": "req-77",
        "requester_public_key": b"k" * 1216,
        "nonce": "7e" * 31,
    }
    with pytest.raises(InvalidRequestError):
        prover.binding_inputs(**{**fields, **bad})
