"""What an auditor reads from a tenant's log, without any right to change it or to sign for it.

``AuditReader`` serves the latest signed checkpoint exactly as published, entries with inclusion
proofs, consistency proofs between tree sizes, the keys that verify checkpoints and attestation chains,
and an item's decisions (``reliquary.audit.index``). It works over the log's storage ports and the
published public keys alone: it holds no checkpoint signing key and makes no KMS call, so a function
that only reads (the API) needs no right to the root of trust.

Storage is not trusted to be what the signed checkpoint says. Before serving anything, the reader opens
the stored checkpoint with the published verifier keys (every key must have signed, and the origin must
be the tenant's log), and checks every proof it serves against the checkpoint's signed root: a proof for
a smaller tree is checked against that tree's root, itself proved consistent with the signed one. A
checkpoint, tile or entry bundle altered in storage is refused with ``LogInconsistentError``, never
served. The index is a finding aid: the entry a row names, with its proof, is the evidence.

Sizes and indexes are the caller's: impossible ones are ``BadIndexError`` (400) naming the valid range,
never the value given. A tenant whose log has no checkpoint yet has nothing to prove against:
``checkpoint_text``, ``entry`` and ``consistency`` raise ``NotFoundError``, and ``item_decisions``
answers an empty page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reliquary.audit import merkle
from reliquary.audit.anchor import Anchor, AnchorEntry, Block
from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS, Checkpoint, open_checkpoint
from reliquary.audit.index import MAX_PAGE, DecisionIndex, DecisionPage, decode_cursor, encode_cursor
from reliquary.audit.log import TransparencyLog
from reliquary.audit.note import NoteVerifier, Policy, is_valid_key_name
from reliquary.audit.records import CheckpointAnchorConfirmedRecord, CheckpointAnchorRecord, decode_record
from reliquary.audit.service import StoredCheckpoint
from reliquary.crypto.scope import validate_id
from reliquary.crypto.signing import VerifyingKey
from reliquary.errors import (
    BadIndexError,
    CheckpointError,
    ConfigurationError,
    InvalidRequestError,
    LogInconsistentError,
    NotFoundError,
    ProofError,
)

if TYPE_CHECKING:
    from reliquary.vaults.ports import SigningKeyStore

DEFAULT_PAGE = 50
DEFAULT_ANCHORS = 20
MAX_ANCHORS = 100
MAX_OPENED = 1024  # tenants whose latest verified checkpoint a reader keeps


class LatestCheckpoint(Protocol):
    """The read side of ``CheckpointStore``: the latest published checkpoint of a log."""

    def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None: ...


class AnchorIndex(Protocol):
    """Where a log's anchors' records sit (``reliquary.audit.anchor.AnchorEntry``), newest first."""

    def anchor_entries(self, log_id: str, *, limit: int) -> list[AnchorEntry]: ...


@dataclass(frozen=True, slots=True)
class EntryProof:
    """Entry ``index`` and its inclusion proof in the tree of ``tree_size``. ``checkpoint`` is the signed
    note of that tree when it is the latest checkpoint's; for a smaller tree, the caller checks the proof
    against the root of the checkpoint of that size it holds."""

    index: int
    tree_size: int
    entry: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The proof that the tree of ``new_size`` extends the tree of ``old_size``; ``checkpoint`` as in
    ``EntryProof``, for ``new_size``."""

    old_size: int
    new_size: int
    proof: tuple[bytes, ...]
    checkpoint: str | None


class PublishedCheckpointKeys:
    """The checkpoint keys' public halves as stored beside their wrapped secrets (``CHECKPOINT`` rows),
    one per algorithm of ``CHECKPOINT_ALGORITHMS``, in that order, under the key name ``name``.

    Nothing is unwrapped, so nothing here vouches for the rows: the audit-append function does, at each
    cold start (the root of trust must unwrap each secret under a context naming its public key, and the
    key must sign a probe), and refuses to start on an altered row. A public key swapped in storage makes
    every checkpoint fail to open under it, which ``AuditReader`` refuses to serve. Read until all the keys
    exist (the first start of audit-append creates them), then kept: they never change."""

    def __init__(self, store: SigningKeyStore, name: str) -> None:
        self._store = store
        self._name = name
        self._keys: tuple[NoteVerifier, ...] | None = None

    def __call__(self) -> tuple[NoteVerifier, ...]:
        if self._keys is not None:
            return self._keys
        stored = {key.algorithm: key.public_key for key in self._store.list()}
        try:
            keys = tuple(
                NoteVerifier(self._name, VerifyingKey(a, stored[a.value]))
                for a in CHECKPOINT_ALGORITHMS
                if a.value in stored
            )
        except InvalidRequestError as exc:  # a public key of the wrong length
            raise LogInconsistentError("a stored checkpoint key is malformed") from exc
        if len(keys) == len(CHECKPOINT_ALGORITHMS):
            self._keys = keys
        return keys


def _count(value: object, field: str) -> int:
    # Sizes and indexes come from callers: a bool or a float is not one.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{field} is an integer", field=field)
    return value


class AuditReader:
    def __init__(
        self,
        log: TransparencyLog,
        checkpoints: LatestCheckpoint,
        index: DecisionIndex,
        *,
        origin_prefix: str,
        verifiers: Callable[[], Sequence[NoteVerifier]],
        stage_keys: Callable[[], list[dict[str, str]]],
        anchors: AnchorIndex | None = None,
    ) -> None:
        """``log`` is only read (its tiles and head); ``verifiers`` gives the published checkpoint keys
        and ``stage_keys`` the published stage keys, as ``get_checkpoint`` publishes them; ``anchors``
        finds the checkpoint anchors' records (``anchors``)."""
        if not is_valid_key_name(origin_prefix) or origin_prefix.endswith("/"):
            raise InvalidRequestError("the origin prefix is a key name without a trailing '/'")
        self._log = log
        self._checkpoints = checkpoints
        self._index = index
        self._prefix = origin_prefix
        self._verifiers = verifiers
        self._stage_keys = stage_keys
        self._anchors = anchors
        self._opened: dict[str, tuple[bytes, Checkpoint]] = {}  # the last checkpoint verified, per log
        self._lock = threading.Lock()

    # --- keys ------------------------------------------------------------------------------------
    def origin(self, tenant_id: str) -> str:
        """The checkpoint origin of a tenant's log: ``<origin prefix>/<tenant id>``."""
        return f"{self._prefix}/{validate_id('tenant_id', tenant_id)}"

    def verifier_keys(self) -> list[str]:
        """The signed-note verifier keys (``name+keyid+base64``) of every checkpoint; empty before the
        audit-append function's first start created them."""
        return [v.to_vkey() for v in self._verifiers()]

    def stage_keys(self) -> list[dict[str, str]]:
        """The stage keys that verify the decisions' attestation chains (``StageKeys.from_json``)."""
        return self._stage_keys()

    # --- the checkpoint --------------------------------------------------------------------------
    def checkpoint_text(self, tenant_id: str) -> str:
        """The latest signed checkpoint, exactly as published (a C2SP signed note, UTF-8 text)."""
        stored, _ = self._latest(validate_id("tenant_id", tenant_id))
        return stored.note.decode("utf-8")

    def size(self, tenant_id: str) -> int:
        """The latest checkpoint's tree size (``NotFoundError`` before the first checkpoint)."""
        _, signed = self._latest(validate_id("tenant_id", tenant_id))
        return signed.size

    def _latest(self, log_id: str) -> tuple[StoredCheckpoint, Checkpoint]:
        stored = self._checkpoints.latest_checkpoint(log_id)
        if stored is None:
            raise NotFoundError("the log has no checkpoint yet")
        cached = self._opened.get(log_id)
        if cached is not None and cached[0] == stored.note:
            return stored, cached[1]
        verifiers = tuple(self._verifiers())
        if not verifiers:
            raise LogInconsistentError("a checkpoint is stored but no checkpoint key is published")
        try:
            checkpoint = open_checkpoint(
                stored.note, verifiers, origin=self.origin(log_id), required=Policy.all_of(*verifiers)
            )
        except (CheckpointError, InvalidRequestError) as exc:
            raise LogInconsistentError(
                "the stored checkpoint does not verify under the published keys", log_id=log_id
            ) from exc
        if checkpoint.size != stored.size:
            raise LogInconsistentError("the stored checkpoint's size is not its note's", log_id=log_id)
        # A signed checkpoint's tree was integrated before it was signed: its tiles are all written.
        self._log.note_integrated(log_id, checkpoint.size)
        with self._lock:  # a local server reads from several threads
            self._opened.pop(log_id, None)
            while len(self._opened) >= MAX_OPENED:  # the oldest first: a few KB per tenant
                self._opened.pop(next(iter(self._opened)))
            self._opened[log_id] = (stored.note, checkpoint)
        return stored, checkpoint

    # --- proofs ----------------------------------------------------------------------------------
    def entry(self, tenant_id: str, index: int, tree_size: int | None = None) -> EntryProof:
        """Entry ``index`` with its inclusion proof in the latest checkpoint's tree, or in the tree of
        ``tree_size`` (at most the latest checkpoint's size)."""
        log_id = validate_id("tenant_id", tenant_id)
        index = _count(index, "index")
        size = None if tree_size is None else _count(tree_size, "tree_size")
        stored, signed = self._latest(log_id)
        size = signed.size if size is None else size
        if not 0 <= index < size <= signed.size:
            raise BadIndexError(
                "an entry needs 0 <= index < tree_size <= the latest checkpoint's size", tree_size=signed.size
            )
        entry = self._log.entry(log_id, index, size)
        proof = self._log.inclusion_proof(log_id, index, size)
        root = self._root(log_id, size, signed)
        self._check(lambda: merkle.verify_inclusion(index, size, merkle.SHA256.hash_leaf(entry), proof, root))
        return EntryProof(index, size, entry, tuple(proof), self._note_if(stored, size))

    def consistency(self, tenant_id: str, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """The consistency proof from the tree of ``old_size`` to the latest checkpoint's tree, or to
        the tree of ``new_size`` (``old_size <= new_size <=`` the latest checkpoint's size)."""
        log_id = validate_id("tenant_id", tenant_id)
        old = _count(old_size, "old_size")
        new = None if new_size is None else _count(new_size, "new_size")
        stored, signed = self._latest(log_id)
        new = signed.size if new is None else new
        if not 0 <= old <= new <= signed.size:
            raise BadIndexError(
                "a consistency proof needs 0 <= old_size <= new_size <= the latest checkpoint's size",
                tree_size=signed.size,
            )
        proof = self._log.consistency_proof(log_id, old, new)
        new_root = self._root(log_id, new, signed)
        _, old_root = self._log.root(log_id, old)
        self._check(lambda: merkle.verify_consistency(old, new, old_root, new_root, proof))
        return ConsistencyProof(old, new, tuple(proof), self._note_if(stored, new))

    def _root(self, log_id: str, size: int, signed: Checkpoint) -> bytes:
        """The root of the tree of ``size``: the signed one, or one from tiles proved consistent with it."""
        if size == signed.size:
            return signed.root_hash
        _, root = self._log.root(log_id, size)
        proof = self._log.consistency_proof(log_id, size, signed.size)
        self._check(lambda: merkle.verify_consistency(size, signed.size, root, signed.root_hash, proof))
        return root

    @staticmethod
    def _check(verify: Callable[[], Any]) -> None:
        try:
            verify()
        except ProofError as exc:
            raise LogInconsistentError(
                "the log's stored tiles or entries do not match its checkpoint"
            ) from exc

    @staticmethod
    def _note_if(stored: StoredCheckpoint, size: int) -> str | None:
        return stored.note.decode("utf-8") if size == stored.size else None

    # --- an item's decisions ---------------------------------------------------------------------
    def item_decisions(
        self,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        *,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> DecisionPage:
        """The decisions logged about one item, in log order, as far as the latest checkpoint covers
        them (so the entry of each can be read with its proof); at most ``limit`` (1 to ``MAX_PAGE``)."""
        log_id = validate_id("tenant_id", tenant_id)
        validate_id("vault_id", vault_id)
        validate_id("item_id", item_id)
        limit = _count(limit, "limit")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit is 1 to {MAX_PAGE}", field="limit")
        first = 0 if cursor is None else decode_cursor(cursor, log_id, vault_id, item_id) + 1
        try:
            _, signed = self._latest(log_id)
        except NotFoundError:
            return DecisionPage((), None)
        rows = self._index.item_decisions(
            log_id, vault_id, item_id, first=first, end=signed.size, limit=limit + 1
        )
        page = tuple(rows[:limit])
        more = len(rows) > limit
        return DecisionPage(page, encode_cursor(log_id, vault_id, item_id, page[-1].index) if more else None)

    # --- anchored checkpoints --------------------------------------------------------------------
    def anchors(self, tenant_id: str, *, limit: int = DEFAULT_ANCHORS) -> list[Anchor]:
        """The log's checkpoint anchors, newest first, at most ``limit`` (1 to ``MAX_ANCHORS``), each read
        from its ``checkpoint_anchor`` entry (with the block of its ``checkpoint_anchor_confirmed`` one)
        and proved in the latest checkpoint: the rows that find them are never the evidence. Empty when
        nothing is anchored."""
        log_id = validate_id("tenant_id", tenant_id)
        limit = _count(limit, "limit")
        if not 1 <= limit <= MAX_ANCHORS:
            raise InvalidRequestError(f"limit is 1 to {MAX_ANCHORS}", field="limit")
        if self._anchors is None:
            raise ConfigurationError("this reader has no anchor index")
        try:
            _, signed = self._latest(log_id)
        except NotFoundError:
            return []
        found = []
        for row in self._anchors.anchor_entries(log_id, limit=limit):
            if row.log_index >= signed.size:
                continue  # logged after the latest checkpoint (its writer stopped before publishing)
            record = decode_record(self.entry(log_id, row.log_index).entry)
            if not isinstance(record, CheckpointAnchorRecord) or record.tree_size != row.tree_size:
                raise LogInconsistentError("an anchor row does not name an anchor's entry", log_id=log_id)
            block = None
            if row.confirmed_index is not None and row.confirmed_index < signed.size:
                confirmed = decode_record(self.entry(log_id, row.confirmed_index).entry)
                if (
                    not isinstance(confirmed, CheckpointAnchorConfirmedRecord)
                    or confirmed.tree_size != record.tree_size
                    or confirmed.locator != record.locator
                ):
                    raise LogInconsistentError("an anchor row does not name its block's entry", log_id=log_id)
                block = Block(confirmed.block_height, confirmed.block_hash)
            found.append(Anchor.of(record, row.log_index, block))
        return found
