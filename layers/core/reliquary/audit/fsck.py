"""fsck for one transparency log: rebuild every tile from the entries and check the signed checkpoints.

``verify_log`` reads a log's entry bundles in order, one at a time, hashes their entries and rebuilds the
tiles above them (c2sp.org/tlog-tiles), comparing every stored tile with the rebuilt one byte for byte. It
opens every signed checkpoint, checks its root against the rebuilt tree and a consistency proof (built from
the rebuilt tree) from the checkpoint before it, and compares the log head's right frontier with the tree.
It stops at the first inconsistency and reports it, naming the object at fault, instead of raising. Memory
stays bounded whatever the log's size: one bundle, one row of at most 256 hashes per tile level, the compact
range and the few nodes the consistency proofs need.

Blame. When a bundle and its level-0 tile disagree, one of the two is wrong: the bundle is blamed when other
evidence vouches for the stored tile (its hash in the level-1 tile above, or a checkpoint or the head whose
tree ends inside the bundle), the tile otherwise. A higher tile that differs from the row rebuilt below it
is blamed, since everything below it was found consistent. So one corrupted object is named exactly.

Order, which decides the "first" problem: (1) before any storage is read, the checkpoint notes in the order
given (signatures and origin), then their sizes (at most the checked size), then the head's shape and size;
(2) in leaf order, each bundle with its level-0 tile, each full tile as soon as it is rebuilt, and each
checkpoint (root, then consistency with the one before) and the head as soon as the tree reaches their
size; (3) the partial tiles above level 0 on the right edge, bottom up.

Leaf hashing and perfect-subtree roots use the native library (``reliquary_native.merkle``) when it loads,
the pure-Python RFC 9162 code otherwise (or when ``native=False``); both give the same report.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reliquary.audit import merkle
from reliquary.audit.checkpoint import MAX_TREE_SIZE, open_checkpoint
from reliquary.audit.log import LogHead, TileStore
from reliquary.audit.merkle import HASH_SIZE, SHA256, NodeID
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.tiles import TILE_HEIGHT, TILE_WIDTH, TileRef, decode_bundle, decode_tile
from reliquary.errors import (
    CheckpointError,
    InvalidRequestError,
    InvalidSignatureError,
    NativeLibraryError,
    ProofError,
    ReliquaryError,
)

__all__ = ["FsckReport", "Problem", "verify_log"]

HEAD = "head"
"""The ``Problem.path`` of a problem with the log head."""

_SIZE_LINE = re.compile(rb"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, slots=True)
class Problem:
    """An inconsistency: the object at fault (a tile or bundle path, ``checkpoint@<size>`` or ``head``)."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class FsckReport:
    """What ``verify_log`` checked, and the first problem it found (None when the log is sound)."""

    log_id: str
    size: int
    """The size of the tree checked."""
    entries_checked: int
    """Entries whose bundle matched its level-0 tile."""
    tiles_checked: int
    """Tiles and entry bundles found consistent (``len(tiles_for_size(size))`` for a sound log)."""
    checkpoints_checked: int
    """Checkpoints whose signatures, root and consistency with the previous one were verified."""
    root_hash: bytes | None
    """The root of the tree rebuilt from the entries; None when the check stopped before the last entry."""
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly: the root hash in base64, as a checkpoint writes it."""
        return {
            "log_id": self.log_id,
            "ok": self.ok,
            "size": self.size,
            "entries_checked": self.entries_checked,
            "tiles_checked": self.tiles_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "root_hash": None if self.root_hash is None else _b64(self.root_hash),
            "problem": None
            if self.problem is None
            else {"path": self.problem.path, "message": self.problem.message},
        }


def verify_log(
    tile_store: TileStore,
    log_id: str,
    *,
    size: int | None = None,
    checkpoints: Sequence[bytes] = (),
    verifiers: Sequence[NoteVerifier] = (),
    origin: str | None = None,
    required: Policy | None = None,
    head: LogHead | None = None,
    progress: Callable[[int, int], None] | None = None,
    native: bool | None = None,
) -> FsckReport:
    """Check the tree of ``size`` leaves of log ``log_id`` (see the module docstring) and report.

    ``size`` defaults to ``head.integrated`` when a head is given, else to the largest checkpoint's size.
    ``checkpoints`` are signed notes, opened with ``verifiers``/``required`` and expected from ``origin``.
    ``head`` (the log store's): its size must not be below ``size``, and its frontier must match the tree
    when it is not beyond it. ``progress(entries_done, size)`` is called after each bundle. ``native``: None
    uses the native library when it loads, False never, True requires it (NativeLibraryError otherwise).

    Inconsistencies are reported, never raised; bad arguments raise ``InvalidRequestError``, and storage
    errors propagate as the tile store raises them.
    """
    _check_arguments(
        tile_store=tile_store,
        log_id=log_id,
        size=size,
        head=head,
        progress=progress,
        native=native,
    )
    _check_checkpoint_arguments(
        checkpoints=checkpoints, verifiers=verifiers, origin=origin, required=required
    )
    fsck = _Fsck(tile_store, log_id, hashing=_hashing(native), head=head, progress=progress)
    opened, problem = _open_checkpoints(checkpoints, verifiers, origin or "", required)
    if size is None:
        size = head.integrated if head is not None else max((s.size for _, s in opened), default=0)
    if problem is None:
        try:
            fsck.run(size, opened)
        except _ProblemError as found:
            problem = found.problem
    return FsckReport(
        log_id=log_id,
        size=size,
        entries_checked=fsck.entries,
        tiles_checked=fsck.tiles,
        checkpoints_checked=fsck.checkpoints,
        root_hash=fsck.root,
        problem=problem,
    )


# --- hashing: native or pure ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Hashing:
    perfect_root: Callable[[bytes], bytes]
    """The root of a perfect subtree from its 2**k concatenated hashes (leaves or nodes of one level)."""
    bundle_leaf_hashes: Callable[[bytes, TileRef], bytes]
    """The leaf hashes of a stored entry bundle's entries (ValueError or ReliquaryError if malformed)."""


def _pure_perfect_root(hashes: bytes) -> bytes:
    row = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
    while len(row) > 1:
        row = [SHA256.hash_children(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def _pure_bundle_leaf_hashes(data: bytes, ref: TileRef) -> bytes:
    return b"".join([SHA256.hash_leaf(entry) for entry in decode_bundle(data, ref)])


_PURE = _Hashing(_pure_perfect_root, _pure_bundle_leaf_hashes)


def _native_hashing() -> _Hashing | None:
    try:
        from reliquary_native import merkle as native_merkle  # noqa: PLC0415  (optional layer, loaded lazily)
    except ImportError:
        return None
    if not native_merkle.available():
        return None

    def bundle_leaf_hashes(data: bytes, ref: TileRef) -> bytes:
        # Parsed and hashed in C: the bundle's entries are never unpacked into Python objects.
        try:
            return native_merkle.hash_bundle(data, ref.width)
        except ValueError:
            decode_bundle(data, ref)  # names the problem exactly as the pure path does
            raise

    return _Hashing(native_merkle.root, bundle_leaf_hashes)


def _hashing(native: bool | None) -> _Hashing:
    if native is False:
        return _PURE
    chosen = _native_hashing()
    if chosen is not None:
        return chosen
    if native:
        raise NativeLibraryError("the native Merkle library (libreliquary_merkle.so) is not available")
    return _PURE


# --- arguments, checkpoint notes, the head -------------------------------------------------------------
def _check_arguments(
    *, tile_store: object, log_id: object, size: object, head: object, progress: object, native: object
) -> None:
    if not callable(getattr(tile_store, "read", None)):
        raise InvalidRequestError("verify_log needs a tile store", field="tile_store")
    if not isinstance(log_id, str) or not log_id:
        raise InvalidRequestError("the log id is a non-empty str", field="log_id")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE
    ):
        raise InvalidRequestError("the size is an integer from 0 to 2**64 - 1", field="size")
    if head is not None and not isinstance(head, LogHead):
        raise InvalidRequestError("head is a LogHead", field="head")
    if progress is not None and not callable(progress):
        raise InvalidRequestError("progress is a callable", field="progress")
    if native is not None and not isinstance(native, bool):
        raise InvalidRequestError("native is None, True or False", field="native")


def _check_checkpoint_arguments(
    *, checkpoints: object, verifiers: object, origin: object, required: object
) -> None:
    if isinstance(checkpoints, bytes | bytearray | str) or not isinstance(checkpoints, Sequence):
        raise InvalidRequestError("checkpoints is a sequence of signed notes", field="checkpoints")
    if not all(isinstance(note, bytes) for note in checkpoints):
        raise InvalidRequestError("every checkpoint is a signed note in bytes", field="checkpoints")
    if not isinstance(verifiers, Sequence) or not all(isinstance(v, NoteVerifier) for v in verifiers):
        raise InvalidRequestError("verifiers is a sequence of NoteVerifier", field="verifiers")
    if required is not None and not isinstance(required, Policy):
        raise InvalidRequestError("required is a Policy", field="required")
    if checkpoints:
        if not isinstance(origin, str) or not origin:
            raise InvalidRequestError("checking checkpoints needs the log's origin", field="origin")
        if not verifiers and (required is None or not required.keys):
            raise InvalidRequestError("checking checkpoints needs their verifier keys", field="verifiers")


class _ProblemError(Exception):
    """Stops the check at the first problem (internal: ``verify_log`` returns it in the report)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.problem = Problem(path, message)


@dataclass(frozen=True, slots=True)
class _Signed:
    """A checkpoint whose signatures verified."""

    size: int
    root: bytes

    @property
    def label(self) -> str:
        return f"checkpoint@{self.size}"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _claimed_size(note: bytes) -> int | None:
    """The tree size a note's second line claims, read without verifying anything."""
    lines = note.split(b"\n", 2)
    if len(lines) >= 2 and _SIZE_LINE.fullmatch(lines[1]):
        return int(lines[1])
    return None


def _open_checkpoints(
    notes: Sequence[bytes], verifiers: Sequence[NoteVerifier], origin: str, required: Policy | None
) -> tuple[list[tuple[int, _Signed]], Problem | None]:
    """The notes that open, with their positions in ``notes``, and a problem for the first that does not."""
    opened: list[tuple[int, _Signed]] = []
    problem: Problem | None = None
    for position, note in enumerate(notes):
        try:
            checkpoint = open_checkpoint(note, verifiers, origin=origin, required=required)
        except (CheckpointError, InvalidSignatureError) as exc:
            if problem is None:
                claimed = _claimed_size(note)
                path = f"checkpoint@{claimed}" if claimed is not None else f"checkpoint#{position}"
                problem = Problem(path, f"checkpoint #{position} does not verify: {exc.message}")
            continue
        opened.append((position, _Signed(checkpoint.size, checkpoint.root_hash)))
    return opened, problem


def _check_head(head: LogHead, size: int) -> None:
    if (
        isinstance(head.size, bool)
        or not isinstance(head.size, int)
        or not isinstance(head.integrated, int)
        or not 0 <= head.integrated <= head.size
    ):
        raise _ProblemError(HEAD, f"the head (size {head.size}, integrated {head.integrated}) is malformed")
    if len(head.frontier) != head.size.bit_count() or not all(
        isinstance(h, bytes) and len(h) == HASH_SIZE for h in head.frontier
    ):
        raise _ProblemError(HEAD, "the head's frontier is not one 32-byte hash per set bit of its size")
    if head.size < size:
        raise _ProblemError(
            HEAD, f"the log head (size {head.size}) is behind the checked tree of size {size}"
        )


# --- the check -----------------------------------------------------------------------------------------
def _merge(frontier: list[tuple[int, bytes]], level: int, digest: bytes) -> None:
    """Append the perfect subtree (``level``, ``digest``) that starts where ``frontier`` ends."""
    while frontier and frontier[-1][0] == level:
        digest = SHA256.hash_children(frontier.pop()[1], digest)
        level += 1
    frontier.append((level, digest))


def _first_difference(a: bytes, b: bytes) -> int:
    """The index of the first 32-byte hash that differs between two rows of equal length."""
    for i in range(0, min(len(a), len(b)), HASH_SIZE):
        if a[i : i + HASH_SIZE] != b[i : i + HASH_SIZE]:
            return i // HASH_SIZE
    return min(len(a), len(b)) // HASH_SIZE


def _verdict(stored: object, rebuilt: object, expected: object) -> bool | None:
    """True when ``expected`` vouches for the stored side only, False for the rebuilt side only."""
    if stored == expected != rebuilt:
        return True
    if rebuilt == expected != stored:
        return False
    return None


class _Fsck:
    def __init__(
        self,
        store: TileStore,
        log_id: str,
        *,
        hashing: _Hashing,
        head: LogHead | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self._store = store
        self._log_id = log_id
        self._size = 0
        self._hashing = hashing
        self._head = head
        self._progress = progress
        self._signed: list[_Signed] = []
        self._next = 0  # the next checkpoint (by size) to check against the tree
        # The compact range of the leaves rebuilt so far (always a whole number of full bundles), as
        # (level, hash) largest first, and the rebuilt row of the rightmost tile of each level >= 1.
        self._frontier: list[tuple[int, bytes]] = []
        self._rows: dict[int, list[bytes]] = {}
        # The nodes the consistency proofs need, filled in as the tree is rebuilt; those below level 8 are
        # taken from their bundle's leaf hashes (keyed by bundle index), the others as the range grows.
        self._needed: dict[NodeID, bytes | None] = {}
        self._needed_in_bundle: dict[int, list[NodeID]] = {}
        self.entries = 0
        self.tiles = 0
        self.checkpoints = 0
        self.root: bytes | None = None

    def run(self, size: int, opened: list[tuple[int, _Signed]]) -> None:
        self._size = size
        self._prepare(opened)
        while self._next < len(self._signed) and self._signed[self._next].size == 0:
            self._check_checkpoint([])
        if size == 0:
            self.root = SHA256.empty_root()
        for index in range(-(-size // TILE_WIDTH)):
            self._bundle(index)
        for level in sorted(self._rows):  # the partial tiles of the right edge, bottom up
            if self._rows[level]:
                self._compare_row(level, (size >> (TILE_HEIGHT * level)) >> TILE_HEIGHT, self._rows[level])

    def _prepare(self, opened: list[tuple[int, _Signed]]) -> None:
        """Check what needs no storage (checkpoint sizes, the head) and plan the consistency proofs."""
        for position, checkpoint in opened:
            if checkpoint.size > self._size:
                raise _ProblemError(
                    checkpoint.label,
                    f"checkpoint #{position} is of a tree larger than the checked tree of size {self._size}",
                )
        if self._head is not None:
            _check_head(self._head, self._size)
            if self._head.size > self._size:
                self._head = None  # it covers entries beyond the checked tree: its frontier cannot be checked
        self._signed = sorted((checkpoint for _, checkpoint in opened), key=lambda c: c.size)
        for previous, current in itertools.pairwise(self._signed):
            for element in merkle.consistency_plan(previous.size, current.size):
                for node in element:
                    if node not in self._needed:
                        self._needed[node] = None
                        if node.level < TILE_HEIGHT:
                            self._needed_in_bundle.setdefault(node.begin >> TILE_HEIGHT, []).append(node)

    # --- storage ---
    def _ref(self, level: int | None, index: int) -> TileRef:
        count = self._size if level is None else self._size >> (TILE_HEIGHT * level)
        return TileRef(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH))

    def _read(self, ref: TileRef) -> bytes:
        data = self._store.read(self._log_id, ref.path)
        if data is None:
            what = "entry bundle" if ref.level is None else "tile"
            raise _ProblemError(ref.path, f"the {what} is missing")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _ProblemError(ref.path, f"the store returned a {type(data).__name__}, not bytes")
        return bytes(data)

    def _read_tile(self, ref: TileRef) -> bytes:
        data = self._read(ref)
        try:
            decode_tile(data, ref)
        except (ReliquaryError, ValueError) as exc:
            raise _ProblemError(ref.path, f"the tile does not decode: {exc} ({len(data)} bytes)") from None
        return data

    # --- the tree ---
    def _bundle(self, index: int) -> None:
        bundle = self._ref(None, index)
        first, end = index * TILE_WIDTH, index * TILE_WIDTH + bundle.width
        data = self._read(bundle)
        try:
            leaves = self._hashing.bundle_leaf_hashes(data, bundle)
        except (ReliquaryError, ValueError) as exc:
            raise _ProblemError(bundle.path, f"the entry bundle does not decode: {exc}") from None
        tile = self._ref(0, index)
        stored = self._read_tile(tile)
        if stored != leaves:
            raise self._level0_problem(bundle, tile, leaves, stored)
        self.tiles += 2
        base = list(self._frontier)  # the compact range at `first`
        for node in self._needed_in_bundle.pop(index, ()):
            self._needed[node] = self._node(node, first, leaves)
        if bundle.full:
            self._push(TILE_HEIGHT, self._hashing.perfect_root(leaves), end)
        self.entries = end
        while self._next < len(self._signed) and self._signed[self._next].size <= end:
            self._check_checkpoint(self._compact(self._signed[self._next].size, base, first, leaves))
        if self._head is not None and first < self._head.size <= end:
            frontier = self._compact(self._head.size, base, first, leaves)
            if tuple(frontier) != tuple(self._head.frontier):
                raise _ProblemError(
                    HEAD,
                    f"the head's frontier is not the compact range of the tree of size {self._head.size}",
                )
        if end == self._size:
            self.root = merkle.fold(self._compact(end, base, first, leaves))
        if self._progress is not None:
            self._progress(end, self._size)

    def _node(self, node: NodeID, first: int, row: bytes) -> bytes:
        """The hash of a node inside one bundle from the bundle's (or its tile's) leaf hashes."""
        return self._hashing.perfect_root(
            row[(node.begin - first) * HASH_SIZE : (node.end - first) * HASH_SIZE]
        )

    def _compact(self, size: int, base: list[tuple[int, bytes]], first: int, row: bytes) -> list[bytes]:
        """The compact range hashes of the tree of ``size``, which ends inside the bundle at ``first`` whose
        leaf hashes are ``row``; ``base`` is the compact range at ``first``."""
        frontier = list(base)
        for node in merkle.range_nodes(first, size):
            _merge(frontier, node.level, self._node(node, first, row))
        return [digest for _, digest in frontier]

    def _push(self, level: int, digest: bytes, end: int) -> None:
        """Append a full bundle's subtree to the rebuilt range; keep the nodes it completes."""
        while True:
            self._completed(NodeID(level, (end >> level) - 1), digest)
            if not self._frontier or self._frontier[-1][0] != level:
                break
            digest = SHA256.hash_children(self._frontier.pop()[1], digest)
            level += 1
        self._frontier.append((level, digest))

    def _completed(self, node: NodeID, digest: bytes) -> None:
        if node in self._needed:
            self._needed[node] = digest
        if node.level % TILE_HEIGHT == 0:
            tile_level = node.level // TILE_HEIGHT
            row = self._rows.setdefault(tile_level, [])
            row.append(digest)
            if len(row) == TILE_WIDTH:
                self._compare_row(tile_level, node.index >> TILE_HEIGHT, row)
                row.clear()

    def _compare_row(self, level: int, index: int, row: list[bytes]) -> None:
        """Compare the stored tile (``level``, ``index``) with its row rebuilt from the level below."""
        ref = self._ref(level, index)
        stored = self._read_tile(ref)
        rebuilt = b"".join(row)
        if stored != rebuilt:
            i = _first_difference(stored, rebuilt)
            below = self._ref(level - 1, index * TILE_WIDTH + i)
            raise _ProblemError(
                ref.path, f"hash {i} is not the root of {below.path} as rebuilt from the entries"
            )
        self.tiles += 1

    # --- checkpoints and blame ---
    def _check_checkpoint(self, compact: list[bytes]) -> None:
        signed = self._signed[self._next]
        root = merkle.fold(compact)
        if root != signed.root:
            raise _ProblemError(
                signed.label,
                f"its root hash {_b64(signed.root)} is not the root {_b64(root)} of the first {signed.size} "
                "entries, yet its signatures verify",
            )
        if self._next > 0:
            previous = self._signed[self._next - 1]
            proof = merkle.assemble(merkle.consistency_plan(previous.size, signed.size), self._needed_node)
            try:
                merkle.verify_consistency(previous.size, signed.size, previous.root, signed.root, proof)
            except ProofError as exc:
                raise _ProblemError(
                    signed.label, f"it is not consistent with {previous.label}: {exc.message}"
                ) from None
        self._next += 1
        self.checkpoints += 1

    def _needed_node(self, node: NodeID) -> bytes:
        digest = self._needed.get(node)
        if digest is None:  # the plan's nodes are all rebuilt before the checkpoint is reached
            raise RuntimeError(f"fsck did not keep node {node} of a consistency proof")
        return digest

    def _level0_problem(self, bundle: TileRef, tile: TileRef, leaves: bytes, stored: bytes) -> _ProblemError:
        i = _first_difference(leaves, stored)
        entry = bundle.index * TILE_WIDTH + i
        evidence = self._vouch(bundle, leaves, stored)
        if evidence is not None and evidence[0]:
            return _ProblemError(
                bundle.path,
                f"entry {entry} does not hash to leaf hash {i} of {tile.path}, which {evidence[1]} confirms",
            )
        why = (
            f"; {evidence[1]} confirms the entries"
            if evidence is not None
            else " (nothing else covers them: the entries are taken as the truth)"
        )
        return _ProblemError(
            tile.path, f"hash {i} is not the leaf hash of entry {entry} of {bundle.path}{why}"
        )

    def _vouch(self, bundle: TileRef, leaves: bytes, stored: bytes) -> tuple[bool, str] | None:
        """Which of a bundle (False) and its disagreeing level-0 tile (True) other evidence confirms."""
        first, end = bundle.index * TILE_WIDTH, bundle.index * TILE_WIDTH + bundle.width
        if bundle.full:  # its subtree's root is a hash of the level-1 tile above
            parent = self._ref(1, bundle.index >> TILE_HEIGHT)
            data = self._store.read(self._log_id, parent.path)
            if isinstance(data, bytes | bytearray) and len(data) == parent.width * HASH_SIZE:
                at = (bundle.index % TILE_WIDTH) * HASH_SIZE
                verdict = _verdict(
                    self._hashing.perfect_root(stored),
                    self._hashing.perfect_root(leaves),
                    bytes(data[at : at + HASH_SIZE]),
                )
                if verdict is not None:
                    return verdict, parent.path
        for signed in self._signed:
            if first < signed.size <= end:
                verdict = _verdict(
                    merkle.fold(self._compact(signed.size, self._frontier, first, stored)),
                    merkle.fold(self._compact(signed.size, self._frontier, first, leaves)),
                    signed.root,
                )
                if verdict is not None:
                    return verdict, signed.label
        if self._head is not None and first < self._head.size <= end:
            verdict = _verdict(
                tuple(self._compact(self._head.size, self._frontier, first, stored)),
                tuple(self._compact(self._head.size, self._frontier, first, leaves)),
                tuple(self._head.frontier),
            )
            if verdict is not None:
                return verdict, "the log head"
        return None
