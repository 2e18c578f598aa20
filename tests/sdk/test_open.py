"""The SDK's access round without a service: ``prove`` (the JSON-lines protocol against a stand-in
prover, the typed ``ProverUnavailableError``, the device's secret seed), ``handle.open()`` over
httpx.MockTransport (a request not approved, a tampered grant or envelope, a grant for another request,
the wrong service keys, malformed published keys: each a typed error), and the monitor's ``observe`` of a
receipt's older checkpoint (a prefix, or a fork). The whole round against the served runtime is
tests/sdk/test_sdk_http.py."""

from __future__ import annotations

import base64
import json
import stat
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliquary_sdk import NotApprovedError, OpenError, Reliquary, RequesterKey, TrustedKeys
from reliquary_sdk.audit import NoteVerifier, ProofError
from reliquary_sdk.crypto import InvalidGrantError, KeyRing, PublicKey
from reliquary_sdk.monitor import LogForkError, LogMonitor, MemoryStore
from reliquary_sdk.prove import Device, NodeProver, ProveError, ProverUnavailableError, requester_key_sha256

from reliquary.audit import note as core_note
from reliquary.crypto import envelope, grants
from reliquary.crypto.envelope import VaultKey
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import ItemScope
from reliquary.crypto.signing import KeyRing as CoreKeyRing
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from tests.sdk.test_monitor import ORIGIN, CoreLog

TENANT, VAULT, ITEM, REQUEST = "acme", "agent-memory", "notes-1", "rq-1"
SCOPE = ItemScope(TENANT, VAULT, ITEM, 1, "text/plain")
PLAINTEXT = b"the launch code is in the blue folder"


# --- prove ---------------------------------------------------------------------------------------
# A stand-in for zk/scripts/requester.mjs, run by this Python as "node": the same JSON-lines protocol.
FAKE_PROVER = textwrap.dedent(
    """
    import json, sys
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("seed") == "crash":
            sys.exit(3)
        if request.get("seed") == "garbled":
            print("not json", flush=True)
        elif request["op"] == "policy":
            policy = {"device_commitments": ["1"], "seed": request["seed"]}
            print(json.dumps({"ok": True, "policy": policy}), flush=True)
        elif request["op"] == "prove" and request["nonce"] == "bad":
            print(json.dumps({"ok": False, "error": "nonce: not hex"}), flush=True)
        else:
            proof = {"ok": True, "proof": {"binding": request}, "public_signals": ["1"]}
            print(json.dumps(proof), flush=True)
    """
)


@pytest.fixture
def zk_dir(tmp_path: Path) -> Path:
    root = tmp_path / "zk"
    (root / "scripts").mkdir(parents=True)
    (root / "node_modules").mkdir()
    (root / "scripts" / "requester.mjs").write_text(FAKE_PROVER)
    return root


@pytest.fixture
def prover(zk_dir: Path) -> Iterator[NodeProver]:
    made = NodeProver(zk_dir, node=sys.executable, timeout=20)
    yield made
    made.close()


def test_a_proof_is_bound_to_the_whole_request(prover: NodeProver) -> None:
    key = RequesterKey.generate()
    device = Device("seed-1", prover)
    proof = device.prove(
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id=ITEM,
        request_id=REQUEST,
        requester_public_key=key.public_bytes(),
        nonce="ab" * 16,
    )
    assert proof["circuit"] == "context_proof"
    binding = proof["proof"]["binding"]
    assert {k: binding[k] for k in ("tenant_id", "vault_id", "item_id", "request_id", "nonce")} == {
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "request_id": REQUEST,
        "nonce": "ab" * 16,
    }
    assert binding["requester_key_sha256"] == requester_key_sha256(key.public_bytes())
    assert binding["seed"] == "seed-1"
    assert device.policy()["device_commitments"] == ["1"]


def test_the_provers_refusals_are_typed_and_it_recovers(prover: NodeProver) -> None:
    key = RequesterKey.generate().public_bytes()
    binding = {"tenant_id": TENANT, "vault_id": VAULT, "item_id": ITEM, "request_id": REQUEST}
    with pytest.raises(ProveError, match="nonce: not hex"):
        Device("s", prover).prove(**binding, requester_public_key=key, nonce="bad")
    with pytest.raises(ProveError, match="something else than JSON"):
        Device("garbled", prover).policy()
    with pytest.raises(ProveError, match="ended without an answer"):
        Device("crash", prover).policy()
    # A new process serves the next request.
    assert Device("s", prover).policy()["seed"] == "s"


def test_missing_node_or_zk_is_prover_unavailable(zk_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ProverUnavailableError, match=r"Node\.js"):
        NodeProver(zk_dir, node=str(tmp_path / "no-node-here"))
    with pytest.raises(ProverUnavailableError, match="RELIQUARY_ZK_DIR"):
        NodeProver(tmp_path / "nowhere", node=sys.executable)
    (zk_dir / "node_modules").rmdir()
    with pytest.raises(ProverUnavailableError, match="npm ci"):
        NodeProver(zk_dir, node=sys.executable)


def test_the_zk_dir_comes_from_the_environment(zk_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIQUARY_ZK_DIR", str(zk_dir))
    assert NodeProver(node=sys.executable).zk_dir == zk_dir.resolve()


def test_a_devices_seed_never_shows_and_is_saved_0600(prover: NodeProver, tmp_path: Path) -> None:
    device = Device.generate(prover)
    assert device.seed() not in repr(device)
    path = tmp_path / "device"
    device.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Device.load(path, prover).seed() == device.seed()
    assert Device.generate(prover).seed() != device.seed()
    path.write_text("something else\n")
    with pytest.raises(ValueError, match="not a RELIQUARY device file"):
        Device.load(path, prover)


# --- open ----------------------------------------------------------------------------------------
def _service() -> SigningKey:
    return SigningKey.generate(SignatureAlgorithm.ML_DSA_65)


def _issued(signer: SigningKey, requester: RequesterKey, *, request_id: str = REQUEST) -> tuple[str, str]:
    """A grant and the sealed item it opens, as the service issues them (base64)."""
    vault_key = VaultKey(version=1, private_key=HybridPrivateKey.generate())
    sealed = envelope.seal(
        PLAINTEXT,
        scope=SCOPE,
        vault_public_key=vault_key.private_key.public_key(),
        key_version=1,
        signer=signer,
    )
    data_key = envelope.unwrap_data_key(
        sealed, scope=SCOPE, vault_key=vault_key, keyring=CoreKeyRing([signer.verifying_key])
    )
    grant = grants.issue(
        request_id=request_id,
        scope=SCOPE,
        data_key=data_key,
        requester_public_key=HybridPublicKey.from_bytes(requester.public_bytes()),
        issued_at=int(time.time()),
        ttl_seconds=300,
        signer=signer,
    )
    return base64.b64encode(grant.to_bytes()).decode(), base64.b64encode(sealed.to_bytes()).decode()


def _view(status: str, grant: str | None = None) -> dict[str, Any]:
    return {
        "request_id": REQUEST,
        "status": status,
        "vault_id": VAULT,
        "memory_id": ITEM,
        "requested_at": 1,
        "decided_at": 2,
        "reasons": ["quorum 1 of 3"] if status == "denied" else [],
        "grant": None if grant is None else {"grant": grant, "item_id": ITEM, "version": 1, "expires_at": 9},
        "receipt": {"format": "reliquary-audit-receipt/v1"},
        "entry": "{}",
    }


def _sealed(item: str) -> dict[str, Any]:
    return {
        "request_id": REQUEST,
        "vault_id": VAULT,
        "memory_id": ITEM,
        "version": 1,
        "content_type": "text/plain",
        "envelope": item,
        "grant_expires_at": 9,
    }


def _token() -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"tenant": TENANT}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln"


def _keys(*signers: SigningKey) -> TrustedKeys:
    log_key = core_note.NoteSigner(ORIGIN, SigningKey.generate(SignatureAlgorithm.ED25519))
    from reliquary_sdk.chain import StageKeys

    return TrustedKeys(
        origin=f"reliquary.example/log/{TENANT}",
        verifiers=(NoteVerifier.from_vkey(log_key.verifier.to_vkey()),),
        stage_keys=StageKeys({}),
        service_keys=KeyRing([PublicKey(s.algorithm.value, s.public_key) for s in signers]),
    )


def _client(
    view: dict[str, Any], item: dict[str, Any] | None, keys: TrustedKeys
) -> tuple[Reliquary, list[str]]:
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(
                200, json={"access_token": _token(), "token_type": "Bearer", "expires_in": 900}
            )
        if request.url.path.endswith("/item"):
            return httpx.Response(200, json=item)
        return httpx.Response(200, json=view)

    from reliquary_sdk import ClientCredentials

    client = Reliquary(
        "https://api.example",
        auth=ClientCredentials("cl-1", "secret"),
        transport=httpx.MockTransport(answer),
        trusted_keys=keys,
        monitor=LogMonitor(keys.verifiers, store=MemoryStore()),
    )
    return client, paths


@pytest.mark.parametrize("status", ["denied", "failed", "pending"])
def test_a_request_not_approved_does_not_open_and_fetches_nothing(status: str) -> None:
    client, paths = _client(_view(status), None, _keys(_service()))
    handle = client.access.get(REQUEST, key=RequesterKey.generate())
    with pytest.raises(NotApprovedError) as caught:
        handle.open()
    assert caught.value.status == status
    assert "/item" not in " ".join(paths)


def _tampered(text: str, at: int) -> str:
    data = bytearray(base64.b64decode(text))
    data[at] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


OpenCase = Callable[[SigningKey, RequesterKey], tuple[dict[str, Any], dict[str, Any], TrustedKeys]]


def _tampered_grant(
    signer: SigningKey, requester: RequesterKey
) -> tuple[dict[str, Any], dict[str, Any], TrustedKeys]:
    grant, item = _issued(signer, requester)
    return _view("approved", _tampered(grant, 40)), _sealed(item), _keys(signer)


def _tampered_envelope(
    signer: SigningKey, requester: RequesterKey
) -> tuple[dict[str, Any], dict[str, Any], TrustedKeys]:
    grant, item = _issued(signer, requester)
    return _view("approved", grant), _sealed(_tampered(item, len(base64.b64decode(item)) // 2)), _keys(signer)


def _another_request(
    signer: SigningKey, requester: RequesterKey
) -> tuple[dict[str, Any], dict[str, Any], TrustedKeys]:
    grant, item = _issued(signer, requester, request_id="rq-someone-elses")
    return _view("approved", grant), _sealed(item), _keys(signer)


def _wrong_keys(
    signer: SigningKey, requester: RequesterKey
) -> tuple[dict[str, Any], dict[str, Any], TrustedKeys]:
    grant, item = _issued(signer, requester)
    return _view("approved", grant), _sealed(item), _keys(_service())


def _another_requester(
    signer: SigningKey, requester: RequesterKey
) -> tuple[dict[str, Any], dict[str, Any], TrustedKeys]:
    grant, item = _issued(signer, RequesterKey.generate())
    return _view("approved", grant), _sealed(item), _keys(signer)


@pytest.mark.parametrize(
    "case",
    [_tampered_grant, _tampered_envelope, _another_request, _wrong_keys, _another_requester],
    ids=lambda c: c.__name__.strip("_"),
)
def test_a_grant_that_does_not_hold_does_not_open(case: OpenCase) -> None:
    signer, requester = _service(), RequesterKey.generate()
    view, item, keys = case(signer, requester)
    client, _ = _client(view, item, keys)
    with pytest.raises(InvalidGrantError):
        client.access.get(REQUEST, key=requester).open()


def test_an_honest_grant_then_needs_its_record_and_receipt() -> None:
    # The grant opens, but the view carries no real receipt: nothing is returned on the grant's word.
    signer, requester = _service(), RequesterKey.generate()
    grant, item = _issued(signer, requester)
    client, _ = _client(_view("approved", grant), _sealed(item), _keys(signer))
    with pytest.raises(ProofError, match="not a receipt"):
        client.access.get(REQUEST, key=requester).open()


def test_a_sealed_item_of_another_request_is_refused() -> None:
    signer, requester = _service(), RequesterKey.generate()
    grant, item = _issued(signer, requester)
    client, _ = _client(_view("approved", grant), {**_sealed(item), "request_id": "rq-2"}, _keys(signer))
    with pytest.raises(OpenError, match="another request"):
        client.access.get(REQUEST, key=requester).open()


def test_published_keys_are_checked_before_they_are_trusted() -> None:
    signer = _service()
    service_key = {
        "algorithm": signer.algorithm.value,
        "key_id": signer.key_id.hex(),
        "public_key": base64.b64encode(signer.public_key).decode(),
    }
    good: dict[str, Any] = {
        "origin": f"reliquary.example/log/{TENANT}",
        "verifier_keys": [
            core_note.NoteSigner(ORIGIN, SigningKey.generate(SignatureAlgorithm.ED25519)).verifier.to_vkey()
        ],
        "stage_keys": [],
        "service_keys": [service_key],
    }
    assert len(TrustedKeys.from_api(good).service_keys) == 1
    for broken in (
        {**good, "service_keys": [{**service_key, "key_id": "00" * 8}]},
        {**good, "service_keys": [{**service_key, "public_key": "not base64!"}]},
        {**good, "service_keys": []},
        {**good, "verifier_keys": ["garbage"]},
        {k: v for k, v in good.items() if k != "service_keys"},
    ):
        with pytest.raises(OpenError):
            TrustedKeys.from_api(broken)


# --- the monitor's view of a receipt's checkpoint -----------------------------------------------
@pytest.fixture(scope="module")
def log_keys() -> list[core_note.NoteSigner]:
    from reliquary_native import load_oqs

    load_oqs()
    return [core_note.NoteSigner(ORIGIN, SigningKey.generate(SignatureAlgorithm.ED25519))]


def test_an_older_receipt_checkpoint_is_accepted_as_a_prefix(log_keys: list[core_note.NoteSigner]) -> None:
    honest = CoreLog(log_keys).append(0, 5).append(5, 6)
    verifiers = [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in log_keys]
    monitor = LogMonitor(verifiers, store=MemoryStore())
    monitor.update(ORIGIN, honest.note(11))
    asked: list[tuple[int, int]] = []

    def proof(first: int, second: int) -> list[bytes]:
        asked.append((first, second))
        return honest.proof(first, second)

    update = monitor.observe(ORIGIN, honest.note(5), proof)
    assert asked == [(5, 11)]
    assert update.checkpoint.size == 11  # the memory stays at the latest
    latest = monitor.latest(ORIGIN)
    assert latest is not None
    assert latest.size == 11


def test_an_older_checkpoint_of_another_history_is_a_fork(log_keys: list[core_note.NoteSigner]) -> None:
    honest = CoreLog(log_keys).append(0, 5).append(5, 6)
    forked = CoreLog(log_keys).append(0, 3).append(3, 2, tag="forked")
    verifiers = [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in log_keys]
    monitor = LogMonitor(verifiers, store=MemoryStore())
    monitor.update(ORIGIN, honest.note(11))
    with pytest.raises(LogForkError) as caught:
        monitor.observe(ORIGIN, forked.note(5), honest.proof)
    assert caught.value.reason == "inconsistent"
    assert caught.value.presented_note == forked.note(5)


def test_a_newer_checkpoint_is_observed_as_an_update(log_keys: list[core_note.NoteSigner]) -> None:
    honest = CoreLog(log_keys).append(0, 5).append(5, 6)
    verifiers = [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in log_keys]
    monitor = LogMonitor(verifiers, store=MemoryStore())
    monitor.observe(ORIGIN, honest.note(5), honest.proof)
    assert monitor.observe(ORIGIN, honest.note(11), honest.proof).grew
