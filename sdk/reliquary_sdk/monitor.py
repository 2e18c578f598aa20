"""The client's memory of each tenant log's checkpoints: a log may only grow.

A ``LogMonitor`` remembers, per log origin, the latest checkpoint it accepted (in a pluggable
``CheckpointStore``; ``JSONFileStore`` by default, written atomically). A newer signed checkpoint is
accepted only with a consistency proof that it extends the remembered one; anything else is evidence
that the service shows different clients different logs, and raises ``LogForkError`` with both signed
notes as evidence:

- a checkpoint of the remembered size with another root (``reason="same_size"``);
- a checkpoint smaller than the remembered one (``reason="smaller"``): a log never shrinks;
- a larger checkpoint whose consistency proof fails (``reason="inconsistent"``).

``observe`` takes a checkpoint met in passing (a receipt's), which may be older than the remembered one:
then it must be a prefix of the remembered log (a consistency proof up to it), and the memory stays.

A checkpoint that does not verify with the trusted keys (or names another log) is a ``CheckpointError``
and changes nothing. The first checkpoint seen for a log is trusted on first use, as Go's sumdb client
trusts its configured initial tree. Concurrent monitors sharing a store update it with compare-and-swap.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from reliquary_sdk._verify import VerificationError

try:
    import fcntl
except ImportError:  # not POSIX: the file store then serializes threads, not processes
    fcntl = None  # type: ignore[assignment]
from reliquary_sdk.audit import (
    Checkpoint,
    CheckpointError,
    FalconPolicy,
    NoteVerifier,
    ProofError,
    open_checkpoint,
    verify_consistency,
)

__all__ = [
    "CheckpointStore",
    "JSONFileStore",
    "LogForkError",
    "LogMonitor",
    "MemoryStore",
    "ProofSource",
    "StaleProofError",
    "StoreConflictError",
]

ForkReason = Literal["same_size", "smaller", "inconsistent"]
STORE_FORMAT: Final = "reliquary-sdk-checkpoints/v1"
_MAX_ATTEMPTS: Final = 8


class LogForkError(VerificationError):
    """The log presented is not an extension of the one seen before: the service forked or rolled back
    the log. ``known_note`` and ``presented_note`` are the two signed checkpoints, the evidence to report;
    ``reason`` is ``same_size``, ``smaller`` or ``inconsistent``."""

    code = "log_fork"

    def __init__(
        self,
        message: str,
        *,
        reason: ForkReason,
        origin: str,
        known: Checkpoint,
        known_note: bytes,
        presented: Checkpoint,
        presented_note: bytes,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.origin = origin
        self.known = known
        self.known_note = known_note
        self.presented = presented
        self.presented_note = presented_note


class StaleProofError(ProofError):
    """A consistency proof from another size than the remembered one (the memory moved on): fetch a
    proof from ``LogMonitor.latest(origin).size`` and try again. Not evidence of a fork."""


ProofSource = Callable[[int, int], Sequence[bytes]]


class StoreConflictError(Exception):
    """A ``CheckpointStore.swap`` found another note than the one it was told to replace."""


class CheckpointStore(Protocol):
    """Where a monitor remembers the latest accepted signed checkpoint note of each log origin."""

    def load(self, origin: str) -> bytes | None:
        """The note last stored for ``origin`` (None: none yet)."""
        ...

    def swap(self, origin: str, old: bytes | None, new: bytes) -> None:
        """Store ``new`` for ``origin`` if the stored note is still ``old``; ``StoreConflictError`` if not."""
        ...


class MemoryStore:
    """A ``CheckpointStore`` in memory (for one process's lifetime, or tests)."""

    def __init__(self) -> None:
        self._notes: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load(self, origin: str) -> bytes | None:
        with self._lock:
            return self._notes.get(origin)

    def swap(self, origin: str, old: bytes | None, new: bytes) -> None:
        with self._lock:
            if self._notes.get(origin) != old:
                raise StoreConflictError(origin)
            self._notes[origin] = new


class JSONFileStore:
    """A ``CheckpointStore`` in one JSON file (``{"format", "logs": {origin: note}}``), replaced atomically
    (a temporary file in the same directory, fsynced, then renamed over it) under a lock file, so a crash
    never leaves a torn file and processes sharing the file do not lose each other's updates."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def load(self, origin: str) -> bytes | None:
        with self._locked():
            return self._read().get(origin)

    def swap(self, origin: str, old: bytes | None, new: bytes) -> None:
        with self._locked():
            notes = self._read()
            if notes.get(origin) != old:
                raise StoreConflictError(origin)
            notes[origin] = new
            self._write(notes)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                yield
                return
            fd = os.open(self._path.with_name(self._path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _read(self) -> dict[str, bytes]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            return _parse_store(json.loads(raw))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ValueError(f"{self._path} is not a checkpoint store (refusing to overwrite it)") from None

    def _write(self, notes: Mapping[str, bytes]) -> None:
        document = {
            "format": STORE_FORMAT,
            "logs": {
                origin: base64.b64encode(note).decode("ascii") for origin, note in sorted(notes.items())
            },
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        fd, temporary = tempfile.mkstemp(prefix=self._path.name + ".", suffix=".tmp", dir=self._path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
            raise
        with contextlib.suppress(OSError):  # make the rename durable where directories can be fsynced
            directory = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


def _parse_store(document: Any) -> dict[str, bytes]:
    if not isinstance(document, dict) or document.get("format") != STORE_FORMAT:
        raise ValueError("not a checkpoint store")
    logs = document["logs"]
    if not isinstance(logs, dict):
        raise TypeError("not a checkpoint store")
    return {origin: base64.b64decode(note, validate=True) for origin, note in logs.items()}


def _remembered(note: bytes) -> Checkpoint:
    """The checkpoint in a note the store holds (verified when it was accepted; the store is trusted)."""
    split = note.rfind(b"\n\n")
    try:
        return Checkpoint.parse(note[: split + 1].decode("utf-8"))
    except (UnicodeDecodeError, CheckpointError):
        raise ValueError("the checkpoint store holds a malformed note") from None


@dataclass(frozen=True, slots=True)
class Update:
    """What ``LogMonitor.update`` did: the checkpoint now remembered, and the one before (if any)."""

    checkpoint: Checkpoint
    previous: Checkpoint | None

    @property
    def grew(self) -> bool:
        return self.previous is None or self.checkpoint.size > self.previous.size


class LogMonitor:
    """Accepts a tenant log's signed checkpoints only as extensions of the last one it accepted.

    ``verifiers`` are the trusted note keys (``GET /v1/audit/keys``'s ``verifier_keys``), ``required`` the
    keys that must all have signed and ``falcon`` the Falcon-512 policy (see ``audit.open_note``). The
    store defaults to ``JSONFileStore(path)``."""

    def __init__(
        self,
        verifiers: Iterable[NoteVerifier],
        *,
        store: CheckpointStore | None = None,
        path: str | os.PathLike[str] | None = None,
        required: Iterable[NoteVerifier] = (),
        falcon: FalconPolicy = "check",
    ) -> None:
        if store is None:
            if path is None:
                raise ValueError("a store or a path for the JSON file store")
            store = JSONFileStore(path)
        elif path is not None:
            raise ValueError("a store or a path, not both")
        self._verifiers = list(verifiers)
        self._required = list(required)
        self._falcon: FalconPolicy = falcon
        self.store = store

    def latest(self, origin: str) -> Checkpoint | None:
        """The checkpoint last accepted for ``origin``."""
        note = self.store.load(origin)
        return None if note is None else _remembered(note)

    def update(
        self,
        origin: str,
        note: bytes,
        proof: Sequence[bytes] | ProofSource = (),
        *,
        proof_from: int | None = None,
    ) -> Update:
        """Accept the signed checkpoint ``note`` of ``origin``'s log if it extends the remembered one.

        ``proof`` is the RFC 9162 consistency proof from the remembered size to the note's (unused for the
        first checkpoint and for the same one again), or a callable ``(old_size, new_size) -> proof`` that
        fetches it for whatever size is remembered when it is checked (safe when monitors share a store).
        ``proof_from``, the size a fixed proof starts from: if the memory holds another size by then,
        ``StaleProofError`` (fetch the proof again) rather than a fork. ``CheckpointError`` if the note
        does not verify; ``LogForkError`` if it verifies but contradicts what was seen before."""
        presented = open_checkpoint(
            note, self._verifiers, origin=origin, required=self._required, falcon=self._falcon
        )
        return self._update_opened(origin, note, presented, proof, proof_from)

    def _update_opened(
        self,
        origin: str,
        note: bytes,
        presented: Checkpoint,
        proof: Sequence[bytes] | ProofSource,
        proof_from: int | None,
    ) -> Update:
        """``update`` once ``note`` verified (``presented``): its signatures are checked only once."""
        for _ in range(_MAX_ATTEMPTS):
            known_note = self.store.load(origin)
            if known_note is None:
                try:
                    self.store.swap(origin, None, note)
                except StoreConflictError:
                    continue
                return Update(presented, None)
            known = _remembered(known_note)
            fork = functools.partial(
                LogForkError,
                origin=origin,
                known=known,
                known_note=known_note,
                presented=presented,
                presented_note=note,
            )
            if presented.size == known.size:
                if presented.root_hash != known.root_hash:
                    raise fork("two checkpoints of one size with different roots", reason="same_size")
                return Update(known, known)
            if presented.size < known.size:
                raise fork("a checkpoint smaller than one seen before", reason="smaller")
            if callable(proof):
                path = proof(known.size, presented.size)
            elif proof_from is not None and proof_from != known.size:
                raise StaleProofError("the proof starts from another size than the one remembered")
            else:
                path = proof
            try:
                verify_consistency(known.size, presented.size, known.root_hash, presented.root_hash, path)
            except ProofError:
                raise fork(
                    "the checkpoint does not extend the one seen before", reason="inconsistent"
                ) from None
            try:
                self.store.swap(origin, known_note, note)
            except StoreConflictError:
                continue  # another monitor stored one meanwhile: check against that one
            return Update(presented, known)
        raise StoreConflictError(origin)

    def observe(self, origin: str, note: bytes, proof: ProofSource) -> Update:
        """Check a checkpoint seen in passing (a receipt's, which may be older than the latest) against the
        remembered one: a newer one is accepted as ``update`` accepts it; an older one must be a prefix of
        the remembered log (``proof(presented size, remembered size)``, a consistency proof) and leaves
        the memory as it is. ``proof`` is called only when a proof is needed. ``CheckpointError`` if the
        note does not verify; ``LogForkError`` if it contradicts what was seen before."""
        presented = open_checkpoint(
            note, self._verifiers, origin=origin, required=self._required, falcon=self._falcon
        )
        known_note = self.store.load(origin)
        if known_note is None or presented.size >= (known := _remembered(known_note)).size:
            return self._update_opened(origin, note, presented, proof, None)
        try:
            path = proof(presented.size, known.size)
            verify_consistency(presented.size, known.size, presented.root_hash, known.root_hash, path)
        except ProofError:
            raise LogForkError(
                "an earlier checkpoint that the one seen before does not extend",
                reason="inconsistent",
                origin=origin,
                known=known,
                known_note=known_note,
                presented=presented,
                presented_note=note,
            ) from None
        return Update(known, known)

    def update_from_api(self, origin: str, consistency: Mapping[str, Any]) -> Update:
        """``update`` with the body of ``GET /v1/audit/consistency?first=<latest size>`` (its
        ``checkpoint``, the signed note of ``second``, and ``proof``, base64 hashes)."""
        note, proof, first = consistency.get("checkpoint"), consistency.get("proof"), consistency.get("first")
        if not isinstance(note, str) or not isinstance(proof, list) or not isinstance(first, int):
            raise ProofError("not a consistency proof with its checkpoint")
        hashes = []
        for item in proof:
            try:
                hashes.append(base64.b64decode(item, validate=True) if isinstance(item, str) else b"")
            except (binascii.Error, ValueError):
                raise ProofError("a proof hash is not base64") from None
        if Checkpoint.parse(note[: note.rfind("\n\n") + 1]).size != consistency.get("second"):
            raise ProofError("the proof's second size is not its checkpoint's")
        return self.update(origin, note.encode("utf-8"), hashes, proof_from=first)
