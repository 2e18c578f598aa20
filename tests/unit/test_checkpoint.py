"""Signed notes and checkpoints: Go sumdb/note known answers, the JSON vectors, tampering, policies."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from reliquary.audit import note as note_module
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from reliquary.audit.note import (
    MAX_SIGNATURES,
    MAX_TEXT_BYTES,
    SIGNATURE_TYPES,
    NoteSigner,
    NoteVerifier,
    Policy,
    VerifiedNote,
    open_note,
    sign_note,
)
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import CheckpointError, InvalidRequestError, UnsupportedAlgorithmError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed_note_vectors.json").read_text()
)

# golang.org/x/mod/sumdb/note note_test.go: a fixed key, its verifier key and signed notes.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "\u2014 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# c2sp.org/signed-note, "Verifier keys": the example vkey and the note it verifies.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ORIGIN = "example.com/log"
ROOT = hashlib.sha256(b"root").digest()


def _go_signer() -> NoteSigner:
    material = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert material[0] == 1  # Go's algorithm byte for Ed25519, then the 32-byte seed
    seed = material[1:]
    public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return NoteSigner("PeterNeumann", SigningKey(SignatureAlgorithm.ED25519, seed, public))


@pytest.fixture(scope="module")
def log_signers() -> dict[SignatureAlgorithm, NoteSigner]:
    """The log's three keys, all named after the log's origin (as tlog-checkpoint recommends)."""
    return {algorithm: NoteSigner(ORIGIN, SigningKey.generate(algorithm)) for algorithm in SignatureAlgorithm}


@pytest.fixture(scope="module")
def pq_note(log_signers: dict[SignatureAlgorithm, NoteSigner]) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log_signers.values())


def _verifiers(signers: dict[SignatureAlgorithm, NoteSigner]) -> list[NoteVerifier]:
    return [s.verifier for s in signers.values()]


def _line(note: bytes, algorithm_index: int) -> bytes:
    """The signature line (with its newline) of the n-th signer of a checkpoint note (3 text lines)."""
    return note.split(b"\n")[4 + algorithm_index] + b"\n"


# --- Go sumdb/note known answers -------------------------------------------------------------------
def test_we_sign_exactly_as_go_sumdb_note() -> None:
    signer = _go_signer()
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier.to_vkey() == GO_PETER
    assert sign_note(GO_TEXT, [signer]) == (GO_TEXT + "\n" + GO_PETER_SIG).encode()


def test_we_open_go_sumdb_notes() -> None:
    peter, enoch = NoteVerifier.from_vkey(GO_PETER), NoteVerifier.from_vkey(GO_ENOCH)
    signed = (GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG).encode()
    assert open_note(signed, [peter]) == VerifiedNote(GO_TEXT, (peter,))
    assert open_note(signed, [enoch, peter]).signed_by == (peter, enoch)
    assert open_note(signed, [peter, enoch], required=[enoch, peter]).text == GO_TEXT
    with pytest.raises(CheckpointError):
        open_note(signed, [])
    with pytest.raises(CheckpointError):  # Go's "invalid signature" case: ABCD spliced into Peter's line
        open_note((GO_TEXT + "\n" + GO_PETER_SIG[:60] + "ABCD" + GO_PETER_SIG[60:]).encode(), [peter])


def test_the_c2sp_vkey_example() -> None:
    verifier = NoteVerifier.from_vkey(C2SP_VKEY)
    assert verifier.to_vkey() == C2SP_VKEY
    assert open_note(C2SP_NOTE.encode(), [verifier]).text == "This is an example message.\n"


def test_go_vkey_manglings_are_refused() -> None:
    """Go's TestNewVerifier: every proper substring and every single-byte increment of the vkey fails."""
    assert NoteVerifier.from_vkey(GO_PETER).key_id.hex() == "c74f20a3"
    data = GO_PETER.encode()
    candidates = {data[i:j] for i in range(len(data) + 1) for j in range(i + 1, len(data) + 1)} - {data}
    candidates |= {data[:i] + bytes([data[i] + 1]) + data[i + 1 :] for i in range(len(data))}
    for candidate in candidates:
        with pytest.raises(InvalidRequestError):
            NoteVerifier.from_vkey(candidate.decode())
    # A wrong-length key and an unknown algorithm, each with a key hash adjusted to match.
    with pytest.raises(InvalidRequestError):
        NoteVerifier.from_vkey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(UnsupportedAlgorithmError):
        NoteVerifier.from_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


# --- the language-neutral vectors ------------------------------------------------------------------
def _open_vector(case: dict[str, Any]) -> object:
    verifiers = [NoteVerifier.from_vkey(k) for k in case["vkeys"]]
    required = [NoteVerifier.from_vkey(k) for k in case.get("required", [])] or None
    signed = case["note"].encode()
    if "origin" in case:
        return open_checkpoint(signed, verifiers, origin=case["origin"], required=required)
    return open_note(signed, verifiers, required=required)


@pytest.mark.parametrize("case", VECTORS["vectors"], ids=[v["desc"] for v in VECTORS["vectors"]])
def test_vectors(case: dict[str, Any]) -> None:
    if case["want_error"]:
        with pytest.raises(CheckpointError):
            _open_vector(case)
        return
    verifiers = [NoteVerifier.from_vkey(k) for k in case["vkeys"]]
    required = [NoteVerifier.from_vkey(k) for k in case.get("required", [])] or None
    signed = case["note"].encode()
    opened = open_note(signed, verifiers, required=required)
    if "want_text" in case:
        assert opened.text == case["want_text"]
    if "want_signed_by" in case:
        assert [v.to_vkey() for v in opened.signed_by] == case["want_signed_by"]
    if "want_checkpoint" in case:
        checkpoint = open_checkpoint(signed, verifiers, origin=case["origin"], required=required)
        want = case["want_checkpoint"]
        assert checkpoint == Checkpoint(
            want["origin"], want["size"], base64.b64decode(want["root_hash"]), tuple(want["extensions"])
        )


def test_vector_signature_types_match_the_code() -> None:
    declared = VECTORS["signature_types"]
    assert {a.value: t.hex() for a, t in SIGNATURE_TYPES.items()} == declared


# --- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", list(SignatureAlgorithm))
def test_round_trip_per_algorithm(
    algorithm: SignatureAlgorithm, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    signer = log_signers[algorithm]
    text = "line one\n\nline three after a blank line \u2014 with UTF-8 \u00e8\n"
    signed = sign_note(text, [signer])
    assert open_note(signed, [signer.verifier]) == VerifiedNote(text, (signer.verifier,))
    vkey = signer.verifier.to_vkey()
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    assert hash(NoteVerifier.from_vkey(vkey)) == hash(signer.verifier)


@pytest.mark.parametrize("algorithm", list(SignatureAlgorithm))
def test_key_id_is_the_spec_formula(
    algorithm: SignatureAlgorithm, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    verifier = log_signers[algorithm].verifier
    signature_type = SIGNATURE_TYPES[algorithm]
    public = verifier.key.public_key
    expected = hashlib.sha256(ORIGIN.encode() + b"\n" + signature_type + public).digest()[:4]
    assert verifier.key_id == expected
    name, key_hash, material = verifier.to_vkey().split("+", 2)
    assert (name, key_hash, base64.b64decode(material)) == (ORIGIN, expected.hex(), signature_type + public)


def test_signature_types() -> None:
    assert SIGNATURE_TYPES[SignatureAlgorithm.ED25519] == b"\x01"
    for algorithm in (SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.FALCON_512):
        signature_type = SIGNATURE_TYPES[algorithm]
        # 0xff: "reserved for signature types without an identifier byte assigned by this specification",
        # followed by a longer identifier; a newline ends it, so no identifier is a prefix of another.
        assert signature_type == b"\xffreliquary/signed-note/v1/" + algorithm.value.encode() + b"\n"
    types = list(SIGNATURE_TYPES.values())
    assert not any(a != b and b.startswith(a) for a in types for b in types)


def test_unknown_private_use_identifier_is_unsupported(
    log_signers: dict[SignatureAlgorithm, NoteSigner],
) -> None:
    public = log_signers[SignatureAlgorithm.ML_DSA_65].verifier.key.public_key
    material = b"\xffsomeone-else/ML-DSA-65\n" + public
    key_id = hashlib.sha256(b"x\n" + material).digest()[:4]
    with pytest.raises(UnsupportedAlgorithmError):
        NoteVerifier.from_vkey(f"x+{key_id.hex()}+{base64.b64encode(material).decode()}")


def test_checkpoint_text_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 20852163, ROOT, ("ext one", "\u00e8xt two"))
    text = checkpoint.to_text()
    assert text == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\next one\n\u00e8xt two\n"
    assert Checkpoint.parse(text) == checkpoint
    from_list = Checkpoint(ORIGIN, 0, ROOT, ["a"])  # type: ignore[arg-type]
    assert from_list.extensions == ("a",)
    # The C2SP tlog-checkpoint example.
    example = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert Checkpoint.parse(example).to_text() == example


def test_signed_checkpoint_round_trip(
    pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    verifiers = _verifiers(log_signers)
    checkpoint = open_checkpoint(pq_note, verifiers, origin=ORIGIN, required=verifiers)
    assert checkpoint == Checkpoint(ORIGIN, 42, ROOT)
    assert open_note(pq_note, verifiers).signed_by == tuple(verifiers)


# --- tampering -------------------------------------------------------------------------------------
def _assert_every_flip_rejected(signed: bytes, verifiers: list[NoteVerifier], required: Any) -> None:
    assert open_checkpoint(signed, verifiers, origin=ORIGIN, required=required)
    for position in range(len(signed)):
        for mask in (0x01, 0x80):
            tampered = bytearray(signed)
            tampered[position] ^= mask
            with pytest.raises(CheckpointError):
                open_checkpoint(bytes(tampered), verifiers, origin=ORIGIN, required=required)


def test_every_single_byte_flip_is_rejected_ed25519(
    log_signers: dict[SignatureAlgorithm, NoteSigner],
) -> None:
    signer = log_signers[SignatureAlgorithm.ED25519]
    signed = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT, ("extension",)), [signer])
    _assert_every_flip_rejected(signed, [signer.verifier], None)
    for end in range(len(signed)):  # and every truncation
        with pytest.raises(CheckpointError):
            open_checkpoint(signed[:end], [signer.verifier], origin=ORIGIN)


def test_every_single_byte_flip_is_rejected_all_three_required(
    pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    verifiers = _verifiers(log_signers)
    _assert_every_flip_rejected(pq_note, verifiers, Policy.all_of(*verifiers))


def test_known_key_with_a_bad_signature_is_an_error_even_if_others_verify(
    pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    verifiers = _verifiers(log_signers)
    for index in range(3):
        line = _line(pq_note, index)
        name, encoded = line[:-1].decode().split(" ")[1:]
        raw = bytearray(base64.b64decode(encoded))
        raw[-1] ^= 0x01
        bad = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n".encode()
        with pytest.raises(CheckpointError, match="is bad"):
            open_note(pq_note.replace(line, bad), verifiers)


def test_duplicate_signatures_from_one_key_are_an_error(
    pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    verifiers = _verifiers(log_signers)
    for index in range(3):
        with pytest.raises(CheckpointError, match="two signatures"):
            open_note(pq_note + _line(pq_note, index), verifiers)
    # A second, different but valid signature from the randomized ML-DSA key is refused too.
    ml_dsa = log_signers[SignatureAlgorithm.ML_DSA_65]
    again = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), [ml_dsa])
    assert _line(again, 0) != _line(pq_note, 1)
    with pytest.raises(CheckpointError, match="two signatures"):
        open_note(pq_note + _line(again, 0), verifiers)


@pytest.mark.parametrize(
    ("desc", "signed"),
    [
        ("missing blank line", (GO_TEXT + GO_PETER_SIG).encode()),
        ("missing trailing newline", (GO_TEXT + "\n" + GO_PETER_SIG[:-1]).encode()),
        ("no signature", (GO_TEXT + "\n").encode()),
        ("invalid UTF-8", b"\xff" + (GO_TEXT + "\n" + GO_PETER_SIG).encode()),
        ("a UTF-8 surrogate", b"\xed\xa0\x80" + (GO_TEXT + "\n" + GO_PETER_SIG).encode()),
        ("overlong UTF-8", b"\xc0\xaf" + (GO_TEXT + "\n" + GO_PETER_SIG).encode()),
        ("NUL", (GO_TEXT + "\n" + GO_PETER_SIG).encode().replace(b"problem,", b"problem\x00")),
        ("carriage return", (GO_TEXT + "\n" + GO_PETER_SIG).replace("\n", "\r\n").encode()),
        (
            "no-break space in the key name",
            (GO_TEXT + "\n" + GO_PETER_SIG.replace("Peter", "Pe\u00a0ter")).encode(),
        ),
        (
            "ideographic space in the name",
            (GO_TEXT + "\n" + GO_PETER_SIG.replace("Peter", "Pe\u3000ter")).encode(),
        ),
        (
            "two spaces after the name",
            (GO_TEXT + "\n" + GO_PETER_SIG.replace("Neumann ", "Neumann  ")).encode(),
        ),
        ("trailing space", (GO_TEXT + "\n" + GO_PETER_SIG[:-1] + " \n").encode()),
    ],
)
def test_malformed_notes(desc: str, signed: bytes) -> None:
    with pytest.raises(CheckpointError):
        open_note(signed, [NoteVerifier.from_vkey(GO_PETER)])


@pytest.mark.parametrize(
    "text", [b"a\x01b\n", b"a\rb\n", b"tab\there\n", b"\x7fok but \xff\n", b"\xed\xa0\x80\n", b"no newline"]
)
def test_validly_signed_bad_texts_are_refused(text: bytes) -> None:
    """Texts that sign_note refuses to sign, signed by hand: open_note refuses them despite the signature."""
    signer = _go_signer()
    signature = signer._key.sign(text)
    line = f"\u2014 PeterNeumann {base64.b64encode(signer.key_id + signature).decode()}\n".encode()
    with pytest.raises(CheckpointError, match="malformed"):
        open_note(text + b"\n" + line, [signer.verifier])
    good = b"fine \x7f\n"  # DEL is not a control character below U+0020
    encoded = base64.b64encode(signer.key_id + signer._key.sign(good)).decode()
    line = f"\u2014 PeterNeumann {encoded}\n".encode()
    assert open_note(good + b"\n" + line, [signer.verifier]).text == good.decode()


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n007\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n00\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1e3\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0661\n{base64.b64encode(ROOT).decode()}\n",  # ARABIC-INDIC DIGIT ONE
        f"{ORIGIN}\n1_000\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n 1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n{1 << 64}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT + ROOT).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()[:-2]}B=\n",  # non-zero padding bits
        f"{ORIGIN}\n1\n{ROOT.hex()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}",
        f"{ORIGIN}\n1\n",
        f"\n1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\n\n",
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\nok\n\nafter a blank\n",
        f"{ORIGIN}\t\n1\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_wrong_origin(pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]) -> None:
    verifiers = _verifiers(log_signers)
    for origin in ("example.com/other", ORIGIN + "/", "Example.com/log"):
        with pytest.raises(CheckpointError, match="origin"):
            open_checkpoint(pq_note, verifiers, origin=origin)


def test_checkpoint_fields_are_validated() -> None:
    bad_fields: list[dict[str, Any]] = [
        {"origin": "", "size": 1, "root_hash": ROOT},
        {"origin": "a\nb", "size": 1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": -1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": 1 << 64, "root_hash": ROOT},
        {"origin": ORIGIN, "size": True, "root_hash": ROOT},
        {"origin": ORIGIN, "size": 1.0, "root_hash": ROOT},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT[:31]},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT.hex()},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ("",)},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ("a\nb",)},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": "ext"},
    ]
    for bad in bad_fields:
        with pytest.raises(InvalidRequestError):
            Checkpoint(**bad)
    with pytest.raises(InvalidRequestError):
        open_checkpoint(b"", [], origin="")


# --- unknown keys, policies ------------------------------------------------------------------------
def test_unknown_keys_are_ignored(pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]) -> None:
    ed = log_signers[SignatureAlgorithm.ED25519].verifier
    assert open_checkpoint(pq_note, [ed], origin=ORIGIN) == Checkpoint(ORIGIN, 42, ROOT)
    # A witness line and lines from keys sharing the name or the key ID (not both) are ignored.
    witness = NoteSigner("witness.example/w1", SigningKey.generate(SignatureAlgorithm.ED25519))
    cosigned = pq_note + sign_note(Checkpoint(ORIGIN, 42, ROOT).to_text(), [witness]).split(b"\n\n")[1]
    assert open_note(cosigned, [ed]).signed_by == (ed,)
    assert open_note(cosigned, [ed, witness.verifier]).signed_by == (ed, witness.verifier)
    renamed = _line(pq_note, 0).replace(ORIGIN.encode(), b"example.com/other")  # same key ID, other name
    assert open_note(pq_note + renamed, [ed]).signed_by == (ed,)


def test_a_policy_can_require_both_post_quantum_signatures(
    pq_note: bytes, log_signers: dict[SignatureAlgorithm, NoteSigner]
) -> None:
    ed, ml, fa = _verifiers(log_signers)
    post_quantum = Policy.all_of(ml, fa)
    assert open_checkpoint(pq_note, [ed], origin=ORIGIN, required=post_quantum).size == 42
    assert open_note(pq_note, [ed], required=post_quantum).signed_by == (ed, ml, fa)
    for index in (1, 2):  # drop the ML-DSA-65 line, then the Falcon-512 line
        missing_one = pq_note.replace(_line(pq_note, index), b"")
        assert open_note(missing_one, [ed, ml, fa]).signed_by  # fine without a policy
        with pytest.raises(CheckpointError, match="required"):
            open_checkpoint(missing_one, [ed], origin=ORIGIN, required=post_quantum)
        with pytest.raises(CheckpointError, match="required"):
            open_checkpoint(missing_one, [ed], origin=ORIGIN, required=[ml, fa])
    only_ed = pq_note.replace(_line(pq_note, 1), b"").replace(_line(pq_note, 2), b"")
    assert open_note(only_ed, [ed, ml, fa]).signed_by == (ed,)
    assert open_note(only_ed, [ed], required=Policy.at_least(1, [ed, ml])).signed_by == (ed,)
    with pytest.raises(CheckpointError):
        open_note(only_ed, [ed], required=Policy.at_least(2, [ed, ml, fa]))
    with pytest.raises(CheckpointError):
        open_note(only_ed, [ed], required=Policy.all_of(ed) & Policy.at_least(1, [ml, fa]))


def test_policy_arguments() -> None:
    peter, enoch = NoteVerifier.from_vkey(GO_PETER), NoteVerifier.from_vkey(GO_ENOCH)
    makers: list[Callable[[], Policy]] = [
        lambda: Policy.at_least(0, [peter]),
        lambda: Policy.at_least(3, [peter, enoch]),
        lambda: Policy.at_least(1, [GO_PETER]),  # type: ignore[list-item]
        lambda: Policy.at_least(True, [peter]),
    ]
    for make in makers:
        with pytest.raises(InvalidRequestError):
            make()
    assert Policy.all_of(peter, peter).keys == {peter}
    signed = (GO_TEXT + "\n" + GO_PETER_SIG).encode()
    with pytest.raises(InvalidRequestError):
        open_note(signed, [peter], required=peter)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        open_note(signed.decode(), [peter])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        open_note(signed, [GO_PETER])  # type: ignore[list-item]


def test_ambiguous_trusted_keys_are_refused() -> None:
    peter = NoteVerifier.from_vkey(GO_PETER)
    signed = (GO_TEXT + "\n" + GO_PETER_SIG).encode()
    assert open_note(signed, [peter, NoteVerifier.from_vkey(GO_PETER)]).signed_by == (peter,)
    impostor = NoteVerifier("PeterNeumann", NoteVerifier.from_vkey(GO_ENOCH).key)
    object.__setattr__(impostor, "key_id", peter.key_id)  # a 32-bit key ID collision, forced
    with pytest.raises(InvalidRequestError, match="share"):
        open_note(signed, [peter, impostor])


# --- limits and arguments --------------------------------------------------------------------------
def test_signature_count_limit(log_signers: dict[SignatureAlgorithm, NoteSigner]) -> None:
    signer = log_signers[SignatureAlgorithm.ED25519]
    signed = sign_note("text\n", [signer])
    unknown = [f"\u2014 other{i} AAAAAAA=\n".encode() for i in range(MAX_SIGNATURES)]
    assert open_note(signed + b"".join(unknown[: MAX_SIGNATURES - 1]), [signer.verifier])
    with pytest.raises(CheckpointError, match="too many"):
        open_note(signed + b"".join(unknown), [signer.verifier])


def test_text_size_limit(log_signers: dict[SignatureAlgorithm, NoteSigner]) -> None:
    signer = log_signers[SignatureAlgorithm.ED25519]
    largest = "x" * (MAX_TEXT_BYTES - 1) + "\n"
    assert open_note(sign_note(largest, [signer]), [signer.verifier]).text == largest
    with pytest.raises(InvalidRequestError):
        sign_note("x" + largest, [signer])
    line = sign_note("short\n", [signer]).split(b"\n\n")[1]
    with pytest.raises(CheckpointError, match="too large"):
        open_note(("x" + largest + "\n").encode() + line, [signer.verifier])
    with pytest.raises(CheckpointError, match="too large"):
        open_note(b"x" * (note_module.MAX_NOTE_BYTES + 1), [signer.verifier])


def test_sign_note_arguments(log_signers: dict[SignatureAlgorithm, NoteSigner]) -> None:
    signer = log_signers[SignatureAlgorithm.ED25519]
    for text in ("no final newline", "a\tb\n", "a\rb\n", "\ud800\n", b"bytes\n"):
        with pytest.raises(InvalidRequestError):
            sign_note(text, [signer])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        sign_note("text\n", [])
    with pytest.raises(InvalidRequestError):
        sign_note("text\n", [signer, signer])
    with pytest.raises(InvalidRequestError):
        sign_note("text\n", [signer.verifier])  # type: ignore[list-item]


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u2028b", "a\u3000b", "a\x01b", "\ud800"])
def test_bad_key_names(name: str) -> None:
    key = NoteVerifier.from_vkey(GO_PETER).key
    with pytest.raises(InvalidRequestError):
        NoteVerifier(name, key)


def test_key_names_may_be_any_other_unicode() -> None:
    key = NoteVerifier.from_vkey(GO_PETER).key
    verifier = NoteVerifier("\u00e9t\u00e9.example/\u65e5\u672c", key)
    assert NoteVerifier.from_vkey(verifier.to_vkey()) == verifier


def test_a_faulty_signer_never_publishes_a_bad_line(
    log_signers: dict[SignatureAlgorithm, NoteSigner],
) -> None:
    class Faulty:
        def sign(self, _message: bytes) -> bytes:
            return b"\x00" * 64

    real = log_signers[SignatureAlgorithm.ED25519]
    faulty = NoteSigner(ORIGIN, real._key)
    faulty._key = Faulty()  # type: ignore[assignment]
    with pytest.raises(CheckpointError):
        sign_note("text\n", [faulty])


def test_verifier_key_argument_types() -> None:
    with pytest.raises(InvalidRequestError):
        NoteVerifier.from_vkey(GO_PETER.encode())  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        NoteVerifier.from_vkey(GO_PETER.replace("c74f20a3", "C74F20A3"))  # lowercase hex only
    with pytest.raises(InvalidRequestError):
        NoteVerifier.from_vkey(GO_PETER + "\n")
    with pytest.raises(InvalidRequestError):
        NoteVerifier("name", b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        NoteSigner("name", NoteVerifier.from_vkey(GO_PETER).key)  # type: ignore[arg-type]
