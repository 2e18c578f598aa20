"""The SDK opens grants the core issues, byte for byte, and refuses every tampered or misdirected one."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from reliquary_sdk import crypto
from reliquary_sdk.crypto import InvalidGrantError, KeyRing, PublicKey, RequesterKey

from reliquary.crypto import envelope, grants
from reliquary.crypto import signing as core_signing
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import ItemScope
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey

SCOPE = ItemScope("acme", "agent-memory", "notes-1", 3, "text/plain")
PLAINTEXT = b"the launch code is in the blue folder"
NOW = 1_000


@pytest.fixture(scope="module", params=[SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.ED25519])
def signer(request: pytest.FixtureRequest) -> SigningKey:
    algorithm: SignatureAlgorithm = request.param
    return SigningKey.generate(algorithm)


@pytest.fixture(scope="module")
def vault_key() -> VaultKey:
    return VaultKey(version=1, private_key=HybridPrivateKey.generate())


@pytest.fixture(scope="module")
def requester() -> RequesterKey:
    return RequesterKey.generate()


def _ring(*signers: SigningKey) -> KeyRing:
    return KeyRing([PublicKey(s.algorithm.value, s.public_key) for s in signers])


def _issue(
    signer: SigningKey,
    vault_key: VaultKey,
    requester: RequesterKey,
    *,
    plaintext: bytes = PLAINTEXT,
    scope: ItemScope = SCOPE,
) -> tuple[bytes, bytes]:
    sealed = envelope.seal(
        plaintext,
        scope=scope,
        vault_public_key=vault_key.private_key.public_key(),
        key_version=1,
        signer=signer,
    )
    data_key = envelope.unwrap_data_key(
        sealed, scope=scope, vault_key=vault_key, keyring=core_signing.KeyRing([signer.verifying_key])
    )
    grant = grants.issue(
        request_id="req-1",
        scope=scope,
        data_key=data_key,
        requester_public_key=HybridPublicKey.from_bytes(requester.public_bytes()),
        issued_at=NOW,
        ttl_seconds=300,
        signer=signer,
    )
    return grant.to_bytes(), sealed.to_bytes()


def test_a_core_grant_opens_with_the_sdk_as_with_the_core(
    signer: SigningKey, vault_key: VaultKey, requester: RequesterKey
) -> None:
    grant, item = _issue(signer, vault_key, requester)
    opened = crypto.open_grant(
        grant,
        item,
        requester_key=requester,
        service_keys=_ring(signer),
        now=NOW + 10,
        request_id="req-1",
        expected=("acme", "agent-memory", "notes-1"),
    )
    core = grants.open_grant(
        grant,
        item,
        requester_private_key=HybridPrivateKey.from_private_bytes(requester.private_bytes()),
        service_keys=core_signing.KeyRing([signer.verifying_key]),
        now=NOW + 10,
    )
    assert opened.plaintext == core == PLAINTEXT
    assert (opened.request_id, opened.item_id, opened.item_version, opened.content_type) == (
        "req-1",
        "notes-1",
        3,
        "text/plain",
    )
    assert (opened.issued_at, opened.expires_at) == (NOW, NOW + 300)
    # The API's base64 form opens the same.
    b64 = crypto.open_grant(
        base64.b64encode(grant).decode(),
        base64.b64encode(item).decode(),
        requester_key=requester,
        service_keys=_ring(signer),
        now=NOW,
    )
    assert b64.plaintext == PLAINTEXT


def test_the_public_key_and_fingerprint_match_the_cores(requester: RequesterKey) -> None:
    core = HybridPrivateKey.from_private_bytes(requester.private_bytes()).public_key()
    assert requester.public_bytes() == core.to_bytes()
    assert len(requester.public_bytes()) == crypto.PUBLIC_KEY_LEN
    assert requester.fingerprint() == core.fingerprint()
    assert base64.b64decode(requester.public_key_b64()) == core.to_bytes()
    assert PublicKey("ML-DSA-65", b"\x01" * 1952).key_id != PublicKey("Falcon-512", b"\x01" * 897).key_id


def test_every_byte_flip_of_the_grant_or_the_item_is_refused(
    signer: SigningKey, vault_key: VaultKey, requester: RequesterKey
) -> None:
    grant, item = _issue(signer, vault_key, requester, plaintext=b"short")
    ring = _ring(signer)
    for blob, other, is_grant in ((grant, item, True), (item, grant, False)):
        for position in range(len(blob)):
            tampered = bytearray(blob)
            tampered[position] ^= 0x01
            pair = (bytes(tampered), other) if is_grant else (other, bytes(tampered))
            with pytest.raises(InvalidGrantError):
                crypto.open_grant(*pair, requester_key=requester, service_keys=ring, now=NOW)
        for cut in (blob[:-1], blob + b"\x00", b""):
            pair = (cut, other) if is_grant else (other, cut)
            with pytest.raises(InvalidGrantError):
                crypto.open_grant(*pair, requester_key=requester, service_keys=ring, now=NOW)


def test_window_key_signer_request_and_item_are_checked(
    signer: SigningKey, vault_key: VaultKey, requester: RequesterKey
) -> None:
    grant, item = _issue(signer, vault_key, requester)
    ring = _ring(signer)
    for now in (NOW + 300, NOW - crypto.CLOCK_SKEW_SECONDS - 1):
        with pytest.raises(InvalidGrantError):
            crypto.open_grant(grant, item, requester_key=requester, service_keys=ring, now=now)
    assert (
        crypto.open_grant(
            grant, item, requester_key=requester, service_keys=ring, now=NOW - crypto.CLOCK_SKEW_SECONDS
        ).plaintext
        == PLAINTEXT
    )
    refusals = [
        {"requester_key": RequesterKey.generate(), "service_keys": ring},
        {"requester_key": requester, "service_keys": KeyRing()},
        {"requester_key": requester, "service_keys": _ring(SigningKey.generate(SignatureAlgorithm.ED25519))},
        {"requester_key": requester, "service_keys": ring, "request_id": "req-2"},
        {"requester_key": requester, "service_keys": ring, "expected": ("acme", "agent-memory", "notes-2")},
    ]
    for kwargs in refusals:
        with pytest.raises(InvalidGrantError):
            crypto.open_grant(grant, item, now=NOW, **kwargs)  # type: ignore[arg-type]
    for bad in ("not base64!", 42):
        with pytest.raises(InvalidGrantError):
            crypto.open_grant(bad, item, requester_key=requester, service_keys=ring, now=NOW)  # type: ignore[arg-type]


def test_a_grant_does_not_open_another_item_or_a_detached_envelope(
    signer: SigningKey, vault_key: VaultKey, requester: RequesterKey
) -> None:
    grant, item = _issue(signer, vault_key, requester)
    _, other_item = _issue(signer, vault_key, requester, plaintext=b"another item's text")
    _, other_scope = _issue(
        signer, vault_key, requester, scope=ItemScope("acme", "agent-memory", "x", 3, "text/plain")
    )
    detached, _ = Envelope.parse(item).without_body()
    for candidate in (other_item, other_scope, detached.to_bytes()):
        with pytest.raises(InvalidGrantError):
            crypto.open_grant(grant, candidate, requester_key=requester, service_keys=_ring(signer), now=NOW)


def test_the_requester_key_saves_and_loads_privately(tmp_path: Path, requester: RequesterKey) -> None:
    path = tmp_path / "requester.key"
    requester.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = RequesterKey.load(path)
    assert loaded.private_bytes() == requester.private_bytes()
    assert loaded.public_bytes() == requester.public_bytes()
    assert requester.private_bytes().hex() not in repr(requester)
    RequesterKey.generate().save(path)  # replaced atomically, no temporary left behind
    assert RequesterKey.load(path).public_bytes() != requester.public_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requester.key"]
    path.write_text("something else\n")
    with pytest.raises(ValueError, match="not a RELIQUARY requester key file"):
        RequesterKey.load(path)
    with pytest.raises(ValueError, match="96 bytes"):
        RequesterKey.from_private_bytes(b"short")


def test_falcon_without_the_extra_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "oqs", None)
    key = PublicKey("Falcon-512", b"\x01" * 897)
    with pytest.raises(crypto.FalconUnavailableError, match="falcon"):
        key.verify(b"message", b"\x01" * 600)


def test_falcon_signed_grant_opens_with_the_extra(vault_key: VaultKey, requester: RequesterKey) -> None:
    from reliquary_native import load_oqs

    load_oqs()  # the core's liboqs stands in for the extra's
    falcon = SigningKey.generate(SignatureAlgorithm.FALCON_512)
    grant, item = _issue(falcon, vault_key, requester)
    assert (
        crypto.open_grant(grant, item, requester_key=requester, service_keys=_ring(falcon), now=NOW).plaintext
        == PLAINTEXT
    )
    with pytest.raises(InvalidGrantError):
        crypto.open_grant(
            grant[:-3] + b"\x00\x00\x00", item, requester_key=requester, service_keys=_ring(falcon), now=NOW
        )


def test_without_liboqs_the_sdk_never_imports_oqs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing liboqs-python without its library would download and build liboqs: the SDK must refuse first.
    import ctypes.util
    import sys

    monkeypatch.delitem(sys.modules, "oqs", raising=False)
    monkeypatch.setenv("OQS_INSTALL_PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(crypto.FalconUnavailableError):
        PublicKey("Falcon-512", b"\x01" * 897).verify(b"message", b"\x01" * 600)
    assert "oqs" not in sys.modules


def test_a_liboqs_file_that_does_not_load_counts_as_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A liboqs.so whose own dependencies do not resolve would make liboqs-python fall back to downloading.
    import ctypes.util
    import sys

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "liboqs.so").write_bytes(b"not an ELF object")
    monkeypatch.delitem(sys.modules, "oqs", raising=False)
    monkeypatch.setenv("OQS_INSTALL_PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(crypto.FalconUnavailableError):
        PublicKey("Falcon-512", b"\x01" * 897).verify(b"message", b"\x01" * 600)
    assert "oqs" not in sys.modules
