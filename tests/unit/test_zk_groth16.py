"""Groth16 verification on MCL (reliquary.zk.groth16).

Two sources of proofs: the snarkjs artifacts in ``zk/`` (one example proof per circuit; tests skip
with a reason when they are absent) and a synthetic key whose trapdoor the test knows, so it can make
as many valid proofs as it likes (the Groth16 simulator) without a circuit. py_ecc (pure Python, an
independent implementation) is the oracle that the verification equation and the snarkjs encodings are
read right.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reliquary.errors import InvalidRequestError
from reliquary.zk import groth16
from reliquary.zk._mcl import GT, native
from reliquary.zk.groth16 import Proof, VerificationKey, parse_public_signals, verify, verify_batch

# py_ecc re-exports without __all__, so mypy sees none of its names: use it untyped.
bn: Any = importlib.import_module("py_ecc.optimized_bn128")
FQ, FQ2, FQ12 = bn.FQ, bn.FQ2, bn.FQ12
ZK_DIR = Path(__file__).resolve().parents[2] / "zk"
CIRCUITS = ("device_proof", "location_chain", "timestamp_verifier", "pattern_match", "context_proof")
P = bn.field_modulus
R = bn.curve_order

Json = dict[str, Any]


# --- py_ecc: encodings and the oracle -------------------------------------------------------------
def g1_json(pt: Any) -> list[str]:
    x, y = bn.normalize(pt)
    return [str(x.n), str(y.n), "1"]


def g2_json(pt: Any) -> list[list[str]]:
    x, y = bn.normalize(pt)
    return [[str(c) for c in x.coeffs], [str(c) for c in y.coeffs], ["1", "0"]]


def g1_point(p: list[str]) -> Any:
    return (FQ(int(p[0])), FQ(int(p[1])), FQ.one())


def g2_point(p: list[list[str]]) -> Any:
    return (FQ2([int(c) for c in p[0]]), FQ2([int(c) for c in p[1]]), FQ2.one())


def oracle_verify(vkey: Json, proof: Json, public: list[str]) -> bool:
    """snarkjs's equation, e(A, B) = e(alpha, beta) e(vk_x, gamma) e(C, delta), in py_ecc."""
    vk_x = g1_point(vkey["IC"][0])
    for x, ic in zip(public, vkey["IC"][1:], strict=True):
        vk_x = bn.add(vk_x, bn.multiply(g1_point(ic), int(x)))
    f = FQ12.one()
    for q, p in (
        (g2_point(proof["pi_b"]), bn.neg(g1_point(proof["pi_a"]))),
        (g2_point(vkey["vk_beta_2"]), g1_point(vkey["vk_alpha_1"])),
        (g2_point(vkey["vk_gamma_2"]), vk_x),
        (g2_point(vkey["vk_delta_2"]), g1_point(proof["pi_c"])),
    ):
        f = f * bn.pairing(q, p, final_exponentiate=False)
    return bool(bn.final_exponentiate(f) == FQ12.one())


# --- a synthetic key with a known trapdoor --------------------------------------------------------
@dataclass
class Synthetic:
    """alpha, beta, gamma, delta and IC as known scalars.

    With them anyone proves anything (the Groth16 simulator): A = a G1, B = b G2 and
    C = (ab - alpha beta - v gamma) / delta G1, where v G1 = vk_x.
    """

    vkey: Json
    trapdoor: tuple[int, int, int, int, list[int]]
    bs: list[tuple[int, list[list[str]]]]  # a few B = b G2, reused: G2 multiplication is slow in py_ecc

    @classmethod
    def make(cls, rng: random.Random, n_public: int) -> Synthetic:
        alpha, beta, gamma, delta = (rng.randrange(1, R) for _ in range(4))
        ic = [rng.randrange(1, R) for _ in range(n_public + 1)]
        vkey = {
            "protocol": "groth16",
            "curve": "bn128",
            "nPublic": n_public,
            "vk_alpha_1": g1_json(bn.multiply(bn.G1, alpha)),
            "vk_beta_2": g2_json(bn.multiply(bn.G2, beta)),
            "vk_gamma_2": g2_json(bn.multiply(bn.G2, gamma)),
            "vk_delta_2": g2_json(bn.multiply(bn.G2, delta)),
            "IC": [g1_json(bn.multiply(bn.G1, s)) for s in ic],
        }
        bs = [(b, g2_json(bn.multiply(bn.G2, b))) for b in (rng.randrange(1, R) for _ in range(3))]
        return cls(vkey, (alpha, beta, gamma, delta, ic), bs)

    def prove(self, rng: random.Random, public: list[int]) -> Json:
        alpha, beta, gamma, delta, ic = self.trapdoor
        a = rng.randrange(1, R)
        b, b_json = rng.choice(self.bs)
        v = ic[0] + sum(x * s for x, s in zip(public, ic[1:], strict=True))
        c = (a * b - alpha * beta - v * gamma) * pow(delta, -1, R) % R
        return {
            "pi_a": g1_json(bn.multiply(bn.G1, a)),
            "pi_b": b_json,
            "pi_c": g1_json(bn.multiply(bn.G1, c)),
            "protocol": "groth16",
            "curve": "bn128",
        }


@dataclass
class Case:
    """A key and one valid proof for it, as snarkjs JSON."""

    name: str
    vkey: Json
    proof: Json
    public: list[str]

    @property
    def vk(self) -> VerificationKey:
        return VerificationKey.from_snarkjs(self.vkey)


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    return Synthetic.make(random.Random(1), n_public=3)


@pytest.fixture(scope="module")
def batch(synthetic: Synthetic) -> list[tuple[Json, list[str]]]:
    rng = random.Random(2)
    out = []
    for _ in range(64):
        public = [rng.randrange(R) for _ in range(3)]
        out.append((synthetic.prove(rng, public), [str(x) for x in public]))
    return out


def load_json(path: Path) -> Any:
    if not path.exists():
        pytest.skip(f"{path.relative_to(ZK_DIR.parent)} is absent: build the circuits in zk/ first")
    return json.loads(path.read_text())


def example(circuit: str) -> Case:
    vkey = load_json(ZK_DIR / "keys" / f"{circuit}.vkey.json")
    proof = load_json(ZK_DIR / "examples" / "proofs" / f"{circuit}.proof.json")
    public = load_json(ZK_DIR / "examples" / "proofs" / f"{circuit}.public.json")
    return Case(circuit, vkey, proof, public)


@pytest.fixture(params=("synthetic", *CIRCUITS))
def case(request: pytest.FixtureRequest, synthetic: Synthetic, batch: list[tuple[Json, list[str]]]) -> Case:
    if request.param == "synthetic":
        return Case("synthetic", synthetic.vkey, *batch[0])
    return example(request.param)


def check(case: Case, proof: Json | None = None, public: list[str] | None = None) -> bool:
    vk = case.vk
    return verify(
        vk,
        Proof.from_snarkjs(case.proof if proof is None else proof),
        parse_public_signals(case.public if public is None else public, vk),
    )


# --- valid proofs ---------------------------------------------------------------------------------
def test_valid_proof_is_accepted(case: Case) -> None:
    assert check(case)


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_example_agrees_with_py_ecc(circuit: str) -> None:
    case = example(circuit)
    assert oracle_verify(case.vkey, case.proof, case.public)
    tampered = [str((int(case.public[0]) + 1) % R), *case.public[1:]]
    assert not check(case, public=tampered)


def test_synthetic_agrees_with_py_ecc(synthetic: Synthetic, batch: list[tuple[Json, list[str]]]) -> None:
    proof, public = batch[1]
    assert oracle_verify(synthetic.vkey, proof, public)
    assert check(Case("synthetic", synthetic.vkey, proof, public))


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_signal_names_match_the_key(circuit: str) -> None:
    names = load_json(ZK_DIR / "keys" / f"{circuit}.signals.json")
    vkey = load_json(ZK_DIR / "keys" / f"{circuit}.vkey.json")
    assert len(names) == vkey["nPublic"] == VerificationKey.from_snarkjs(vkey).n_public


def test_int_signals_are_accepted_like_strings(case: Case) -> None:
    vk = case.vk
    assert parse_public_signals([int(x) for x in case.public], vk) == parse_public_signals(case.public, vk)


# --- tampering: a well-formed proof that is not valid is False ------------------------------------
def test_each_public_signal_changed_is_rejected(case: Case) -> None:
    for i in range(len(case.public)):
        public = list(case.public)
        public[i] = str((int(public[i]) + 1) % R)
        assert not check(case, public=public), i


@pytest.mark.parametrize("field", ["pi_a", "pi_b", "pi_c"])
def test_each_point_moved_to_another_valid_point_is_rejected(case: Case, field: str) -> None:
    proof = copy.deepcopy(case.proof)
    if field == "pi_b":
        proof[field] = g2_json(bn.add(g2_point(proof[field]), bn.G2))
    else:
        proof[field] = g1_json(bn.add(g1_point(proof[field]), bn.G1))
    assert not check(case, proof=proof)


def test_swapped_points_are_rejected(case: Case) -> None:
    proof = copy.deepcopy(case.proof)
    proof["pi_a"], proof["pi_c"] = proof["pi_c"], proof["pi_a"]
    assert not check(case, proof=proof)


def test_swapped_g1_coordinates_are_not_on_the_curve(case: Case) -> None:
    proof = copy.deepcopy(case.proof)
    proof["pi_a"][0], proof["pi_a"][1] = proof["pi_a"][1], proof["pi_a"][0]
    with pytest.raises(InvalidRequestError, match="pi_a: not on the BN254 curve"):
        Proof.from_snarkjs(proof)


def test_fp2_components_are_read_c0_then_c1(case: Case) -> None:
    """snarkjs writes Fp2 as [c0, c1]; read the other way round, B is not even on the twist."""
    proof = copy.deepcopy(case.proof)
    proof["pi_b"][0].reverse()
    proof["pi_b"][1].reverse()
    with pytest.raises(InvalidRequestError, match="pi_b: not on the BN254 twist curve"):
        Proof.from_snarkjs(proof)
    vkey = copy.deepcopy(case.vkey)
    for coordinate in vkey["vk_delta_2"][:2]:
        coordinate.reverse()
    with pytest.raises(InvalidRequestError, match="vk_delta_2"):
        VerificationKey.from_snarkjs(vkey)


def test_proof_under_another_key_is_rejected(
    synthetic: Synthetic, batch: list[tuple[Json, list[str]]]
) -> None:
    other = Synthetic.make(random.Random(3), n_public=3)
    proof, public = batch[0]
    assert not check(Case("other", other.vkey, proof, public))


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_example_under_every_other_circuit_key_is_rejected(circuit: str) -> None:
    case = example(circuit)
    for other in CIRCUITS:
        if other == circuit:
            continue
        vk = VerificationKey.from_snarkjs(example(other).vkey)
        proof = Proof.from_snarkjs(case.proof)
        if vk.n_public != len(case.public):
            with pytest.raises(InvalidRequestError, match="publicSignals"):
                parse_public_signals(case.public, vk)
        else:
            assert not verify(vk, proof, parse_public_signals(case.public, vk)), other


# --- malformed input: typed errors naming the field -----------------------------------------------
def random_twist_point(rng: random.Random) -> tuple[tuple[int, int], tuple[int, int]]:
    """A point on y^2 = x^3 + b2 over Fp2 (i^2 = -1) for a random x: almost never in the r-torsion."""

    def sqrt_fp(v: int) -> int | None:
        s = pow(v, (P + 1) // 4, P)  # p = 3 mod 4
        return s if s * s % P == v % P else None

    while True:
        x = FQ2([rng.randrange(P), rng.randrange(P)])
        a0, a1 = (x**3 + bn.b2).coeffs
        norm = sqrt_fp(a0 * a0 + a1 * a1)
        if norm is None:
            continue
        half = pow(2, -1, P)
        for t in ((a0 + norm) * half, (a0 - norm) * half):
            y0 = sqrt_fp(t)
            if y0:
                y1 = a1 * pow(2 * y0, -1, P) % P
                x0, x1 = (int(c) for c in x.coeffs)
                return (x0, x1), (y0, y1)


def test_g2_point_outside_the_subgroup_is_rejected(case: Case) -> None:
    (x0, x1), (y0, y1) = random_twist_point(random.Random(4))
    point = (FQ2([x0, x1]), FQ2([y0, y1]), FQ2.one())
    assert bn.is_on_curve(point, bn.b2)
    assert not bn.is_inf(bn.multiply(point, R))  # not of order r, by py_ecc
    as_json = [[str(x0), str(x1)], [str(y0), str(y1)], ["1", "0"]]
    proof = copy.deepcopy(case.proof)
    proof["pi_b"] = as_json
    with pytest.raises(InvalidRequestError, match="pi_b: not in the G2 subgroup"):
        Proof.from_snarkjs(proof)
    vkey = copy.deepcopy(case.vkey)
    vkey["vk_gamma_2"] = as_json
    with pytest.raises(InvalidRequestError, match="vk_gamma_2: not in the G2 subgroup"):
        VerificationKey.from_snarkjs(vkey)


MALFORMED_PROOFS: list[tuple[str, Callable[[Json], None], str]] = [
    ("off curve", lambda p: p["pi_a"].__setitem__(1, str((int(p["pi_a"][1]) + 1) % P)), "pi_a: not on"),
    ("c off curve", lambda p: p["pi_c"].__setitem__(0, "1"), "pi_c: not on"),
    ("b off curve", lambda p: p["pi_b"][1].__setitem__(0, "1"), "pi_b: not on"),
    ("x = p", lambda p: p["pi_a"].__setitem__(0, str(P)), r"pi_a\[0\]: coordinate is not below"),
    ("x + p", lambda p: p["pi_c"].__setitem__(0, str(int(p["pi_c"][0]) + P)), r"pi_c\[0\]: coordinate"),
    ("fp2 >= p", lambda p: p["pi_b"][0].__setitem__(1, str(P + 1)), r"pi_b\[0\]: coordinate"),
    ("negative", lambda p: p["pi_a"].__setitem__(0, "-1"), r"pi_a\[0\]: not a canonical"),
    ("hex", lambda p: p["pi_a"].__setitem__(0, "0x10"), r"pi_a\[0\]: not a canonical"),
    ("leading zero", lambda p: p["pi_a"].__setitem__(0, "0" + p["pi_a"][0]), r"pi_a\[0\]: not a canonical"),
    ("float", lambda p: p["pi_a"].__setitem__(0, 1.0), r"pi_a\[0\]: expected a decimal string"),
    ("bool z", lambda p: p["pi_a"].__setitem__(2, True), r"pi_a\[2\]: expected a decimal string"),
    ("projective", lambda p: p["pi_a"].__setitem__(2, "2"), "pi_a: not in affine form"),
    ("a identity", lambda p: p.__setitem__("pi_a", ["0", "1", "0"]), "pi_a: the point at infinity"),
    ("c identity", lambda p: p.__setitem__("pi_c", ["0", "1", "0"]), "pi_c: the point at infinity"),
    ("b identity", lambda p: p.__setitem__("pi_b", [["0", "0"], ["1", "0"], ["0", "0"]]), "pi_b: the point"),
    ("short", lambda p: p.__setitem__("pi_a", p["pi_a"][:2]), "pi_a: expected a list of 3"),
    ("string", lambda p: p.__setitem__("pi_a", "123"), "pi_a: expected a list of 3"),
    ("b flat", lambda p: p["pi_b"].__setitem__(0, p["pi_b"][0][0]), r"pi_b\[0\]: expected a list of 2"),
    ("missing", lambda p: p.pop("pi_c"), "pi_c: missing"),
    ("protocol", lambda p: p.__setitem__("protocol", "plonk"), "protocol: the proof must have"),
    ("curve", lambda p: p.__setitem__("curve", "bls12381"), "curve: the proof must have"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [m[1:] for m in MALFORMED_PROOFS], ids=[m[0] for m in MALFORMED_PROOFS]
)
def test_malformed_proof_is_a_typed_error(case: Case, mutate: Callable[[Json], None], message: str) -> None:
    proof = copy.deepcopy(case.proof)
    mutate(proof)
    with pytest.raises(InvalidRequestError, match=message) as caught:
        Proof.from_snarkjs(proof)
    assert caught.value.details["field"].split("[")[0] in message


def test_proof_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="proof must be a JSON object"):
        Proof.from_snarkjs([])  # type: ignore[arg-type]


MALFORMED_KEYS: list[tuple[str, Callable[[Json], None], str]] = [
    ("protocol", lambda k: k.__setitem__("protocol", "plonk"), "protocol: the verification key must have"),
    ("no protocol", lambda k: k.pop("protocol"), "protocol: missing"),
    ("curve", lambda k: k.__setitem__("curve", "bls12381"), "curve: the verification key must have"),
    (
        "nPublic too big",
        lambda k: k.__setitem__("nPublic", k["nPublic"] + 1),
        "IC: expected a list of nPublic",
    ),
    ("nPublic string", lambda k: k.__setitem__("nPublic", str(k["nPublic"])), "nPublic: expected an integer"),
    ("nPublic bool", lambda k: k.__setitem__("nPublic", True), "nPublic: expected an integer"),
    ("IC short", lambda k: k["IC"].pop(), "IC: expected a list"),
    ("IC off curve", lambda k: k["IC"][1].__setitem__(0, "5"), r"IC\[1\]: not on"),
    ("alpha off curve", lambda k: k["vk_alpha_1"].__setitem__(0, "5"), "vk_alpha_1: not on"),
    ("alpha identity", lambda k: k.__setitem__("vk_alpha_1", ["0", "1", "0"]), "vk_alpha_1: the point at"),
    ("beta off curve", lambda k: k["vk_beta_2"][0].__setitem__(0, "5"), "vk_beta_2: not on"),
    (
        "delta identity",
        lambda k: k.__setitem__("vk_delta_2", [["0", "0"], ["1", "0"], ["0", "0"]]),
        "vk_delta_2",
    ),
    ("gamma >= p", lambda k: k["vk_gamma_2"][1].__setitem__(1, str(P)), r"vk_gamma_2\[1\]: coordinate"),
    ("missing delta", lambda k: k.pop("vk_delta_2"), "vk_delta_2: missing"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [m[1:] for m in MALFORMED_KEYS], ids=[m[0] for m in MALFORMED_KEYS]
)
def test_malformed_key_is_a_typed_error(case: Case, mutate: Callable[[Json], None], message: str) -> None:
    vkey = copy.deepcopy(case.vkey)
    mutate(vkey)
    with pytest.raises(InvalidRequestError, match=message):
        VerificationKey.from_snarkjs(vkey)


def test_identity_in_ic_is_allowed(synthetic: Synthetic) -> None:
    vkey = copy.deepcopy(synthetic.vkey)
    vkey["IC"][2] = ["0", "1", "0"]
    assert VerificationKey.from_snarkjs(vkey).n_public == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1", "2"], "expected 3 values, got 2"),
        (["1", "2", "3", "4"], "expected 3 values, got 4"),
        (["1", "2", str(R)], r"publicSignals\[2\]: not below"),
        (["1", "2", R + 5], r"publicSignals\[2\]: not below"),
        (["1", "-2", "3"], r"publicSignals\[1\]: not a canonical"),
        (["1", -2, "3"], r"publicSignals\[1\]: negative"),
        (["1", "2", " 3"], r"publicSignals\[2\]: not a canonical"),
        (["1", "2", "3.0"], r"publicSignals\[2\]: not a canonical"),
        (["1", "2", "1" * 200], r"publicSignals\[2\]: not a canonical"),
        ([True, "2", "3"], r"publicSignals\[0\]: expected a decimal string or an integer, got bool"),
        (["1", None, "3"], r"publicSignals\[1\]: expected"),
        ("123", "publicSignals: expected a list"),
    ],
)
def test_malformed_public_signals_are_typed_errors(synthetic: Synthetic, values: Any, message: str) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    with pytest.raises(InvalidRequestError, match=message):
        parse_public_signals(values, vk)


def test_verify_takes_parsed_signals_only(case: Case) -> None:
    vk, proof = case.vk, Proof.from_snarkjs(case.proof)
    with pytest.raises(InvalidRequestError, match="expected integers"):
        verify(vk, proof, case.public)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="publicSignals"):
        verify(vk, proof, [*parse_public_signals(case.public, vk), 1])
    with pytest.raises(TypeError):
        verify(case.vkey, proof, [])  # type: ignore[arg-type]


# --- names: digest and fingerprint ----------------------------------------------------------------
def test_digest_is_sha256_of_the_eip197_encoding(case: Case) -> None:
    p = case.proof
    words = [
        *p["pi_a"][:2],
        p["pi_b"][0][1],
        p["pi_b"][0][0],
        p["pi_b"][1][1],
        p["pi_b"][1][0],
        *p["pi_c"][:2],
    ]
    encoding = b"".join(int(w).to_bytes(32, "big") for w in words)
    proof = Proof.from_snarkjs(p)
    assert proof.encoding() == encoding
    assert proof.digest() == hashlib.sha256(encoding).hexdigest()
    assert proof == Proof.from_snarkjs(copy.deepcopy(p))


def test_fingerprint_names_the_key(synthetic: Synthetic) -> None:
    a = VerificationKey.from_snarkjs(synthetic.vkey)
    b = VerificationKey.from_snarkjs(json.loads(json.dumps(synthetic.vkey)))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    other = copy.deepcopy(synthetic.vkey)
    other["IC"][1], other["IC"][2] = other["IC"][2], other["IC"][1]
    assert VerificationKey.from_snarkjs(other).fingerprint() != a.fingerprint()
    # snarkjs's precomputed e(alpha, beta) is not part of the key's identity (it is recomputed).
    extra = copy.deepcopy(synthetic.vkey) | {"vk_alphabeta_12": []}
    assert VerificationKey.from_snarkjs(extra).fingerprint() == a.fingerprint()


# --- batches --------------------------------------------------------------------------------------
def parsed(vk: VerificationKey, items: list[tuple[Json, list[str]]]) -> list[tuple[Proof, tuple[int, ...]]]:
    return [(Proof.from_snarkjs(p), parse_public_signals(x, vk)) for p, x in items]


def test_batch_of_good_proofs(synthetic: Synthetic, batch: list[tuple[Json, list[str]]]) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    assert verify_batch(vk, parsed(vk, batch)) == [True] * 64
    assert verify_batch(vk, parsed(vk, batch[:1]), rng=random.Random(5)) == [True]


@pytest.mark.parametrize("bad", [[0], [17], [63], [3, 4, 40], list(range(0, 64, 2))])
def test_batch_finds_exactly_the_bad_proofs(
    synthetic: Synthetic, batch: list[tuple[Json, list[str]]], bad: list[int]
) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    items = parsed(vk, batch)
    for i in bad:
        proof, xs = items[i]
        items[i] = (proof, ((xs[0] + 1) % R, *xs[1:]))
    assert verify_batch(vk, items, rng=random.Random(6)) == [i not in bad for i in range(64)]


def test_batch_with_swapped_c_between_items(
    synthetic: Synthetic, batch: list[tuple[Json, list[str]]]
) -> None:
    """Two bad proofs whose errors would cancel in an unweighted sum are still both found."""
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    (p0, x0), (p1, x1) = batch[0], batch[1]
    q0, q1 = copy.deepcopy(p0), copy.deepcopy(p1)
    q0["pi_c"], q1["pi_c"] = p1["pi_c"], p0["pi_c"]
    assert verify_batch(vk, parsed(vk, [(q0, x0), (q1, x1), *batch[2:8]])) == [False, False] + [True] * 6


def tampered(synthetic: Synthetic, proof: Json, part: str) -> Json:
    """``proof`` with one part changed to another well-formed value (on the curve, in the subgroup)."""
    out = copy.deepcopy(proof)
    if part == "A":
        out["pi_a"] = g1_json(bn.neg(g1_point(proof["pi_a"])))
    elif part == "B":
        out["pi_b"] = next(b for _, b in synthetic.bs if b != proof["pi_b"])
    else:
        out["pi_c"] = g1_json(bn.double(g1_point(proof["pi_c"])))
    return out


@pytest.mark.parametrize("part", ["A", "B", "C", "signal"])
def test_one_tampered_proof_among_64_is_refused_and_named(
    synthetic: Synthetic, batch: list[tuple[Json, list[str]]], part: str
) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    proofs = [p for p, _ in batch]
    publics = [list(x) for _, x in batch]
    if part == "signal":
        publics[41][2] = str((int(publics[41][2]) + 1) % R)
    else:
        proofs[41] = tampered(synthetic, proofs[41], part)
    items = parsed(vk, list(zip(proofs, publics, strict=True)))
    singles = [verify(vk, p, x) for p, x in items]
    assert singles == [i != 41 for i in range(64)]
    assert verify_batch(vk, items) == singles


def test_batch_agrees_with_single_verification(
    synthetic: Synthetic, batch: list[tuple[Json, list[str]]]
) -> None:
    """Differential: random batches of good proofs, tampered proofs and proofs given another's signals."""
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    good = parsed(vk, batch)
    rng = random.Random(11)
    refused = 0
    for size in (3, 5, 17, 64, 64):
        items = rng.sample(good, size)
        for i in rng.sample(range(size), rng.randrange(1, 4)):
            xs = items[i][1]
            if rng.random() < 0.5:
                items[i] = (rng.choice(good)[0], xs)  # another proof: valid, but not for these signals
            else:
                bad = tampered(synthetic, batch[good.index(items[i])][0], rng.choice("ABC"))
                items[i] = (Proof.from_snarkjs(bad), xs)
        singles = [verify(vk, p, x) for p, x in items]
        assert verify_batch(vk, items) == singles
        refused += singles.count(False)
    assert refused >= 5


def test_batch_of_a_key_without_public_signals() -> None:
    synthetic = Synthetic.make(random.Random(12), n_public=0)
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    rng = random.Random(13)
    items = [(Proof.from_snarkjs(synthetic.prove(rng, [])), ()) for _ in range(4)]
    assert verify_batch(vk, items) == [True] * 4
    items[2] = (Proof.from_snarkjs(tampered(synthetic, synthetic.prove(rng, []), "C")), ())
    assert verify_batch(vk, items) == [True, True, False, True]


def test_batch_coefficients_are_fresh_64_bit_scalars() -> None:
    """The small-exponents test draws 64 secret bits per proof per check, as integers and as MCL's Fr."""
    rng = random.Random(14)
    values, scalars = groth16._coefficients(64, rng)
    assert len(values) == len(scalars) == 64
    assert all(0 <= v < 2**64 for v in values)
    assert max(values).bit_length() > 60  # uniform over 64 bits, not confined to a smaller range
    mcl = native()
    assert [bytes(s) for s in scalars] == [bytes(mcl.fr(v)) for v in values]
    again, _ = groth16._coefficients(64, rng)
    assert set(again).isdisjoint(values)


def test_table_power_of_e_alpha_beta_is_mcl_exponentiation(synthetic: Synthetic) -> None:
    """The batch's fixed-base e(alpha, beta)^s equals MCL's exponentiation, inside the table and past it."""
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    mcl = native()
    rng = random.Random(15)
    for exponent in (0, 1, 15, 16, 255, 2**64 + 7, rng.getrandbits(70), 2**80 - 1, 2**80, R + 5, 2**300):
        ours = GT()
        ours.d[0] = mcl.fp_one  # 1 in GT
        groth16._times_e_ab_power(vk, ours, exponent)
        theirs = GT()
        mcl.lib.mclBnGT_pow(theirs, vk._e_ab, mcl.fr(exponent % R))
        assert bytes(ours) == bytes(theirs), exponent


def test_batch_draws_from_the_system_csprng_by_default() -> None:
    assert isinstance(groth16._SYSTEM_RANDOM, random.SystemRandom)


def test_empty_batch(synthetic: Synthetic) -> None:
    assert verify_batch(VerificationKey.from_snarkjs(synthetic.vkey), []) == []


def test_batch_raises_for_malformed_items(synthetic: Synthetic, batch: list[tuple[Json, list[str]]]) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    items = parsed(vk, batch[:4])
    with pytest.raises(InvalidRequestError, match="expected 3 values"):
        verify_batch(vk, [*items, (items[0][0], (1, 2))])


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_batch_of_real_examples(circuit: str) -> None:
    case = example(circuit)
    vk = case.vk
    good = (Proof.from_snarkjs(case.proof), parse_public_signals(case.public, vk))
    bad = (good[0], ((good[1][0] + 1) % R, *good[1][1:]))
    assert verify_batch(vk, [good, bad, good, good]) == [True, False, True, True]


# --- cold start -----------------------------------------------------------------------------------
def test_import_loads_neither_mcl_nor_py_ecc() -> None:
    code = "import sys, reliquary.zk.groth16; print(sorted({'mclbn256', 'py_ecc'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(  # noqa: S603 - our interpreter, our code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_public_api(synthetic: Synthetic) -> None:
    vk = VerificationKey.from_snarkjs(synthetic.vkey)
    assert "n_public=3" in repr(vk)
    assert groth16.SCALAR_FIELD == R
    assert groth16.FIELD_MODULUS == P
