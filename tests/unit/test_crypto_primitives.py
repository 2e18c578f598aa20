"""Primitives: hybrid HPKE keys, the three signature algorithms, liboqs/OpenSSL interop, the local root."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from reliquary.crypto import kem
from reliquary.crypto.codec import Reader, Writer, text16
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.root import LocalRootOfTrust, canonical_context
from reliquary.crypto.signing import (
    KeyRing,
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    _oqs,
    key_id_for,
)
from reliquary.errors import (
    ConfigurationError,
    InvalidEnvelopeError,
    InvalidRequestError,
    InvalidSignatureError,
    RootOfTrustError,
)

ALGORITHMS = list(SignatureAlgorithm)


# --- hybrid KEM -----------------------------------------------------------------------------------
def test_hybrid_key_sizes_and_round_trip() -> None:
    key = HybridPrivateKey.generate()
    public = key.public_key()
    assert len(public.to_bytes()) == kem.PUBLIC_KEY_LEN == 1216
    assert len(key.private_bytes()) == kem.PRIVATE_KEY_LEN == 96
    again = HybridPrivateKey.from_private_bytes(key.private_bytes())
    assert again.public_key() == public
    sealed = public.seal(b"k" * 32, info=b"scope")
    assert len(sealed) == kem.sealed_length(32) == 1120 + 32 + 16
    assert again.open(sealed, info=b"scope") == b"k" * 32


def test_hybrid_open_refuses_wrong_info_key_and_any_flip() -> None:
    key = HybridPrivateKey.generate()
    sealed = key.public_key().seal(b"k" * 32, info=b"scope")
    with pytest.raises(InvalidEnvelopeError):
        key.open(sealed, info=b"other scope")
    with pytest.raises(InvalidEnvelopeError):
        HybridPrivateKey.generate().open(sealed, info=b"scope")
    # A flip in the ML-KEM ciphertext, the X25519 share and the AEAD part each break it.
    for position in (0, 1087, 1088, 1119, 1120, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidEnvelopeError):
            key.open(bytes(tampered), info=b"scope")
    with pytest.raises(InvalidEnvelopeError):
        key.open(sealed[:-1], info=b"scope")


@pytest.mark.parametrize("length", [0, 1215, 1217, 96])
def test_hybrid_public_key_wrong_length(length: int) -> None:
    with pytest.raises(InvalidRequestError, match="1216 bytes"):
        HybridPublicKey.from_bytes(b"\x01" * length)


def test_hybrid_private_key_wrong_length_and_repr_hides_secret() -> None:
    with pytest.raises(InvalidRequestError):
        HybridPrivateKey.from_private_bytes(b"\x00" * 95)
    key = HybridPrivateKey.generate()
    assert key.private_bytes().hex() not in repr(key)


def test_low_order_x25519_public_key_is_refused_on_seal() -> None:
    public = HybridPrivateKey.generate().public_key().to_bytes()
    zero_x25519 = HybridPublicKey.from_bytes(public[: kem.MLKEM_PUBLIC_LEN] + bytes(32))
    with pytest.raises(InvalidRequestError, match="cannot encrypt"):
        zero_x25519.seal(b"k" * 32, info=b"")


# --- interop: liboqs and OpenSSL (cryptography) agree ---------------------------------------------
def test_mlkem768_interop_liboqs_encapsulates_to_openssl_key() -> None:
    openssl_key = mlkem.MLKEM768PrivateKey.generate()
    with _oqs().KeyEncapsulation("ML-KEM-768") as liboqs:
        ciphertext, shared = liboqs.encap_secret(openssl_key.public_key().public_bytes_raw())
    assert openssl_key.decapsulate(ciphertext) == shared


def test_mlkem768_interop_openssl_encapsulates_to_liboqs_key() -> None:
    with _oqs().KeyEncapsulation("ML-KEM-768") as liboqs:
        public = liboqs.generate_keypair()
        shared, ciphertext = mlkem.MLKEM768PublicKey.from_public_bytes(public).encapsulate()
        assert liboqs.decap_secret(ciphertext) == shared


def test_mldsa65_interop_both_directions() -> None:
    message = b"RELIQUARY interop"
    ours = SigningKey.generate(SignatureAlgorithm.ML_DSA_65)  # liboqs
    mldsa.MLDSA65PublicKey.from_public_bytes(ours.public_key).verify(ours.sign(message), message)
    with pytest.raises(InvalidSignature):
        mldsa.MLDSA65PublicKey.from_public_bytes(ours.public_key).verify(ours.sign(message), message + b"!")

    openssl_key = mldsa.MLDSA65PrivateKey.generate()
    verifier = VerifyingKey(SignatureAlgorithm.ML_DSA_65, openssl_key.public_key().public_bytes_raw())
    verifier.verify(message, openssl_key.sign(message))
    with pytest.raises(InvalidSignatureError):
        verifier.verify(message + b"!", openssl_key.sign(message))


# --- signatures -----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sign_verify_and_tamper(algorithm: SignatureAlgorithm) -> None:
    key = SigningKey.generate(algorithm)
    signature = key.sign(b"message")
    key.verifying_key.verify(b"message", signature)
    with pytest.raises(InvalidSignatureError):
        key.verifying_key.verify(b"messagf", signature)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x40
    with pytest.raises(InvalidSignatureError):
        key.verifying_key.verify(b"message", bytes(tampered))
    with pytest.raises(InvalidSignatureError):
        key.verifying_key.verify(b"message", b"")
    with pytest.raises(InvalidSignatureError):
        SigningKey.generate(algorithm).verifying_key.verify(b"message", signature)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signing_key_round_trips_through_secret_bytes(algorithm: SignatureAlgorithm) -> None:
    key = SigningKey.generate(algorithm)
    again = SigningKey(algorithm, key.secret_bytes(), key.public_key)
    key.verifying_key.verify(b"m", again.sign(b"m"))
    assert again.key_id == key.key_id == key_id_for(algorithm, key.public_key)
    assert key.secret_bytes().hex() not in repr(key)


def test_ed25519_secret_must_match_public_key() -> None:
    key = SigningKey.generate(SignatureAlgorithm.ED25519)
    other = SigningKey.generate(SignatureAlgorithm.ED25519)
    with pytest.raises(InvalidRequestError):
        SigningKey(SignatureAlgorithm.ED25519, key.secret_bytes(), other.public_key)


def test_algorithm_ids_are_stable_and_unknown_ones_refused() -> None:
    assert [a.wire_id for a in ALGORITHMS] == [1, 2, 3]
    assert SignatureAlgorithm.from_wire_id(3) is SignatureAlgorithm.FALCON_512
    with pytest.raises(InvalidRequestError):
        SignatureAlgorithm.from_wire_id(9)
    with pytest.raises(InvalidRequestError, match="known"):
        SignatureAlgorithm.parse("RSA")


def test_verifying_key_rejects_wrong_public_key_length() -> None:
    with pytest.raises(InvalidRequestError, match="1952"):
        VerifyingKey(SignatureAlgorithm.ML_DSA_65, b"\x00" * 100)


def test_keyring_looks_up_by_id_and_algorithm() -> None:
    ed = SigningKey.generate(SignatureAlgorithm.ED25519)
    falcon = SigningKey.generate(SignatureAlgorithm.FALCON_512)
    ring = KeyRing([ed.verifying_key, falcon.verifying_key])
    assert len(ring) == 2
    ring.verify(falcon.key_id, SignatureAlgorithm.FALCON_512, b"m", falcon.sign(b"m"))
    with pytest.raises(InvalidSignatureError, match="unknown key"):
        ring.verify(falcon.key_id, SignatureAlgorithm.ED25519, b"m", falcon.sign(b"m"))


# --- the local root of trust ----------------------------------------------------------------------
def test_local_root_binds_context(tmp_path: Path) -> None:
    root = LocalRootOfTrust.from_file(tmp_path / "keys" / "root.key")
    blob = root.wrap(b"secret", context={"tenant_id": "a", "vault_id": "v"})
    assert root.unwrap(blob, context={"vault_id": "v", "tenant_id": "a"}) == b"secret"
    for context in ({"tenant_id": "b", "vault_id": "v"}, {"tenant_id": "a"}, {}):
        with pytest.raises(RootOfTrustError):
            root.unwrap(blob, context=context)
    with pytest.raises(RootOfTrustError):
        LocalRootOfTrust.generate().unwrap(blob, context={"tenant_id": "a", "vault_id": "v"})
    with pytest.raises(RootOfTrustError):
        root.unwrap(blob[:-1], context={"tenant_id": "a", "vault_id": "v"})


def test_local_root_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "rq" / "root.key"
    first = LocalRootOfTrust.from_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    second = LocalRootOfTrust.from_file(path)
    assert first.key_id == second.key_id
    assert second.unwrap(first.wrap(b"x", context={}), context={}) == b"x"
    path.write_bytes(b"short")
    with pytest.raises(ConfigurationError):
        LocalRootOfTrust.from_file(path)
    with pytest.raises(ConfigurationError):
        LocalRootOfTrust.from_file(tmp_path / "absent", create=False)


def test_canonical_context_has_no_collisions_between_splits() -> None:
    assert canonical_context({"a": "b=c"}) != canonical_context({"a=b": "c"})
    assert canonical_context({"x": "1", "y": "2"}) == canonical_context({"y": "2", "x": "1"})


def test_reader_reads_fixed_runs_and_refuses_short_input_and_bad_text() -> None:
    layout = struct.Struct(">HI")
    reader = Reader(layout.pack(7, 9) + Writer().text("ok").getvalue())
    assert reader.unpack(layout) == (7, 9)
    assert reader.text() == "ok"
    reader.finish()
    with pytest.raises(InvalidEnvelopeError):
        Reader(b"\x00\x01\x02").unpack(layout)
    with pytest.raises(InvalidEnvelopeError):
        Reader(b"\x00\x02\xc3\x28").text()  # an invalid UTF-8 sequence
    with pytest.raises(InvalidEnvelopeError):
        Reader(b"\x00\x05ab").text()  # longer than what is left
    assert text16("é") == Writer().text("é").getvalue()
