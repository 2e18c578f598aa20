"""The client's checkpoint memory: a tenant log the core grows is followed; a log the core forks (same
size other root, shrunk, or grown from another history) is a LogForkError, as the core's own consistency
check judges it."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
from reliquary_sdk import monitor
from reliquary_sdk.audit import CheckpointError, NoteVerifier, ProofError
from reliquary_sdk.monitor import JSONFileStore, LogForkError, LogMonitor, MemoryStore, StoreConflictError

from reliquary.audit import merkle
from reliquary.audit import note as core_note
from reliquary.audit.checkpoint import Checkpoint, sign_checkpoint
from reliquary.audit.log import TransparencyLog
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import ReliquaryError

ORIGIN = "reliquary.example/log/acme"
OTHER = "reliquary.example/log/globex"
LOG = "acme"


@pytest.fixture(scope="module")
def log_keys() -> list[core_note.NoteSigner]:
    from reliquary_native import load_oqs

    load_oqs()
    return [
        core_note.NoteSigner(ORIGIN, SigningKey.generate(algorithm))
        for algorithm in (SignatureAlgorithm.ED25519, SignatureAlgorithm.ML_DSA_65)
    ]


@pytest.fixture(scope="module")
def verifiers(log_keys: list[core_note.NoteSigner]) -> list[NoteVerifier]:
    return [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in log_keys]


class CoreLog:
    """A tenant log the core's TransparencyLog keeps, and its signed checkpoints."""

    def __init__(self, signers: list[core_note.NoteSigner], origin: str = ORIGIN) -> None:
        self.log = TransparencyLog(InMemoryLogStore(), InMemoryTileStore())
        self.signers = signers
        self.origin = origin
        self._notes: dict[int, bytes] = {}  # signatures are randomized: one note per size, as a log signs

    def append(self, start: int, count: int, tag: str = "honest") -> CoreLog:
        self.log.append(
            LOG, [(f"req-{i}", f"{tag} record {i}".encode()) for i in range(start, start + count)]
        )
        return self

    def note(self, size: int | None = None) -> bytes:
        size, root = self.log.root(LOG, size)
        if size not in self._notes:
            self._notes[size] = sign_checkpoint(Checkpoint(self.origin, size, root), self.signers)
        return self._notes[size]

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self.log.consistency_proof(LOG, old, new)

    def root(self, size: int) -> bytes:
        return self.log.root(LOG, size)[1]


@pytest.fixture
def honest(log_keys: list[core_note.NoteSigner]) -> CoreLog:
    return CoreLog(log_keys).append(0, 5).append(5, 4).append(9, 11)


@pytest.fixture
def forked(log_keys: list[core_note.NoteSigner]) -> CoreLog:
    """The same first five entries, then another history: what a service shows another client."""
    return CoreLog(log_keys).append(0, 5).append(5, 4, tag="forked").append(9, 11, tag="forked")


def _monitor(verifiers: list[NoteVerifier], tmp_path: Path) -> LogMonitor:
    return LogMonitor(verifiers, path=tmp_path / "checkpoints.json", required=verifiers)


def test_a_growing_log_is_followed_and_remembered_on_disk(
    verifiers: list[NoteVerifier], honest: CoreLog, tmp_path: Path
) -> None:
    watcher = _monitor(verifiers, tmp_path)
    assert watcher.latest(ORIGIN) is None
    first = watcher.update(ORIGIN, honest.note(5))
    assert (first.checkpoint.size, first.previous, first.grew) == (5, None, True)
    grown = watcher.update(ORIGIN, honest.note(9), honest.proof(5, 9))
    assert (grown.checkpoint.size, grown.checkpoint.root_hash, grown.grew) == (9, honest.root(9), True)
    assert not watcher.update(ORIGIN, honest.note(9)).grew  # the same checkpoint again: nothing to prove
    # A new process reads the memory back from the file and goes on from there.
    again = _monitor(verifiers, tmp_path)
    latest = again.latest(ORIGIN)
    assert latest is not None
    assert (latest.size, latest.root_hash) == (9, honest.root(9))
    again.update(ORIGIN, honest.note(20), honest.proof(9, 20))
    document = json.loads((tmp_path / "checkpoints.json").read_text())
    assert document["format"] == monitor.STORE_FORMAT
    assert base64.b64decode(document["logs"][ORIGIN]) == honest.note(20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints.json", "checkpoints.json.lock"]


def test_same_size_other_root_is_a_fork(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, tmp_path: Path
) -> None:
    watcher = _monitor(verifiers, tmp_path)
    watcher.update(ORIGIN, honest.note(9))
    with pytest.raises(LogForkError) as caught:
        watcher.update(ORIGIN, forked.note(9))
    fork = caught.value
    assert (fork.reason, fork.origin, fork.code) == ("same_size", ORIGIN, "log_fork")
    assert (fork.known_note, fork.presented_note) == (honest.note(9), forked.note(9))
    assert fork.known.root_hash != fork.presented.root_hash
    latest = watcher.latest(ORIGIN)
    assert latest is not None
    assert latest.root_hash == honest.root(9)


def test_a_smaller_checkpoint_is_a_fork(
    verifiers: list[NoteVerifier], honest: CoreLog, tmp_path: Path
) -> None:
    watcher = _monitor(verifiers, tmp_path)
    watcher.update(ORIGIN, honest.note(9))
    with pytest.raises(LogForkError) as caught:
        watcher.update(ORIGIN, honest.note(5), honest.proof(5, 9))
    assert caught.value.reason == "smaller"


@pytest.mark.parametrize("sizes", [(9, 20), (9, 12), (12, 20)])
def test_growth_from_another_history_is_a_fork_as_the_core_judges_it(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, tmp_path: Path, sizes: tuple[int, int]
) -> None:
    old, new = sizes
    watcher = _monitor(verifiers, tmp_path)
    watcher.update(ORIGIN, honest.note(old))
    # Neither the fork's own proof nor the honest log's proves the forked checkpoint extends ours ...
    for proof in (forked.proof(old, new), honest.proof(old, new), []):
        with pytest.raises(LogForkError) as caught:
            watcher.update(ORIGIN, forked.note(new), proof)
        assert caught.value.reason == "inconsistent"
        with pytest.raises(ReliquaryError):  # ... nor does the core's own check accept it
            merkle.verify_consistency(old, new, honest.root(old), forked.root(new), proof)
    # The honest log's checkpoint still extends ours, with the right proof only.
    with pytest.raises(LogForkError):
        watcher.update(ORIGIN, honest.note(new), forked.proof(old, new))
    watcher.update(ORIGIN, honest.note(new), honest.proof(old, new))


def test_a_fork_seen_from_the_first_shared_checkpoint_is_consistent(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, tmp_path: Path
) -> None:
    """Both histories extend the five shared entries: each alone is consistent; it is the second client's
    memory that catches the other branch."""
    one, two = _monitor(verifiers, tmp_path / "one"), _monitor(verifiers, tmp_path / "two")
    for watcher in (one, two):
        watcher.update(ORIGIN, honest.note(5))
    one.update(ORIGIN, honest.note(20), honest.proof(5, 20))
    two.update(ORIGIN, forked.note(20), forked.proof(5, 20))
    with pytest.raises(LogForkError) as caught:
        one.update(ORIGIN, two.store.load(ORIGIN) or b"")  # gossip: one client shows its note to the other
    assert caught.value.reason == "same_size"


def test_a_checkpoint_that_does_not_verify_changes_nothing(
    verifiers: list[NoteVerifier], honest: CoreLog, tmp_path: Path
) -> None:
    watcher = _monitor(verifiers, tmp_path)
    watcher.update(ORIGIN, honest.note(5))
    tampered = bytearray(honest.note(9))
    tampered[-5] ^= 1
    outsider = [core_note.NoteSigner(ORIGIN, SigningKey.generate(SignatureAlgorithm.ED25519))]
    for note in (
        bytes(tampered),
        CoreLog(outsider).append(0, 9).note(),
        CoreLog(honest.signers, OTHER).append(0, 9).note(),
    ):
        with pytest.raises(CheckpointError):
            watcher.update(ORIGIN, note, honest.proof(5, 9))
    latest = watcher.latest(ORIGIN)
    assert latest is not None
    assert latest.size == 5


def test_each_tenant_log_is_remembered_apart(
    log_keys: list[core_note.NoteSigner], verifiers: list[NoteVerifier], tmp_path: Path
) -> None:
    acme = CoreLog(log_keys).append(0, 7)
    globex_signers = [core_note.NoteSigner(OTHER, SigningKey.generate(SignatureAlgorithm.ED25519))]
    globex = CoreLog(globex_signers, OTHER).append(0, 3)
    trusted = [*verifiers, NoteVerifier.from_vkey(globex_signers[0].verifier.to_vkey())]
    watcher = LogMonitor(trusted, path=tmp_path / "c.json")
    watcher.update(ORIGIN, acme.note())
    watcher.update(OTHER, globex.note())
    acme_latest, globex_latest = watcher.latest(ORIGIN), watcher.latest(OTHER)
    assert acme_latest is not None
    assert globex_latest is not None
    assert (acme_latest.size, globex_latest.size) == (7, 3)


def test_update_from_the_apis_consistency_body(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, tmp_path: Path
) -> None:
    watcher = _monitor(verifiers, tmp_path)
    watcher.update(ORIGIN, honest.note(5))

    def body(log: CoreLog, first: int, second: int) -> dict[str, object]:
        return {
            "first": first,
            "second": second,
            "proof": [base64.b64encode(h).decode() for h in log.proof(first, second)],
            "checkpoint": log.note(second).decode(),
        }

    assert watcher.update_from_api(ORIGIN, body(honest, 5, 9)).checkpoint.size == 9
    with pytest.raises(LogForkError):
        watcher.update_from_api(ORIGIN, body(forked, 9, 20))
    for broken in (
        {**body(honest, 9, 20), "first": "9"},
        {**body(honest, 9, 20), "second": 19},
        {**body(honest, 9, 20), "proof": ["%%"]},
        {**body(honest, 9, 20), "checkpoint": None},
    ):
        with pytest.raises(ProofError):
            watcher.update_from_api(ORIGIN, broken)
    with pytest.raises(monitor.StaleProofError):  # a proof from a size no longer remembered: no fork
        watcher.update_from_api(ORIGIN, body(honest, 5, 20))
    assert watcher.update_from_api(ORIGIN, body(honest, 9, 20)).checkpoint.size == 20


def test_the_store_is_compare_and_swap(
    verifiers: list[NoteVerifier], honest: CoreLog, tmp_path: Path
) -> None:
    for store in (MemoryStore(), JSONFileStore(tmp_path / "s.json")):
        store.swap(ORIGIN, None, b"a")
        with pytest.raises(StoreConflictError):
            store.swap(ORIGIN, None, b"b")
        with pytest.raises(StoreConflictError):
            store.swap(ORIGIN, b"b", b"c")
        store.swap(ORIGIN, b"a", b"c")
        assert store.load(ORIGIN) == b"c"


class RacingStore(MemoryStore):
    """Another monitor stores a newer checkpoint between this one's read and its write."""

    def __init__(self, newer: bytes) -> None:
        super().__init__()
        self.newer: bytes | None = newer

    def swap(self, origin: str, old: bytes | None, new: bytes) -> None:
        if self.newer is not None and old is not None:
            super().swap(origin, old, self.newer)
            self.newer = None
        super().swap(origin, old, new)


def test_a_racing_writer_is_checked_against_not_overwritten(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog
) -> None:
    store = RacingStore(newer=forked.note(20))
    watcher = LogMonitor(verifiers, store=store)
    watcher.update(ORIGIN, honest.note(5))
    # Ours (honest, 9) loses the race to a forked 20: it is judged against that, and refused.
    with pytest.raises(LogForkError) as caught:
        watcher.update(ORIGIN, honest.note(9), honest.proof(5, 9))
    assert caught.value.reason == "smaller"
    assert store.load(ORIGIN) == forked.note(20)


def test_threads_sharing_a_file_lose_no_update(
    verifiers: list[NoteVerifier], honest: CoreLog, tmp_path: Path
) -> None:
    path = tmp_path / "shared.json"
    LogMonitor(verifiers, path=path).update(ORIGIN, honest.note(5))
    errors: list[BaseException] = []

    def follow(size: int) -> None:
        try:
            watcher = LogMonitor(verifiers, path=path)
            latest = watcher.latest(ORIGIN)
            assert latest is not None
            if latest.size < size:  # the proof is fetched for the size remembered when it is checked
                watcher.update(ORIGIN, honest.note(size), honest.proof)
        except LogForkError as exc:  # an older size than another thread stored: refused, not lost
            if exc.reason != "smaller":
                errors.append(exc)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=follow, args=(size,)) for size in (9, 12, 20, 15, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    latest = LogMonitor(verifiers, path=path).latest(ORIGIN)
    assert latest is not None
    assert latest.size == 20


def test_a_corrupt_store_file_is_refused_not_overwritten(
    verifiers: list[NoteVerifier], tmp_path: Path
) -> None:
    path = tmp_path / "checkpoints.json"
    for content in (
        b"{",
        b"[]",
        b'{"format": "other", "logs": {}}',
        b'{"format": "reliquary-sdk-checkpoints/v1"}',
    ):
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a checkpoint store"):
            LogMonitor(verifiers, path=path).latest(ORIGIN)
        assert path.read_bytes() == content


def test_the_monitor_needs_one_store() -> None:
    with pytest.raises(ValueError, match="a store or a path"):
        LogMonitor([])
    with pytest.raises(ValueError, match="a store or a path"):
        LogMonitor([], store=MemoryStore(), path="x.json")
