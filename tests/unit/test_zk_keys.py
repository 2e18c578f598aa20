"""Which zero-knowledge verification keys a deployment runs with: the development ceremony's (shipped with
the core, listed by fingerprint in ``keys/development.json``) outside production, a real ceremony's from
``RELIQUARY_ZK_KEYS_DIR`` in production, and never the development ones in production, however copied.

The "real ceremony" here is a set of keys with a trapdoor the test made itself (the Groth16 simulator of
``test_zk_groth16``): valid keys that no development manifest lists, so the accepted path runs with the
real manifest check, and a proof made with them verifies through the verifier built from the folder."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from reliquary.adapters.zk_factory import circuit_keys
from reliquary.config import Settings
from reliquary.errors import ConfigurationError
from reliquary.zk.memory import InMemoryPolicyStore, InMemoryReplayStore
from reliquary.zk.policy import CIRCUITS
from reliquary.zk.replay import IssuedNonce
from reliquary.zk.service import (
    ContextVerifier,
    development_fingerprints,
    development_manifest,
    load_circuit_keys,
    refuse_development_keys,
)
from tests.unit.test_zk_context import ITEM, NONCE, NOW, POLICY, PUBLIC, REQUEST, REQUESTER, TENANT, VAULT
from tests.unit.test_zk_groth16 import Synthetic

REPO = Path(__file__).resolve().parents[2]
ZK_KEYS = REPO / "zk" / "keys"
CORE_KEYS = REPO / "layers" / "core" / "reliquary" / "zk" / "keys"


def _copy_dev_keys(folder: Path) -> Path:
    folder.mkdir()
    for circuit in CIRCUITS:
        for suffix in (".vkey.json", ".signals.json"):
            shutil.copy(ZK_KEYS / f"{circuit}{suffix}", folder / f"{circuit}{suffix}")
    return folder


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Synthetic]:
    """A folder of fresh keys for every circuit (the context circuit's trapdoor kept to prove with)."""
    folder = tmp_path_factory.mktemp("ceremony")
    rng = random.Random(7)
    context: Synthetic | None = None
    for circuit in CIRCUITS:
        signals = json.loads((ZK_KEYS / f"{circuit}.signals.json").read_text())
        made = Synthetic.make(rng, n_public=len(signals))
        context = made if circuit == "context_proof" else context
        (folder / f"{circuit}.vkey.json").write_text(json.dumps(made.vkey))
        (folder / f"{circuit}.signals.json").write_text(json.dumps(signals))
    assert context is not None
    return folder, context


def test_the_manifest_lists_the_committed_development_keys() -> None:
    manifest = json.loads((CORE_KEYS / "development.json").read_text())
    # After `make zk` (a new development ceremony), rewrite the manifest with development_manifest(): see
    # zk/README.md, Ceremony.
    assert manifest == development_manifest(ZK_KEYS)
    assert development_fingerprints() == frozenset(manifest["fingerprints"].values())
    assert len(development_fingerprints()) == len(CIRCUITS)


@pytest.mark.parametrize("stage", ["local", "dev"])
def test_development_stages_run_on_the_development_keys(stage: str) -> None:
    keys = circuit_keys(Settings(stage=stage))
    assert set(keys) == set(CIRCUITS)
    assert {k.key.fingerprint() for k in keys.values()} == development_fingerprints()


def test_production_refuses_the_shipped_development_keys() -> None:
    with pytest.raises(ConfigurationError, match="development ceremony") as caught:
        circuit_keys(Settings(stage="prod"))
    assert caught.value.code == "configuration"
    assert caught.value.details["circuits"] == sorted(CIRCUITS)


def test_production_refuses_a_copy_of_the_development_keys_however_written(tmp_path: Path) -> None:
    folder = _copy_dev_keys(tmp_path / "copied")
    with pytest.raises(ConfigurationError, match="development ceremony"):
        circuit_keys(Settings(stage="prod", zk_keys_dir=folder))
    # Re-encoded (numbers for strings, other key order, no whitespace): the same points, still refused.
    vkey: dict[str, Any] = json.loads((folder / "device_proof.vkey.json").read_text())
    vkey["IC"] = [[int(c) for c in point] for point in vkey["IC"]]
    (folder / "device_proof.vkey.json").write_text(json.dumps(dict(reversed(vkey.items()))))
    for circuit in CIRCUITS:
        if circuit != "device_proof":
            (folder / f"{circuit}.vkey.json").unlink()
            (folder / f"{circuit}.signals.json").unlink()
    keys = load_circuit_keys(("device_proof",), folder=folder)
    with pytest.raises(ConfigurationError, match="development ceremony") as caught:
        refuse_development_keys(keys)
    assert caught.value.details["circuits"] == ["device_proof"]


def test_production_accepts_a_real_ceremonys_keys_and_verifies_with_them(
    ceremony: tuple[Path, Synthetic],
) -> None:
    folder, context = ceremony
    keys = circuit_keys(Settings(stage="prod", zk_keys_dir=folder))
    assert set(keys) == set(CIRCUITS)
    assert not {k.key.fingerprint() for k in keys.values()} & development_fingerprints()
    # The verifier uses these keys: a proof under the ceremony's key verifies, the example (proved with
    # the development key) no longer does.
    replay, policies = InMemoryReplayStore(), InMemoryPolicyStore()
    policies.put(TENANT, VAULT, POLICY)
    verifier = ContextVerifier(keys, replay, policies, clock=lambda: NOW)
    replay.add_nonce(IssuedNonce(TENANT, VAULT, NONCE, NOW - 10, NOW + 290))
    request = {
        "request_id": REQUEST,
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "requester_key_sha256": REQUESTER,
        "nonce": NONCE,
        "circuit": "context_proof",
        "public_signals": PUBLIC,
    }
    dev_proof = json.loads((REPO / "zk" / "examples" / "proofs" / "context_proof.proof.json").read_text())
    assert verifier.verify(**request, proof=dev_proof).reason == "the proof does not verify"
    proof = context.prove(random.Random(8), [int(x) for x in PUBLIC])
    result = verifier.verify(**request, proof=proof)
    assert result.verified, result.reason
    assert result.key_fingerprint == keys["context_proof"].key.fingerprint()


def test_the_keys_dir_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, ceremony: tuple[Path, Synthetic]
) -> None:
    monkeypatch.setenv("RELIQUARY_ZK_KEYS_DIR", str(ceremony[0]))
    monkeypatch.setenv("RELIQUARY_STAGE", "prod")
    settings = Settings()
    assert settings.zk_keys_dir == ceremony[0]
    assert set(circuit_keys(settings)) == set(CIRCUITS)


def _drop(folder: Path, name: str) -> None:
    (folder / name).unlink()


def _bad_signals(folder: Path, name: str) -> None:
    signals = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps(signals[::-1]))


def _not_json(folder: Path, name: str) -> None:
    (folder / name).write_text("{")


def _off_curve(folder: Path, name: str) -> None:
    vkey = json.loads((folder / name).read_text())
    vkey["vk_alpha_1"] = ["1", "3", "1"]
    (folder / name).write_text(json.dumps(vkey))


@pytest.mark.parametrize(
    ("spoil", "name"),
    [
        (_drop, "pattern_match.vkey.json"),
        (_drop, "context_proof.signals.json"),
        (_bad_signals, "context_proof.signals.json"),  # the circuit's signal names, in another order
        (_not_json, "device_proof.vkey.json"),
        (_off_curve, "location_chain.vkey.json"),
    ],
)
def test_an_unusable_keys_dir_fails_the_cold_start(
    tmp_path: Path, ceremony: tuple[Path, Synthetic], spoil: Any, name: str
) -> None:
    folder = tmp_path / "keys"
    shutil.copytree(ceremony[0], folder)
    spoil(folder, name)
    with pytest.raises(ConfigurationError, match=name.split(".", maxsplit=1)[0]):
        circuit_keys(Settings(stage="prod", zk_keys_dir=folder))


def test_a_missing_keys_dir_fails_the_cold_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        circuit_keys(Settings(stage="dev", zk_keys_dir=tmp_path / "absent"))
