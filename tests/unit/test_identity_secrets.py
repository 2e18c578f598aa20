"""Client secrets: generated, hashed with scrypt (parameters stored with the hash), checked in constant
time; malformed stored hashes and oversized candidates are refused before any work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest

from reliquary.identity.secrets import (
    DEFAULT_PARAMS,
    DUMMY_HASH,
    MAX_SECRET_CHARS,
    ScryptParams,
    hash_secret,
    needs_rehash,
    new_secret,
    verify_secret,
)

PHC = re.compile(r"\$scrypt\$ln=14,r=8,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})")
# Cheaper parameters where a test hashes many times; the format and the checks are the same.
FAST = ScryptParams(log2_n=10, r=8, p=1)


def test_rfc_7914_vector() -> None:
    """RFC 7914 section 12: scrypt("password", "NaCl", N=1024, r=8, p=16); our 32 bytes are its first 32
    (PBKDF2's first block does not depend on the output length)."""
    expected = bytes.fromhex(
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )
    assert ScryptParams(log2_n=10, r=8, p=16).derive(b"password", b"NaCl") == expected[:32]


def test_new_secrets() -> None:
    made = {new_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert re.fullmatch(r"rqs_[A-Za-z0-9_-]{43}", secret)


def test_a_hash_stores_salt_hash_and_parameters() -> None:
    secret = new_secret()
    stored = hash_secret(secret)
    match = PHC.fullmatch(stored)
    assert match is not None
    salt, digest = (base64.b64decode(part + "=" * (-len(part) % 4)) for part in match.groups())
    assert len(salt) == 16
    assert digest == hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    assert secret not in stored


def test_the_right_secret_verifies_and_nothing_else() -> None:
    secret = new_secret()
    stored = hash_secret(secret, FAST)
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret(secret[:-1], stored)
    assert not verify_secret(new_secret(), stored)
    assert not verify_secret("", stored)


def test_salts_differ() -> None:
    assert hash_secret("rqs_same", FAST) != hash_secret("rqs_same", FAST)


def test_a_tampered_hash_refuses_the_secret() -> None:
    secret = new_secret()
    stored = hash_secret(secret, FAST)
    head, digest_text = stored.rsplit("$", 1)
    digest = bytearray(base64.b64decode(digest_text + "="))
    digest[0] ^= 1
    tampered = f"{head}${base64.b64encode(bytes(digest)).decode().rstrip('=')}"
    assert not verify_secret(secret, tampered)


def test_parameters_travel_with_the_hash() -> None:
    secret = new_secret()
    old = hash_secret(secret, FAST)
    assert old.startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_secret(secret, old)  # verifiable after the default was raised
    assert needs_rehash(old)
    assert not needs_rehash(hash_secret(secret))
    assert not needs_rehash(old, FAST)


def test_candidates_that_are_not_secrets_are_refused_unhashed(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = hash_secret("rqs_x", FAST)
    calls: list[bytes] = []
    original = ScryptParams.derive

    def counting(self: ScryptParams, secret: bytes, salt: bytes) -> bytes:
        calls.append(secret)
        return original(self, secret, salt)

    monkeypatch.setattr(ScryptParams, "derive", counting)
    for candidate in (None, b"rqs_x", 42, "x" * (MAX_SECRET_CHARS + 1), "rqs_\ud800"):
        assert not verify_secret(candidate, stored)
    assert calls == []
    assert not verify_secret("x" * MAX_SECRET_CHARS, stored)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "$scrypt$ln=14,r=8,p=1$AAAA$BBBB",  # salt and hash too short
        "$scrypt$ln=25,r=8,p=1$" + "A" * 22 + "$" + "A" * 43,  # 4 GiB of memory
        "$scrypt$ln=20,r=32,p=1$" + "A" * 22 + "$" + "A" * 43,  # 4 GiB of memory
        "$scrypt$ln=9,r=8,p=1$" + "A" * 22 + "$" + "A" * 43,  # too cheap to be ours
        "$scrypt$ln=14,r=8,p=1$" + "A" * 22 + "$" + "A" * 43 + "$",
        "$argon2id$v=19$m=65536,t=3,p=4$" + "A" * 22 + "$" + "A" * 43,
        "$scrypt$ln=14,r=8,p=1$" + "A" * 21 + "!$" + "A" * 43,
    ],
)
def test_malformed_stored_hashes_are_refused_before_any_work(
    stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*_: Any) -> bytes:
        raise AssertionError("hashed a malformed record")

    monkeypatch.setattr(ScryptParams, "derive", no_work)
    with pytest.raises(ValueError, match=r"stored scrypt hash|out of bounds"):
        verify_secret("rqs_x", stored)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return bool(original(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module secrets compares with
    stored = hash_secret("rqs_x", FAST)
    assert verify_secret("rqs_x", stored)
    assert not verify_secret("rqs_y", stored)
    assert len(compared) == 2
    assert all(len(a) == len(b) == 32 for a, b in compared)


def test_the_dummy_hash_costs_what_a_real_one_costs() -> None:
    assert DUMMY_HASH.startswith(
        f"$scrypt$ln={DEFAULT_PARAMS.log2_n},r={DEFAULT_PARAMS.r},p={DEFAULT_PARAMS.p}$"
    )
    assert PHC.fullmatch(DUMMY_HASH)
    assert not verify_secret("rqs_anything", DUMMY_HASH)
    assert not needs_rehash(DUMMY_HASH)
