"""The prover helper (reliquary.zk.prover): snarkjs in a Node subprocess, every proof verified here.

A fake ``prove.mjs`` in a temporary zk directory covers the plumbing (errors, timeouts, output checks)
with a toy key whose valid proof is known in closed form; the real circuits in ``zk/`` make fresh
proofs when they are built (tests skip with a reason otherwise).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reliquary.errors import ConfigurationError, InvalidRequestError, TransientError
from reliquary.zk import groth16, prover

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
