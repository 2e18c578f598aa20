"""Audit-log benchmarks: Merkle roots, proofs from tiles, appends; each beside a baseline of the same run.

- merkle: the root of many leaves in C (``reliquary_native.merkle``) beside its floor, the same SHA-256
  work in a bare C loop (``sha256_floor``), and beside the pure-Python reference and a bare hashlib loop.
- proofs: ``TransparencyLog.inclusion_proof`` / ``consistency_proof`` served from tiles in the in-memory
  tile store, and their verification (pure Python and C), beside one ``hash_children`` call: the unit of
  work of the verifier and of the tile reader.
- appends: ``TransparencyLog.append`` on the in-memory stores and on DynamoDB + S3 under moto (in-process),
  with its storage round trips counted, beside one bare storage round trip.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import itertools
import os
import random
import resource
import statistics
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, cast
from unittest import mock

from reliquary.audit import merkle, tiles
from reliquary.audit.log import Batch, LogHead, LogStore, TileStore, TransparencyLog
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.audit.merkle import HASH_SIZE, SHA256
from reliquary_native import merkle as native
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, Case, Stats, measure

ENTRY_SIZE = 64
GOAL_NATIVE_VS_FLOOR = 1.3
GOAL_PURE_VS_NATIVE = 5.0
PROOF_SAMPLES = 32  # leaf indexes (and old sizes) each proof case cycles through
APPEND_BATCHES = (1, 10, 90)
SEEDED_PER_LOG = 64  # appends onto one seeded in-memory log before the next (fresh) copy of the seed
WARM_COUNTED_APPENDS = 2  # appends of the counting log before its round trips are counted
TILE_BYTES = tiles.TILE_WIDTH * HASH_SIZE  # a full tile: what the S3 baseline writes
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Scale:
    """How much work each audit section does: ``FULL_SCALE`` (make bench) or ``QUICK_SCALE`` (--quick)."""

    root_leaves: int
    root_runs: int  # timed runs of the native root, the floor and the native parts
    python_runs: int  # timed runs of the pure reference and the bare hashlib loop
    proof_sizes: tuple[int, ...]
    seeded_log_size: int  # in-memory appends also run onto a log of this many entries
    counted_appends: int  # appends whose storage round trips are counted, per case


FULL_SCALE = Scale(
    root_leaves=1_000_000,
    root_runs=5,
    python_runs=2,
    proof_sizes=(10**3, 10**4, 10**5, 10**6),
    seeded_log_size=100_003,
    counted_appends=5,
)
QUICK_SCALE = Scale(
    root_leaves=2_000,
    root_runs=3,
    python_runs=1,
    proof_sizes=(10**3, 10**4),
    seeded_log_size=3_003,
    counted_appends=2,
)
CROSS_CHECK_MAX = 10**4  # tiles written directly are compared with those of real appends up to this size


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else float("nan")


def random_entries(count: int, size: int = ENTRY_SIZE) -> list[bytes]:
    blob = os.urandom(count * size)
    return [blob[i : i + size] for i in range(0, count * size, size)]


def size_label(count: int) -> str:
    return f"{count:,}"


# --- merkle: the root of many leaves ------------------------------------------------------------------
def native_root(entries: Sequence[bytes]) -> bytes:
    return native.root(native.hash_leaves(entries))


def pure_root(entries: Sequence[bytes]) -> bytes:
    return merkle.root_of([SHA256.hash_leaf(entry) for entry in entries])


def hashlib_root(entries: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH with nothing but hashlib: leaf hashes, then pairwise levels (an odd last node moves up
    unchanged, which gives the same tree as the RFC's largest-power-of-two split)."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + entry).digest() for entry in entries]
    if not level:
        return sha256(b"").digest()
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def pack(entries: Sequence[bytes]) -> tuple[bytes, array[int]]:
    """What the native wrappers do before calling C: one buffer and the n + 1 offsets (as in ``_pack``)."""
    return b"".join(entries), array("Q", accumulate(map(len, entries), initial=0))


@dataclass(frozen=True, slots=True)
class Runs:
    """Whole-call timings of one case (for operations of a second or so, where a few runs are all we get)."""

    times_ns: list[int]
    faults: list[int]  # minor page faults per run

    @property
    def median_ns(self) -> float:
        return statistics.median(self.times_ns)

    @property
    def min_ns(self) -> int:
        return min(self.times_ns)

    @property
    def median_faults(self) -> float:
        return statistics.median(self.faults)


def timed_runs(cases: Mapping[str, tuple[Callable[[], object], int]]) -> dict[str, Runs]:
    """Call each case its number of times, round-robin (the order rotating every round).

    Each run is one call, timed with ``perf_counter_ns``, its minor page faults counted with getrusage; the
    garbage collector collects before and is off during a run, as in ``timing.measure``.
    """
    times: dict[str, list[int]] = {name: [] for name in cases}
    faults: dict[str, list[int]] = {name: [] for name in cases}
    order = list(cases)
    was_enabled = gc.isenabled()
    try:
        while True:
            pending = [name for name in order if len(times[name]) < cases[name][1]]
            if not pending:
                break
            for name in pending:
                fn = cases[name][0]
                gc.collect()
                gc.disable()
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter_ns()
                fn()
                elapsed = time.perf_counter_ns() - start
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
                times[name].append(elapsed)
                if was_enabled:
                    gc.enable()
            order.append(order.pop(0))
    finally:
        if was_enabled:
            gc.enable()
    return {name: Runs(times[name], faults[name]) for name in cases}


@dataclass(frozen=True, slots=True)
class MerkleResult:
    table: Table
    native_vs_floor: float
    pure_vs_native: float
    hashlib_vs_native: float
    bundles_pure_vs_native: float  # the same, from the log's stored entry bundles


def merkle_root_table(scale: Scale) -> MerkleResult:
    count = scale.root_leaves
    entries = random_entries(count)
    leaf_hashes = native.hash_leaves(entries)
    expected = native.root(leaf_hashes)
    if pure_root(entries) != expected or hashlib_root(entries) != expected:
        raise AssertionError("the Merkle root implementations disagree")
    native_runs, python_runs = scale.root_runs, scale.python_runs
    # The same entries as the log stores them: c2sp entry bundles of 256 (what fsck and tile rebuilds read).
    bundles = [
        (tiles.encode_bundle(entries[i : i + tiles.TILE_WIDTH]), min(tiles.TILE_WIDTH, count - i))
        for i in range(0, count, tiles.TILE_WIDTH)
    ]

    def native_bundles_root() -> bytes:
        return native.root(b"".join([native.hash_bundle(data, width) for data, width in bundles]))

    def pure_bundles_root() -> bytes:
        leaf_hashes = [
            SHA256.hash_leaf(entry)
            for data, width in bundles
            for entry in tiles.decode_bundle(data, tiles.TileRef(None, 0, width))
        ]
        return merkle.root_of(leaf_hashes)

    if native_bundles_root() != expected or (count <= 10_000 and pure_bundles_root() != expected):
        raise AssertionError("the Merkle roots from bundles disagree")
    impls: list[tuple[str, str, Callable[[], object], int]] = [
        ("native", "native: hash_leaves + root (C via ctypes)", lambda: native_root(entries), native_runs),
        (
            "floor",
            "floor: sha256_floor (the same SHA-256 work, bare C loop)",
            lambda: native.sha256_floor(entries),
            native_runs,
        ),
        ("hash_leaves", "  native part: hash_leaves", lambda: native.hash_leaves(entries), native_runs),
        ("root", "  native part: root (leaf hashes given)", lambda: native.root(leaf_hashes), native_runs),
        ("pack", "  packing: b''.join + offsets (in native and floor)", lambda: pack(entries), native_runs),
        (
            "hashlib",
            "bare hashlib loop (Python: leaves, then levels)",
            lambda: hashlib_root(entries),
            python_runs,
        ),
        (
            "pure",
            "pure reference: SHA256.hash_leaf + merkle.root_of",
            lambda: pure_root(entries),
            python_runs,
        ),
        (
            "native_bundles",
            "from stored entry bundles, native: hash_bundle + root",
            native_bundles_root,
            native_runs,
        ),
        (
            "pure_bundles",
            "from stored entry bundles, pure: decode_bundle + reference",
            pure_bundles_root,
            python_runs,
        ),
    ]
    # Warm-up on a small tree: loads the library and runs every code path once, outside the timed runs.
    small = entries[: min(count, 2_000)]
    for fn in (native_root, native.sha256_floor, native.hash_leaves, pack, hashlib_root, pure_root):
        fn(small)
    native_bundles_root()
    runs = timed_runs({key: (fn, repeats) for key, _, fn, repeats in impls})
    floor, base = runs["floor"].median_ns, runs["native"].median_ns
    table = Table(
        "merkle_root",
        f"Merkle root (RFC 9162) of {size_label(count)} random {ENTRY_SIZE}-byte entries",
        [
            Column("impl", "implementation"),
            Column("median_ms", "median ms", ",.1f"),
            Column("min_ms", "min ms", ",.1f"),
            Column("runs", "runs", "d"),
            Column("vs_floor", "x floor", ".2f"),
            Column("vs_native", "x native", ".2f"),
            Column("mleaves_s", "M leaves/s", ",.2f"),
            Column("faults", "pf/run", ",.0f"),
        ],
        notes=[
            (
                "Every run is one whole call, the cases round-robin (order rotating); native parts and the"
                f" floor {scale.root_runs} runs each, the Python ones {scale.python_runs}. floor ="
                " reliquary_native.merkle.sha256_floor: one SHA-256 per entry (1 + 64 bytes) and n - 1 of"
                " 65 bytes in a bare C loop, after the same packing of the entries as hash_leaves."
            ),
            (
                f"Goals: native <= {GOAL_NATIVE_VS_FLOOR}x the floor; the pure-Python reference >="
                f" {GOAL_PURE_VS_NATIVE:g}x slower than native. pf/run = minor page faults per run (fresh"
                " pages: the 32-byte-per-leaf output buffer and its copy into bytes)."
            ),
        ],
    )
    for key, label, _, _ in impls:
        figures = runs[key]
        table.add(
            impl=label,
            median_ms=figures.median_ns / 1e6,
            min_ms=figures.min_ns / 1e6,
            runs=len(figures.times_ns),
            vs_floor=ratio(figures.median_ns, floor),
            vs_native=ratio(figures.median_ns, base),
            mleaves_s=count / figures.median_ns * 1e3,
            faults=figures.median_faults,
        )
    native_vs_floor = ratio(base, floor)
    pure_vs_native = ratio(runs["pure"].median_ns, base)
    hashlib_vs_native = ratio(runs["hashlib"].median_ns, base)
    bundles_pure_vs_native = ratio(runs["pure_bundles"].median_ns, runs["native_bundles"].median_ns)
    table.footer += [
        (
            f"   native / floor: {native_vs_floor:.2f}x (goal <= {GOAL_NATIVE_VS_FLOOR}x:"
            f" {'within' if native_vs_floor <= GOAL_NATIVE_VS_FLOOR else 'over'})"
        ),
        (
            f"   pure reference / native: {pure_vs_native:.1f}x (goal >= {GOAL_PURE_VS_NATIVE:g}x:"
            f" {'within' if pure_vs_native >= GOAL_PURE_VS_NATIVE else 'below'});"
            f" bare hashlib loop / native: {hashlib_vs_native:.1f}x"
        ),
        (
            f"   from stored bundles (the log's own input): pure / native {bundles_pure_vs_native:.1f}x"
            f" (goal >= {GOAL_PURE_VS_NATIVE:g}x:"
            f" {'within' if bundles_pure_vs_native >= GOAL_PURE_VS_NATIVE else 'below'})"
        ),
    ]
    return MerkleResult(table, native_vs_floor, pure_vs_native, hashlib_vs_native, bundles_pure_vs_native)


# --- a log of any size, written straight into the in-memory stores -----------------------------------
@dataclass(frozen=True, slots=True)
class BuiltLog:
    log_id: str
    store: InMemoryLogStore
    tile_store: InMemoryTileStore
    entries: list[bytes]
    leaf_hashes: bytes  # concatenated
    root: bytes

    @property
    def size(self) -> int:
        return len(self.entries)

    def leaf(self, index: int) -> bytes:
        return self.leaf_hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def root_at(self, size: int) -> bytes:
        return native.root(self.leaf_hashes[: size * HASH_SIZE])


def build_log(entries: list[bytes], log_id: str = "bench-log") -> BuiltLog:
    """The head, batch, tiles and entry bundles that appending ``entries`` would leave, written directly.

    Appending 10**6 entries 90 at a time takes ~30 s and more; this takes about as long as hashing them.
    Every tile comes from the native library's subtree roots. The one seed batch carries no request ids
    (nothing here looks them up).
    """
    size = len(entries)
    leaf_hashes = native.hash_leaves(entries)
    tile_store = InMemoryTileStore()
    rows: dict[int, bytes] = {}  # tile level -> its row of tree nodes, concatenated
    for ref in tiles.tiles_for_size(size):
        first = ref.index * tiles.TILE_WIDTH
        if ref.level is None:
            data = tiles.encode_bundle(entries[first : first + ref.width])
        else:
            row = rows.get(ref.level)
            if row is None:
                width = 1 << (tiles.TILE_HEIGHT * ref.level)
                nodes = size >> (tiles.TILE_HEIGHT * ref.level)
                row = rows[ref.level] = native.subtree_roots(leaf_hashes[: nodes * width * HASH_SIZE], width)
            data = row[first * HASH_SIZE : (first + ref.width) * HASH_SIZE]
        tile_store.write(log_id, ref.path, data)
    frontier = tuple(
        native.root(leaf_hashes[node.begin * HASH_SIZE : node.end * HASH_SIZE])
        for node in merkle.range_nodes(0, size)
    )
    store = InMemoryLogStore()
    store.commit(
        log_id,
        expected_revision=0,
        head=LogHead(size=size, frontier=frontier, integrated=0, revision=1),
        batch=Batch(0, tuple(entries), ()),
    )
    store.mark_integrated(log_id, size)
    built = BuiltLog(log_id, store, tile_store, entries, leaf_hashes, native.root(leaf_hashes))
    if TransparencyLog(store, tile_store).root(log_id, size) != (size, built.root):
        raise AssertionError("the directly written log does not have the native root")
    return built


def cross_check(built: BuiltLog) -> None:
    """The directly written tiles and bundles are byte for byte those that real appends write."""
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    log = TransparencyLog(store, tile_store)
    for start in range(0, built.size, 90):
        chunk = built.entries[start : start + 90]
        log.append(built.log_id, [(f"req-{start + i}", entry) for i, entry in enumerate(chunk)])
    for ref in tiles.tiles_for_size(built.size):
        if tile_store.read(built.log_id, ref.path) != built.tile_store.read(built.log_id, ref.path):
            raise AssertionError(f"{ref.path}: the directly written log differs from an appended one")
    if store.head(built.log_id).frontier != built.store.head(built.log_id).frontier:
        raise AssertionError("the directly written head differs from an appended one")


# --- proofs --------------------------------------------------------------------------------------------
class CountingHasher:
    """RFC 9162 SHA-256 that counts its calls (to count the hashing a proof costs)."""

    __slots__ = ("children", "leaves")

    def __init__(self) -> None:
        self.children = 0
        self.leaves = 0

    def hash_leaf(self, entry: bytes) -> bytes:
        self.leaves += 1
        return SHA256.hash_leaf(entry)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        self.children += 1
        return SHA256.hash_children(left, right)

    def empty_root(self) -> bytes:
        return SHA256.empty_root()


class CallCounter:
    """Wraps a storage object and counts each method call by name: one call is one round trip."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        calls = self.calls

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    def total(self) -> int:
        return sum(self.calls.values())


def _cycle(items: Sequence[Any]) -> Callable[[], Any]:
    return itertools.cycle(items).__next__


@dataclass(frozen=True, slots=True)
class ProofShape:
    hashes: float  # proof length (mean over the sampled indexes or old sizes)
    gen_hashes: float  # hash_children calls to generate it from tiles
    verify_hashes: float  # hash_children calls to verify it
    tile_reads: float  # tiles read by a log with a cold cache


def _proof_shape(
    built: BuiltLog,
    samples: Sequence[tuple[int, Sequence[bytes], Sequence[Any]]],
    generate: Callable[[TransparencyLog, int], object],
    verify: Callable[..., object],
) -> ProofShape:
    """Count, outside any timing, what generating and verifying each sampled proof costs.

    ``samples``: (the index or old size, its proof, the verifier's arguments) per sample."""
    gen_hasher, verify_hasher = CountingHasher(), CountingHasher()
    reads = 0
    for arg, _, claim in samples:
        counter = CallCounter(built.tile_store)
        generate(TransparencyLog(built.store, cast("TileStore", counter)), arg)
        reads += counter.calls["read"]
        generate(TransparencyLog(built.store, built.tile_store, hasher=gen_hasher), arg)
        verify(*claim, hasher=verify_hasher)
    count = len(samples)
    return ProofShape(
        hashes=statistics.fmean(len(proof) for _, proof, _ in samples),
        gen_hashes=gen_hasher.children / count,
        verify_hashes=verify_hasher.children / count,
        tile_reads=reads / count,
    )


def _proof_row(
    table: Table,
    size: int,
    *,
    proof: str,
    shape: ProofShape,
    stats: Mapping[str, Stats],
    prefix: str,
    native_key: str | None,
) -> None:
    hash_ns = stats["hash"].median_ns
    gen, verify = stats[f"{prefix}_gen"], stats[f"{prefix}_verify"]
    native_stats = stats[native_key] if native_key is not None else None
    table.add(
        size=size_label(size),
        proof=proof,
        hashes=shape.hashes,
        bytes=shape.hashes * HASH_SIZE,
        gen_us=gen.median_us,
        gen_cold_us=stats[f"{prefix}_gen_cold"].median_us,
        tile_reads=shape.tile_reads,
        gen_hashes=shape.gen_hashes,
        gen_vs_floor=ratio(gen.median_ns, shape.gen_hashes * hash_ns),
        verify_us=verify.median_us,
        verify_hashes=shape.verify_hashes,
        verify_vs_floor=ratio(verify.median_ns, shape.verify_hashes * hash_ns),
        native_us=native_stats.median_us if native_stats is not None else None,
        pure_vs_native=ratio(verify.median_ns, native_stats.median_ns) if native_stats is not None else None,
        hash_us=stats["hash"].median_us,
    )


def bench_proofs(built: BuiltLog, budget: Budget, table: Table) -> dict[str, Stats]:
    size, log_id = built.size, built.log_id
    rng = random.Random(size)
    log = TransparencyLog(built.store, built.tile_store)  # its tile cache warms below and stays warm
    indexes = [rng.randrange(size) for _ in range(PROOF_SAMPLES)]
    inclusions = [(i, log.inclusion_proof(log_id, i, size)) for i in indexes]
    inclusion_claims = [(i, size, built.leaf(i), proof, built.root) for i, proof in inclusions]
    olds = [rng.randrange(1, size) for _ in range(PROOF_SAMPLES)]
    consistencies = [(m, log.consistency_proof(log_id, m, size)) for m in olds]
    consistency_claims = [(m, size, built.root_at(m), built.root, proof) for m, proof in consistencies]
    for claim in inclusion_claims:
        merkle.verify_inclusion(*claim)
        if not native.verify_inclusion(*claim):
            raise AssertionError("the native verifier refuses a valid inclusion proof")
    for m, new, old_root, new_root, proof in consistency_claims:
        merkle.verify_consistency(m, new, old_root, new_root, proof)

    inclusion_shape = _proof_shape(
        built,
        [(i, proof, claim) for (i, proof), claim in zip(inclusions, inclusion_claims, strict=True)],
        lambda lg, index: lg.inclusion_proof(log_id, index, size),
        merkle.verify_inclusion,
    )
    consistency_shape = _proof_shape(
        built,
        [(m, proof, claim) for (m, proof), claim in zip(consistencies, consistency_claims, strict=True)],
        lambda lg, old: lg.consistency_proof(log_id, old, size),
        merkle.verify_consistency,
    )

    left, right = os.urandom(HASH_SIZE), os.urandom(HASH_SIZE)
    next_index, next_old = _cycle(indexes), _cycle(olds)
    next_inclusion, next_consistency = _cycle(inclusion_claims), _cycle(consistency_claims)
    stats = measure(
        {
            "hash": lambda: SHA256.hash_children(left, right),
            "inc_gen": lambda: log.inclusion_proof(log_id, next_index(), size),
            "inc_gen_cold": lambda: TransparencyLog(built.store, built.tile_store).inclusion_proof(
                log_id, next_index(), size
            ),
            "inc_verify": lambda: merkle.verify_inclusion(*next_inclusion()),
            "inc_native": lambda: native.verify_inclusion(*next_inclusion()),
            "con_gen": lambda: log.consistency_proof(log_id, next_old(), size),
            "con_gen_cold": lambda: TransparencyLog(built.store, built.tile_store).consistency_proof(
                log_id, next_old(), size
            ),
            "con_verify": lambda: merkle.verify_consistency(*next_consistency()),
        },
        budget,
    )
    _proof_row(
        table,
        size,
        proof="inclusion",
        shape=inclusion_shape,
        stats=stats,
        prefix="inc",
        native_key="inc_native",
    )
    _proof_row(
        table, size, proof="consistency", shape=consistency_shape, stats=stats, prefix="con", native_key=None
    )
    return stats


@dataclass(frozen=True, slots=True)
class ProofsResult:
    table: Table
    inclusion_gen_us: float  # at the largest size
    inclusion_verify_pure_vs_native: float  # at the largest size


def proofs_table(budget: Budget, scale: Scale) -> ProofsResult:
    table = Table(
        "proofs",
        "Transparency-log proofs: served from tiles (in-memory tile store), verified in Python and C",
        [
            Column("size", "tree size"),
            Column("proof", "proof"),
            Column("hashes", "hashes", ".1f"),
            Column("bytes", "bytes", ",.0f"),
            Column("gen_us", "gen µs", ",.1f"),
            Column("gen_cold_us", "gen cold µs", ",.1f"),
            Column("tile_reads", "tiles read", ".1f"),
            Column("gen_hashes", "gen hashes", ",.0f"),
            Column("gen_vs_floor", "gen/floor", ".2f"),
            Column("verify_us", "verify µs", ",.1f"),
            Column("verify_hashes", "verify hashes", ".1f"),
            Column("verify_vs_floor", "verify/floor", ".2f"),
            Column("native_us", "C verify µs", ",.2f"),
            Column("pure_vs_native", "py/C", ".1f"),
            Column("hash_us", "1 hash µs", ",.2f"),
        ],
        notes=[
            (
                f"Each case cycles through {PROOF_SAMPLES} random leaf indexes (inclusion) or old sizes"
                " (consistency) of a tree of random 64-byte entries. The log's head, tiles and bundles are"
                f" written straight into the in-memory stores (up to {size_label(CROSS_CHECK_MAX)} leaves"
                " checked byte for byte against real appends; every size against the native root)."
            ),
            (
                "gen = TransparencyLog.inclusion_proof / consistency_proof with a warm tile cache (every tile"
                " the samples need stays cached); gen cold = a new TransparencyLog per call, so every tile is"
                " read from the store and decoded (tiles read = how many: S3 GETs of a cold function)."
            ),
            (
                "hashes = proof length (bytes = 32 each). gen hashes / verify hashes = hash_children calls"
                " made (counted with a counting hasher): nodes between tile levels are hashed up from the"
                " tile below. floor = that many calls of merkle.SHA256.hash_children, timed interleaved"
                " (1 hash µs). verify = merkle.verify_* (pure Python); C verify ="
                " reliquary_native.merkle.verify_inclusion (ctypes; no native consistency verifier)."
            ),
        ],
    )
    last: dict[str, Stats] = {}
    for size in scale.proof_sizes:
        built = build_log(random_entries(size))
        if size <= CROSS_CHECK_MAX:
            cross_check(built)
        last = bench_proofs(built, budget, table)
        del built
        gc.collect()
    return ProofsResult(
        table,
        inclusion_gen_us=last["inc_gen"].median_us,
        inclusion_verify_pure_vs_native=ratio(last["inc_verify"].median_ns, last["inc_native"].median_ns),
    )


# --- appends -------------------------------------------------------------------------------------------
class AppendRig:
    """Appends of ``batch`` entries, each onto a log that ``prepare`` set up outside the timed region.

    ``prepare(log_id)`` readies a new log; a new one is taken every ``per_log`` appends. ``counted`` is a
    second log over the same stores, wrapped to count their calls (kept apart from the timed log, whose
    calls the wrappers would slow down).
    """

    def __init__(
        self,
        name: str,
        store: object,
        tile_store: object,
        *,
        batch: int,
        per_log: int,
        prepare: Callable[[str], None],
    ) -> None:
        self.name, self.batch, self.per_log, self.prepare = name, batch, per_log, prepare
        self.log = TransparencyLog(cast("LogStore", store), cast("TileStore", tile_store))
        self.store_calls, self.tile_calls = CallCounter(store), CallCounter(tile_store)
        self.counted = TransparencyLog(cast("LogStore", self.store_calls), cast("TileStore", self.tile_calls))
        self.pool = random_entries(batch)
        self._logs = itertools.count()
        self._requests = itertools.count()
        self.log_id = ""
        self.appended = per_log  # the first setup prepares a log

    def setup(self) -> None:
        if self.appended >= self.per_log:
            self.log_id = f"{self.name}-{next(self._logs)}"
            self.prepare(self.log_id)
            self.appended = 0

    def append(self, log: TransparencyLog | None = None) -> None:
        first = next(self._requests) * self.batch
        (log or self.log).append(self.log_id, [(f"r{first + i}", entry) for i, entry in enumerate(self.pool)])
        self.appended += 1

    @property
    def case(self) -> Case:
        return Case(self.append, setup=self.setup)


@dataclass(frozen=True, slots=True)
class RoundTrips:
    db: float  # LogStore calls per append (DynamoDB requests)
    s3_get: float
    s3_put: float
    http: float | None  # botocore requests per append (moto only)

    @property
    def total(self) -> float:
        return self.db + self.s3_get + self.s3_put


def count_round_trips(rig: AppendRig, appends: int, http: Counter[str] | None = None) -> RoundTrips:
    """Storage calls of ``appends`` appends by the counting log (after a few to warm its tile cache)."""
    for _ in range(WARM_COUNTED_APPENDS):
        rig.setup()
        rig.append(rig.counted)
    rig.store_calls.calls.clear()
    rig.tile_calls.calls.clear()
    requests = 0
    for _ in range(appends):
        rig.setup()
        before = sum(http.values()) if http is not None else 0
        rig.append(rig.counted)
        requests += (sum(http.values()) - before) if http is not None else 0
    return RoundTrips(
        db=rig.store_calls.total() / appends,
        s3_get=rig.tile_calls.calls["read"] / appends,
        s3_put=rig.tile_calls.calls["write"] / appends,
        http=requests / appends if http is not None else None,
    )


def _append_columns() -> list[Column]:
    return [
        Column("store", "store"),
        Column("log", "log before each append"),
        Column("batch", "batch", "d"),
        Column("median_us", "median µs", ",.1f"),
        Column("p99_us", "p99 µs", ",.1f"),
        Column("appends_s", "appends/s", ",.0f"),
        Column("entries_s", "entries/s", ",.0f"),
        Column("db_rt", "db rt", ".1f"),
        Column("s3_get", "s3 get", ".1f"),
        Column("s3_put", "s3 put", ".1f"),
        Column("rt", "rt/append", ".1f"),
        Column("http", "http req", ".1f"),
        Column("vs_base", "x 1 rt", ",.1f"),
        Column("vs_rt_floor", "x its rts", ".2f"),
    ]


def _append_row(
    table: Table,
    *,
    store: str,
    log: str,
    rig: AppendRig,
    stats: Stats,
    trips: RoundTrips,
    base: Stats,
    rt_floor_ns: float | None,
) -> None:
    table.add(
        store=store,
        log=log,
        batch=rig.batch,
        median_us=stats.median_us,
        p99_us=stats.p99_us,
        appends_s=stats.ops_per_s,
        entries_s=stats.ops_per_s * rig.batch,
        db_rt=trips.db,
        s3_get=trips.s3_get,
        s3_put=trips.s3_put,
        rt=trips.total,
        http=trips.http,
        vs_base=ratio(stats.median_ns, base.median_ns),
        vs_rt_floor=ratio(stats.median_ns, rt_floor_ns) if rt_floor_ns is not None else None,
    )


def _baseline_row(table: Table, store: str, label: str, stats: Stats) -> None:
    table.add(
        store=store,
        log=label,
        median_us=stats.median_us,
        p99_us=stats.p99_us,
        appends_s=stats.ops_per_s,
        rt=1.0,
        vs_base=1.0,
    )


def _memory_appends(table: Table, budget: Budget, scale: Scale) -> dict[str, float]:
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    seed = build_log(random_entries(scale.seeded_log_size), log_id="seed")
    seed_head = seed.store.head("seed")
    seed_batch = Batch(0, tuple(seed.entries), ())
    seed_objects = [
        (ref.path, seed.tile_store.read("seed", ref.path)) for ref in tiles.tiles_for_size(seed.size)
    ]

    def prime(log_id: str) -> None:
        TransparencyLog(store, tile_store).append(log_id, [(f"{log_id}-first", b"first entry")])

    def clone_seed(log_id: str) -> None:
        for path, data in seed_objects:
            if data is not None:
                tile_store.write(log_id, path, data)
        store.commit(log_id, expected_revision=0, head=seed_head, batch=seed_batch)
        store.mark_integrated(log_id, seed_head.size)

    small = {
        b: AppendRig(f"mem-{b}", store, tile_store, batch=b, per_log=1, prepare=prime) for b in APPEND_BATCHES
    }
    seeded = {
        b: AppendRig(f"seed-{b}", store, tile_store, batch=b, per_log=SEEDED_PER_LOG, prepare=clone_seed)
        for b in APPEND_BATCHES
    }
    objects: dict[tuple[str, str], bytes] = {}
    key, value = ("bench", "tile/0/000"), os.urandom(TILE_BYTES)

    def dict_write() -> None:
        objects[key] = value

    stats = measure(
        {
            "dict": dict_write,
            **{f"small-{b}": rig.case for b, rig in small.items()},
            **{f"seeded-{b}": rig.case for b, rig in seeded.items()},
        },
        budget,
    )
    _baseline_row(table, "in-memory", "bare dict write (baseline, 1 rt)", stats["dict"])
    summary: dict[str, float] = {}
    seeded_label = f"{size_label(seed.size)} entries (+ <= {SEEDED_PER_LOG} appends)"
    for label, rigs, prefix in (("1 entry", small, "small"), (seeded_label, seeded, "seeded")):
        for b, rig in rigs.items():
            trips = count_round_trips(rig, scale.counted_appends)
            _append_row(
                table,
                store="in-memory",
                log=label,
                rig=rig,
                stats=stats[f"{prefix}-{b}"],
                trips=trips,
                base=stats["dict"],
                rt_floor_ns=None,
            )
            if prefix == "small":
                summary[f"append_memory_batch{b}_entries_per_s"] = stats[f"small-{b}"].ops_per_s * b
    return summary


@dataclass(frozen=True, slots=True)
class MotoStores:
    dynamodb: Any
    s3: Any
    table_name: str
    bucket: str
    reset_table: Callable[[], None]
    requests: Counter[str]  # botocore requests sent, by event name


@contextmanager
def moto_audit_stores() -> Iterator[MotoStores]:
    """moto in-process: the template's tables (infra.template.create_tables) and an audit bucket."""
    import boto3
    from moto import mock_aws

    import tests.support.aws  # noqa: F401  (moto snapshots a table once per transaction, not per item)
    from infra.template import create_tables, table_specs

    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's documented dummy value
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    with mock.patch.dict(os.environ, fake), mock_aws():
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(name, None)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        names = create_tables(dynamodb, prefix=f"bench{uuid.uuid4().hex[:8]}")
        bucket = "bench-audit"
        s3.create_bucket(Bucket=bucket)
        table_name = names["AuditTable"]
        spec = table_specs()["AuditTable"]

        def reset_table() -> None:
            dynamodb.delete_table(TableName=table_name)
            dynamodb.create_table(**spec.create_table_kwargs(table_name))

        requests: Counter[str] = Counter()

        def count_request(event_name: str, **_: Any) -> None:
            requests[event_name] += 1

        for client in (dynamodb, s3):
            client.meta.events.register("request-created", count_request)
        yield MotoStores(dynamodb, s3, table_name, bucket, reset_table, requests)


def _moto_appends(table: Table, budget: Budget, scale: Scale) -> dict[str, float]:
    from reliquary.adapters.audit_store import DynamoDBLogStore, S3TileStore
    from reliquary.adapters.dynamodb import TableConfig

    summary: dict[str, float] = {}
    with moto_audit_stores() as aws:
        store = DynamoDBLogStore(TableConfig(aws.table_name, REGION, None), aws.dynamodb)
        tile_store = S3TileStore(aws.s3, aws.bucket)

        def prime(log_id: str) -> None:
            # moto deep-copies the whole table for a transaction (once per transaction with the test
            # support patch, once per item without): an empty table keeps the commit's cost constant.
            aws.reset_table()
            TransparencyLog(store, tile_store).append(log_id, [(f"{log_id}-first", b"first entry")])

        rigs = {
            b: AppendRig(f"moto-{b}", store, tile_store, batch=b, per_log=1, prepare=prime)
            for b in APPEND_BATCHES
        }
        item = {"pk": {"S": "BENCH#put"}, "sk": {"S": "ROW"}, "entry": {"B": os.urandom(ENTRY_SIZE)}}
        body = os.urandom(TILE_BYTES)
        stats = measure(
            {
                "put_item": lambda: aws.dynamodb.put_item(TableName=aws.table_name, Item=item),
                "put_object": lambda: aws.s3.put_object(Bucket=aws.bucket, Key="bench/tile", Body=body),
                **{f"moto-{b}": rig.case for b, rig in rigs.items()},
            },
            budget,
        )
        put_item, put_object = stats["put_item"], stats["put_object"]
        _baseline_row(table, "moto", "bare DynamoDB put_item (baseline, 1 rt)", put_item)
        _baseline_row(table, "moto", f"bare S3 put_object, {TILE_BYTES // 1024} KiB", put_object)
        for b, rig in rigs.items():
            trips = count_round_trips(rig, scale.counted_appends, aws.requests)
            floor = trips.db * put_item.median_ns + (trips.s3_get + trips.s3_put) * put_object.median_ns
            _append_row(
                table,
                store="moto",
                log="1 entry (empty table)",
                rig=rig,
                stats=stats[f"moto-{b}"],
                trips=trips,
                base=put_item,
                rt_floor_ns=floor,
            )
            summary[f"append_moto_batch{b}_vs_put_item"] = ratio(
                stats[f"moto-{b}"].median_ns, put_item.median_ns
            )
            summary[f"append_moto_batch{b}_round_trips"] = trips.total
    return summary


@dataclass(frozen=True, slots=True)
class AppendsResult:
    table: Table
    summary: dict[str, float]


def appends_table(budget: Budget, scale: Scale) -> AppendsResult:
    table = Table(
        "appends",
        "Transparency-log appends: TransparencyLog.append on the in-memory stores and on moto (DynamoDB, S3)",
        _append_columns(),
        notes=[
            (
                "An append = one TransparencyLog.append of `batch` new 64-byte entries (fresh request ids):"
                " sequencing (head read, the commit transaction) and integration (tiles and bundle written)."
                " Each timed append goes to a log prepared outside the timed region: `1 entry` = a new log"
                f" holding one entry; the seeded log = a copy of a log of that size, a new copy every"
                f" {SEEDED_PER_LOG} appends."
            ),
            (
                "db rt / s3 get / s3 put = calls of the LogStore / TileStore.read / TileStore.write per"
                " append (a counting wrapper: one call = one round trip), over a few appends after"
                f" {WARM_COUNTED_APPENDS} that warm the tile cache; http req = botocore requests (moto only)."
            ),
            (
                "x 1 rt = median / the bare round trip of the same store, timed interleaved (a dict write;"
                " a DynamoDB put_item on the same moto); x its rts = median / (db rt x put_item + s3 rt x"
                " put_object of a full tile) on moto. moto runs in-process (no HTTP); its TransactWriteItems"
                " deep-copies the table (tests/support/aws.py makes that once per transaction instead of once"
                " per item), so its cost grows with the table: the audit table is emptied (deleted and"
                " re-created) before each timed moto append."
            ),
        ],
    )
    summary = _memory_appends(table, budget, scale)
    summary.update(_moto_appends(table, budget, scale))
    return AppendsResult(table, summary)


# --- concurrent appenders: group commit and shared checkpoints on moto ---------------------------------
CONCURRENCY = (1, 8, 32)


class SerialCounter:
    """Wraps a store over in-process moto: serializes its calls (moto's backends are not thread-safe;
    AWS applies each request atomically) and counts them, by ``<kind>:<method>`` (one call, one round
    trip)."""

    def __init__(self, inner: object, kind: str, lock: threading.Lock, calls: Counter[str]) -> None:
        self._inner, self._kind, self._lock, self.calls = inner, kind, lock, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[f"{self._kind}:{name}"] += 1
                return attr(*args, **kwargs)

        return call


@dataclass(frozen=True, slots=True)
class ConcurrentRun:
    entries: int
    seconds: float
    calls: Counter[str]

    def per_entry(self, *names: str) -> float:
        return sum(self.calls[n] for n in names) / self.entries

    @property
    def db(self) -> float:
        return sum(v for k, v in self.calls.items() if k.startswith("db:")) / self.entries


def _concurrent_run(
    append: Callable[[int, int], object],
    appenders: int,
    each: int,
    finish: Callable[[], object] | None = None,
) -> float:
    """``appenders`` threads, each making ``each`` appends of one entry in a row, then ``finish``; the
    wall time."""
    barrier = threading.Barrier(appenders + 1)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for k in range(each):
                append(n, k)
        except BaseException as exc:  # noqa: BLE001  (raised below)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(appenders)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if finish is not None and not errors:
        finish()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def _log_append(log: TransparencyLog, tenant: str, n: int, k: int) -> object:
    return log.append(tenant, [(f"r{n}-{k}", b"e" * ENTRY_SIZE)])


def _service_append(service: Any, tenant: str, n: int, k: int) -> object:
    from tests.support.audit import decision

    return service.append(tenant, [decision(f"r{n}-{k}", tenant)])


def _service_promise(service: Any, tenant: str, n: int, k: int) -> object:
    from tests.support.audit import decision

    return service.promise(tenant, [decision(f"r{n}-{k}", tenant)])


@dataclass(frozen=True, slots=True)
class ConcurrentResult:
    table: Table
    summary: dict[str, float]


def concurrent_appends_table(budget: Budget, quick: bool) -> ConcurrentResult:
    """Entries/s and storage round trips per entry with 1, 8 and 32 appenders in one process, on moto:
    ``AuditService.append`` (a receipt each: checkpoint published on the interval),
    ``AuditService.promise`` (a signed promise each: integration and checkpoints amortized) and the bare
    ``TransparencyLog.append``, beside a bare DynamoDB put_item timed in the same run."""
    from reliquary.adapters.audit_store import DynamoDBLogStore, S3TileStore
    from reliquary.adapters.dynamodb import TableConfig
    from reliquary.audit.service import DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_PROMISE_INTEGRATION, AuditService
    from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys

    keys = checkpoint_keys()
    total = 256  # entries per row (each appender makes total // appenders); --quick: one each
    table = Table(
        "tlog",
        "Transparency log under concurrency: appenders in one process on moto (DynamoDB, S3)",
        [
            Column("mode", "mode"),
            Column("appenders", "appenders", "d"),
            Column("entries", "entries", "d"),
            Column("entries_s", "entries/s", ",.0f"),
            Column("us_entry", "µs / entry", ",.0f"),
            Column("db", "db rt", ".3f"),
            Column("s3_get", "s3 get", ".3f"),
            Column("s3_put", "s3 put", ".3f"),
            Column("rt", "rt / entry", ".3f"),
            Column("commits", "commits", ".3f"),
            Column("checkpoints", "checkpoints", ".3f"),
            Column("vs_base", "x put_item", ",.1f"),
        ],
        notes=[
            (
                "Each appender (a thread) makes appends of one entry in a row: receipts = AuditService.append"
                " of one decision (sequenced, integrated, a signed checkpoint covering it, its inclusion"
                f" proof), checkpoint interval {DEFAULT_CHECKPOINT_INTERVAL * 1000:.0f} ms (the default) or 0"
                " (every group publishes); promises = AuditService.promise of one decision (sequenced and"
                " signed; integration and a checkpoint when the backlog is due: 256 entries or older than the"
                " promises' integration interval, 1000 ms by default, or 25 ms), the row ending with a"
                " publish that integrates and signs the rest, timed and"
                " counted; log only = TransparencyLog.append (no checkpoint). A fresh log and"
                f" service (empty caches) per row, {total} entries in all (--quick: one per appender, the"
                " default interval only); the audit table is emptied before"
                " each row (moto's transactions copy the table)."
            ),
            (
                "db rt / s3 get / s3 put / rt = storage calls per entry, counted by a wrapper that also"
                " serializes them (moto's in-process backends are not thread-safe; AWS applies each request"
                " atomically), so calls never overlap here and entries/s measures round trips saved, not"
                " parallelism. commits / checkpoints = TransactWriteItems of a group / checkpoint writes per"
                " entry. x put_item = µs per entry / a bare put_item on the same moto."
            ),
        ],
    )
    summary: dict[str, float] = {}
    with moto_audit_stores() as aws:
        config = TableConfig(aws.table_name, REGION, None)
        item = {"pk": {"S": "BENCH#put"}, "sk": {"S": "ROW"}, "entry": {"B": os.urandom(ENTRY_SIZE)}}
        put_item = measure(
            {"put_item": lambda: aws.dynamodb.put_item(TableName=aws.table_name, Item=item)}, budget
        )["put_item"]
        table.add(
            mode="bare DynamoDB put_item (baseline, 1 rt)",
            appenders=1,
            entries_s=put_item.ops_per_s,
            us_entry=put_item.median_us,
            rt=1.0,
            vs_base=1.0,
        )
        lock = threading.Lock()
        default_ms = f"{DEFAULT_CHECKPOINT_INTERVAL * 1000:.0f} ms"
        modes: list[tuple[str, str, float | None]] = [
            (f"receipts, interval {default_ms}", "receipts", DEFAULT_CHECKPOINT_INTERVAL),
            ("receipts, interval 0", "receipts_interval0", 0.0),
            ("promises, integration 1000 ms (default)", "promises", DEFAULT_PROMISE_INTEGRATION),
            (f"promises, integration {default_ms}", "promises_integration25", DEFAULT_CHECKPOINT_INTERVAL),
            ("log only", "log", None),
        ]
        for mode, key, interval in modes[:1] if quick else modes:
            for appenders in CONCURRENCY:
                aws.reset_table()
                calls: Counter[str] = Counter()
                store = SerialCounter(DynamoDBLogStore(config, aws.dynamodb), "db", lock, calls)
                tile_store = SerialCounter(S3TileStore(aws.s3, aws.bucket), "s3", lock, calls)
                log = TransparencyLog(cast("LogStore", store), cast("TileStore", tile_store))
                tenant = f"t{uuid.uuid4().hex[:8]}"
                append: Callable[[int, int], object]
                finish: Callable[[], object] | None = None
                if interval is None:
                    append = functools.partial(_log_append, log, tenant)
                else:
                    service = AuditService(
                        log,
                        cast("TileStore", tile_store),
                        cast("Any", store),
                        keys,
                        origin_prefix=ORIGIN_PREFIX,
                        checkpoint_interval=interval
                        if key.startswith("receipts")
                        else DEFAULT_CHECKPOINT_INTERVAL,
                        promise_integration=interval,
                    )
                    append = functools.partial(
                        _service_promise if key.startswith("promises") else _service_append, service, tenant
                    )
                    if key.startswith("promises"):  # what is left sequenced but not integrated: nothing lost
                        finish = functools.partial(service.publish, tenant)
                each = 1 if quick else total // appenders
                seconds = _concurrent_run(append, appenders, each, finish)
                run = ConcurrentRun(appenders * each, seconds, calls)
                per_entry_us = seconds / run.entries * 1e6
                rt = run.db + run.per_entry("s3:read", "s3:write")
                table.add(
                    mode=mode,
                    appenders=appenders,
                    entries=run.entries,
                    entries_s=run.entries / seconds,
                    us_entry=per_entry_us,
                    db=run.db,
                    s3_get=run.per_entry("s3:read"),
                    s3_put=run.per_entry("s3:write"),
                    rt=rt,
                    commits=run.per_entry("db:commit"),
                    checkpoints=run.per_entry("db:put_checkpoint"),
                    vs_base=ratio(per_entry_us * 1000, put_item.median_ns),
                )
                summary[f"tlog_{key}_{appenders}_entries_per_s"] = run.entries / seconds
                summary[f"tlog_{key}_{appenders}_rt_per_entry"] = rt
    return ConcurrentResult(table, summary)


# --- receipts: the audit service's append -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReceiptsResult:
    table: Table
    summary: dict[str, float]


def receipts_table(budget: Budget) -> ReceiptsResult:
    """``AuditService.append`` (sequence, integrate, publish a signed checkpoint, one receipt each) beside
    the bare ``TransparencyLog.append`` of the same batch and one checkpoint signing (3 signatures)."""
    from reliquary.audit.checkpoint import Checkpoint, sign_checkpoint
    from reliquary.audit.records import encode_record
    from reliquary.audit.service import AuditService
    from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys, decision

    keys = checkpoint_keys()
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    service = AuditService(
        TransparencyLog(store, tile_store), tile_store, store, keys, origin_prefix=ORIGIN_PREFIX
    )
    bare = TransparencyLog(InMemoryLogStore(), InMemoryTileStore())
    counter = itertools.count()
    tenants = itertools.count()
    records = {b: [decision(f"r{i}") for i in range(b)] for b in APPEND_BATCHES}

    class Rotating:
        """A fresh log every 64 appends (set up outside the timed region), so logs stay small."""

        def __init__(self) -> None:
            self.log_id, self.left = "", 0

        def setup(self) -> None:
            if self.left <= 0:
                self.log_id, self.left = f"t{next(tenants)}", 64

        def next(self) -> tuple[str, int]:
            self.left -= 1
            return self.log_id, next(counter)

    def service_case(batch: int) -> Case:
        log = Rotating()

        def run() -> None:
            tenant, n = log.next()
            update = {"tenant_id": tenant}
            service.append(
                tenant,
                [
                    r.model_copy(update={**update, "request_id": f"{r.request_id}-{n}"})
                    for r in records[batch]
                ],
            )

        return Case(run, setup=log.setup)

    def bare_case(batch: int) -> Case:
        entries = [encode_record(r) for r in records[batch]]
        log = Rotating()

        def run() -> None:
            log_id, n = log.next()
            bare.append(log_id, [(f"r{i}-{n}", e) for i, e in enumerate(entries)])

        return Case(run, setup=log.setup)

    checkpoint = Checkpoint(f"{ORIGIN_PREFIX}/acme", 1_000_000, b"\x01" * HASH_SIZE)
    cases: dict[str, Case | Callable[[], object]] = {
        "sign": lambda: sign_checkpoint(checkpoint, keys.signers)
    }
    for b in APPEND_BATCHES:
        cases[f"service-{b}"] = service_case(b)
        cases[f"bare-{b}"] = bare_case(b)
    stats = measure(cases, budget)
    table = Table(
        "receipts",
        "Receipts: AuditService.append (in memory) = log append + a signed checkpoint + one proof per record",
        [
            Column("batch", "batch"),
            Column("service_us", "service µs", ",.0f"),
            Column("log_us", "log append µs", ",.0f"),
            Column("sign_us", "sign µs", ",.0f"),
            Column("x_parts", "x (log + sign)", ".2f"),
            Column("per_record_us", "µs / receipt", ",.1f"),
        ],
        notes=[
            (
                "service = AuditService.append of `batch` decision records (encode, sequence, integrate,"
                " publish a checkpoint signed by Ed25519 + ML-DSA-65 + Falcon-512 after a consistency proof,"
                " an inclusion proof per record); log append = TransparencyLog.append of the same entries;"
                " sign = one checkpoint signing. x (log + sign) = service / (log append + sign)."
            ),
        ],
    )
    summary: dict[str, float] = {}
    sign = stats["sign"]
    for b in APPEND_BATCHES:
        service_stats, bare_stats = stats[f"service-{b}"], stats[f"bare-{b}"]
        parts = bare_stats.median_ns + sign.median_ns
        table.add(
            batch=b,
            service_us=service_stats.median_us,
            log_us=bare_stats.median_us,
            sign_us=sign.median_us,
            x_parts=ratio(service_stats.median_ns, parts),
            per_record_us=service_stats.median_us / b,
        )
        summary[f"receipts_batch{b}_vs_log_plus_sign"] = ratio(service_stats.median_ns, parts)
    return ReceiptsResult(table, summary)
