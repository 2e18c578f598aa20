"""reliquary_native.merkle (libreliquary_merkle.so) against a pure-Python RFC 9162 reference written here.

The reference is a transcription of RFC 9162 §2.1.1 (MTH) and §2.1.3.1 (PATH), recursive as the RFC
states them, with hashlib; it shares no code with the library or with reliquary.audit. The library is the
one ``make native`` builds into layers/native/lib; the last tests build the whole layer and load it from
there in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary_native import merkle

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "layers" / "native"
LOCAL_LIB = NATIVE / "lib"
LIBRARY = "libreliquary_merkle.so"
LIBCRYPTO = "libcrypto-a324fe28.so.1.1.1k"
EXPORTED = {
    "rq_abi_version",
    "rq_hash_leaves",
    "rq_root",
    "rq_subtree_roots",
    "rq_verify_inclusion",
    "rq_verify_inclusions",
    "rq_sha256_floor",
    "rq_hash_bundle",
}
CHILD_TIMEOUT_S = 60
# Variables of the parent that would change what a child loads or how make behaves.
SCRUBBED_ENV = (
    "RELIQUARY_NATIVE_LIB_DIR",
    "OQS_INSTALL_PATH",
    "PYTHONPATH",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "ARTIFACTS_DIR",
)

# RFC 6962's test leaves (Certificate Transparency's merkle_tree_test) and their published roots.
RFC6962_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


# --- the reference: RFC 9162 §2.1.1 and §2.1.3.1 --------------------------------------------------------


def ref_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes], begin: int = 0, end: int | None = None) -> bytes:
    """MTH(D[begin:end]) from the leaf hashes of D (ranges instead of slices, to stay linear)."""
    end = len(leaves) if end is None else end
    n = end - begin
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[begin]
    k = split(n)
    return ref_node(ref_mth(leaves, begin, begin + k), ref_mth(leaves, begin + k, end))


def ref_path(leaves: Sequence[bytes], m: int, begin: int, end: int) -> list[bytes]:
    """PATH(m, D[begin:end])."""
    n = end - begin
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*ref_path(leaves, m, begin, begin + k), ref_mth(leaves, begin + k, end)]
    return [*ref_path(leaves, m - k, begin + k, end), ref_mth(leaves, begin, begin + k)]


def entries_for(n: int) -> list[bytes]:
    """n distinct entries of varied lengths (the first one empty)."""
    return [i.to_bytes(4, "big")[: i % 5] + b"entry %d" % i * (i % 3) for i in range(n)]


# The tree for the exhaustive inclusion tests: distinct leaves, roots and proofs of every size up to 71.
INCLUSION_MAX_SIZE = 70
INCLUSION_LEAVES = [ref_leaf(b"leaf %d" % i) for i in range(INCLUSION_MAX_SIZE + 1)]


@cache
def inclusion_root(size: int) -> bytes:
    return ref_mth(INCLUSION_LEAVES, 0, size)


@cache
def inclusion_proof(index: int, size: int) -> tuple[bytes, ...]:
    return tuple(ref_path(INCLUSION_LEAVES, index, 0, size))


def flip(value: bytes, bit: int = 0) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(changed)


# --- the library ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def built_library() -> None:
    if not merkle.available():
        pytest.fail(f"{LOCAL_LIB}/{LIBRARY} does not load: run `make native` (or `make setup`) first")


def test_reference_agrees_with_the_published_rfc6962_roots() -> None:
    leaves = [ref_leaf(e) for e in RFC6962_LEAVES]
    assert [ref_mth(leaves, 0, n).hex() for n in range(1, 9)] == RFC6962_ROOTS


def test_published_rfc6962_roots() -> None:
    leaf_hashes = merkle.hash_leaves(RFC6962_LEAVES)
    assert [merkle.root(leaf_hashes[: 32 * n]).hex() for n in range(1, 9)] == RFC6962_ROOTS


def test_empty_tree() -> None:
    assert merkle.hash_leaves([]) == b""
    assert merkle.root(b"") == hashlib.sha256(b"").digest()
    assert merkle.subtree_roots(b"", 256) == b""
    assert merkle.verify_inclusions([]) == []


def test_hash_leaves_matches_the_reference() -> None:
    entries = entries_for(300)
    assert merkle.hash_leaves(entries) == b"".join(map(ref_leaf, entries))


@pytest.mark.parametrize("length", [0, 1, 63, 64, 1022, 1023, 1024, 1025, 4096, 100_000])
def test_hash_leaves_at_every_entry_size(length: int) -> None:
    # The library copies entries up to 1023 bytes onto its stack and streams larger ones: both paths.
    entry = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert merkle.hash_leaves([entry, b"", entry]) == ref_leaf(entry) + ref_leaf(b"") + ref_leaf(entry)


def test_roots_of_every_size_up_to_300() -> None:
    leaves = [ref_leaf(e) for e in entries_for(300)]
    joined = b"".join(leaves)
    for n in range(301):
        assert merkle.root(joined[: 32 * n]) == ref_mth(leaves, 0, n), n


@pytest.mark.parametrize("n", [255, 256, 257, 1023, 1024, 1025, 65535, 65536, 65537])
def test_roots_around_powers_of_two(n: int) -> None:
    entries = entries_for(n)
    leaf_hashes = merkle.hash_leaves(entries)
    assert merkle.root(leaf_hashes) == ref_mth([ref_leaf(e) for e in entries])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=1100) | st.just(b""), max_size=90))
def test_arbitrary_entries(entries: list[bytes]) -> None:
    leaf_hashes = merkle.hash_leaves(entries)
    leaves = [ref_leaf(e) for e in entries]
    assert leaf_hashes == b"".join(leaves)
    assert merkle.root(leaf_hashes) == ref_mth(leaves)


def _bundle(entries: Sequence[bytes]) -> bytes:
    """A c2sp tlog-tiles entry bundle, framed independently of the code under test."""
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=256))
def test_hash_bundle_hashes_every_entry_of_a_bundle(entries: list[bytes]) -> None:
    assert merkle.hash_bundle(_bundle(entries), len(entries)) == b"".join(ref_leaf(e) for e in entries)


def test_hash_bundle_takes_the_largest_entries() -> None:
    entries = [b"\xff" * 65535, b"", b"x" * 1024]
    assert merkle.hash_bundle(_bundle(entries), 3) == b"".join(ref_leaf(e) for e in entries)


@pytest.mark.parametrize(
    ("bundle", "count"),
    [
        (_bundle([b"abc", b"de"])[:-1], 2),  # truncated entry
        (_bundle([b"abc", b"de"]) + b"\x00", 2),  # trailing byte
        (_bundle([b"abc", b"de"]), 3),  # fewer entries than said
        (_bundle([b"abc", b"de"]), 1),  # more entries than said
        (b"\x00", 1),  # a truncated length
        (b"\x00\x00", 0),  # bytes but no entries
    ],
)
def test_hash_bundle_refuses_a_malformed_bundle(bundle: bytes, count: int) -> None:
    with pytest.raises(ValueError, match="bundle"):
        merkle.hash_bundle(bundle, count)


def test_hash_bundle_of_nothing() -> None:
    assert merkle.hash_bundle(b"", 0) == b""


def test_hash_leaves_accepts_any_bytes_like_entries() -> None:
    entries: list[Any] = [bytearray(b"ab"), memoryview(b"cd"), b"ef"]
    assert merkle.hash_leaves(entries) == ref_leaf(b"ab") + ref_leaf(b"cd") + ref_leaf(b"ef")


@pytest.mark.parametrize("width", [2**k for k in range(11)])
def test_subtree_roots(width: int) -> None:
    leaves = [ref_leaf(e) for e in entries_for(1024)]
    expected = [ref_mth(leaves, begin, begin + width) for begin in range(0, 1024, width)]
    assert merkle.subtree_roots(b"".join(leaves), width) == b"".join(expected)


def test_subtree_roots_make_tlog_tiles() -> None:
    # c2sp tlog-tiles: a level-1 tile row holds the roots of 256-leaf subtrees, and the subtree roots of
    # that row, taken as leaves of the next level, are the level-2 hashes.
    leaves = merkle.hash_leaves(entries_for(4 * 256))
    level1 = merkle.subtree_roots(leaves, 256)
    assert len(level1) == 4 * 32
    assert merkle.subtree_roots(level1, 4) == merkle.root(leaves) == merkle.subtree_roots(leaves, 1024)
    assert merkle.subtree_roots(leaves, 1) == leaves


def test_concurrent_calls_agree() -> None:
    # No state between calls, and ctypes releases the GIL: threads hash at the same time.
    batches = [entries_for(2000 + i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(lambda entries: merkle.root(merkle.hash_leaves(entries)), batches))
    assert roots == [ref_mth([ref_leaf(e) for e in entries]) for entries in batches]


def test_sha256_floor_does_the_same_hashing_without_the_tree() -> None:
    entries = entries_for(50)
    digest = b""
    for entry in entries:
        digest = ref_leaf(entry)
    for _ in range(len(entries) - 1):
        digest = ref_node(digest, digest)
    assert merkle.sha256_floor(entries) == digest
    assert merkle.sha256_floor([]) == hashlib.sha256(b"").digest()
    assert merkle.sha256_floor([b"x"]) == ref_leaf(b"x")


# --- inclusion proofs -----------------------------------------------------------------------------------


def all_claims() -> list[tuple[int, int]]:
    return [(index, size) for size in range(1, INCLUSION_MAX_SIZE + 1) for index in range(size)]


def tampered(index: int, size: int) -> dict[str, tuple[int, int, bytes, list[bytes], bytes]]:
    """Every way of breaking the valid claim (index, size): none of them may verify."""
    leaf = INCLUSION_LEAVES[index]
    proof = list(inclusion_proof(index, size))
    root = inclusion_root(size)
    cases = {
        "appended": (index, size, leaf, [*proof, hashlib.sha256(b"extra").digest()], root),
        "index+1": (index + 1, size, leaf, proof, root),
        "wrong root": (index, size, leaf, proof, flip(root, 255)),
        "wrong leaf": (index, size, INCLUSION_LEAVES[(index + 1) % len(INCLUSION_LEAVES)], proof, root),
        "flipped leaf": (index, size, flip(leaf, 3), proof, root),
        # Another size with its own root: the proof of one tree is not a proof in the other.
        "size+1": (index, size + 1, leaf, proof, inclusion_root(size + 1)),
        "size-1": (index, size - 1, leaf, proof, inclusion_root(size - 1)),
    }
    if index > 0:
        cases["index-1"] = (index - 1, size, leaf, proof, root)
    for i in range(len(proof)):
        cases[f"node {i} flipped"] = (
            index,
            size,
            leaf,
            [*proof[:i], flip(proof[i], 8 * i + 1), *proof[i + 1 :]],
            root,
        )
        cases[f"node {i} removed"] = (index, size, leaf, proof[:i] + proof[i + 1 :], root)
    return cases


def test_every_valid_inclusion_proof_verifies() -> None:
    claims = all_claims()
    items = [(i, n, INCLUSION_LEAVES[i], list(inclusion_proof(i, n)), inclusion_root(n)) for i, n in claims]
    assert len(items) == 70 * 71 // 2
    assert all(merkle.verify_inclusion(*item) for item in items)
    assert merkle.verify_inclusions(items) == [True] * len(items)


def test_no_tampered_inclusion_proof_verifies() -> None:
    checked = 0
    for index, size in all_claims():
        cases = tampered(index, size)
        accepted = [name for name, item in cases.items() if merkle.verify_inclusion(*item)]
        assert accepted == [], (index, size, accepted)
        assert merkle.verify_inclusions(list(cases.values())) == [False] * len(cases), (index, size)
        checked += len(cases)
    assert checked > 30_000


def test_batch_with_one_bad_proof_in_64() -> None:
    claims = [(i * 7 % n, n) for i, n in enumerate(range(7, 71))]
    items = [(i, n, INCLUSION_LEAVES[i], list(inclusion_proof(i, n)), inclusion_root(n)) for i, n in claims]
    assert len(items) == 64
    index, size, leaf, proof, root = items[37]
    items[37] = (index, size, leaf, [*proof[:-1], flip(proof[-1])], root)
    results = merkle.verify_inclusions(items)
    assert results == [i != 37 for i in range(64)]


def test_index_outside_the_tree_is_invalid_not_an_error() -> None:
    leaf = INCLUSION_LEAVES[0]
    assert merkle.verify_inclusion(0, 0, leaf, [], hashlib.sha256(b"").digest()) is False
    assert merkle.verify_inclusion(5, 5, leaf, list(inclusion_proof(4, 5)), inclusion_root(5)) is False
    assert merkle.verify_inclusion(2**64 - 1, 2**64 - 1, leaf, [leaf] * 64, leaf) is False
    assert merkle.verify_inclusion(2**64 - 2, 2**64 - 1, leaf, [leaf] * 64, leaf) is False


def test_single_leaf_tree() -> None:
    leaf = ref_leaf(b"only")
    assert merkle.verify_inclusion(0, 1, leaf, [], leaf) is True
    assert merkle.verify_inclusion(0, 1, leaf, [leaf], leaf) is False


def test_size_is_bound_only_through_the_root() -> None:
    # RFC 9162's verifier checks the proof's shape against the size and the hashes against the root. The
    # proof of leaf 0 in a 5-leaf tree has the same shape in a 6-leaf tree, so with the 5-leaf root it is
    # accepted for size 6 too: callers must take size and root from one checkpoint.
    proof = list(inclusion_proof(0, 5))
    assert merkle.verify_inclusion(0, 6, INCLUSION_LEAVES[0], proof, inclusion_root(5)) is True
    assert merkle.verify_inclusion(0, 6, INCLUSION_LEAVES[0], proof, inclusion_root(6)) is False


# --- arguments ------------------------------------------------------------------------------------------

HASH = bytes(32)
BAD_CALLS: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "root: partial hash": (lambda: merkle.root(bytes(33)), ValueError, "whole number of 32-byte"),
    "root: str": (lambda: merkle.root("00" * 32), TypeError, "must be bytes"),  # type: ignore[arg-type]
    "subtree_roots: width 0": (lambda: merkle.subtree_roots(HASH * 4, 0), ValueError, "power of two"),
    "subtree_roots: width 3": (lambda: merkle.subtree_roots(HASH * 6, 3), ValueError, "power of two"),
    "subtree_roots: width -2": (lambda: merkle.subtree_roots(HASH * 4, -2), ValueError, "[0, 2**64)"),
    "subtree_roots: 6 by 4": (lambda: merkle.subtree_roots(HASH * 6, 4), ValueError, "not a whole number"),
    "subtree_roots: partial": (lambda: merkle.subtree_roots(HASH + b"x", 1), ValueError, "33 bytes"),
    "hash_leaves: one bytes": (
        lambda: merkle.hash_leaves(b"entry"),  # type: ignore[arg-type]
        TypeError,
        "sequence of bytes",
    ),
    "hash_leaves: int entry": (
        lambda: merkle.hash_leaves([b"a", 1]),  # type: ignore[list-item]
        TypeError,
        "bytes-like",
    ),
    "floor: str": (
        lambda: merkle.sha256_floor("entry"),  # type: ignore[arg-type]
        TypeError,
        "sequence of bytes",
    ),
    "verify: short leaf": (
        lambda: merkle.verify_inclusion(0, 1, HASH[:31], [], HASH),
        ValueError,
        "leaf_hash",
    ),
    "verify: long root": (lambda: merkle.verify_inclusion(0, 1, HASH, [], HASH + b"x"), ValueError, "root"),
    "verify: short node": (
        lambda: merkle.verify_inclusion(0, 4, HASH, [HASH, HASH[:16]], HASH),
        ValueError,
        "proof[1]",
    ),
    "verify: proof bytes": (
        lambda: merkle.verify_inclusion(0, 2, HASH, HASH, HASH),  # type: ignore[arg-type]
        TypeError,
        "sequence",
    ),
    "verify: negative index": (lambda: merkle.verify_inclusion(-1, 2, HASH, [], HASH), ValueError, "index"),
    "verify: huge size": (lambda: merkle.verify_inclusion(0, 2**64, HASH, [], HASH), ValueError, "size"),
    "verify: bool index": (lambda: merkle.verify_inclusion(True, 2, HASH, [], HASH), TypeError, "index"),
    "batch: bad item": (
        lambda: merkle.verify_inclusions([(0, 1, HASH, [], HASH), (0, 1, HASH, [], HASH[:8])]),
        ValueError,
        "items[1]: root",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_are_rejected_in_python(name: str) -> None:
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=re.escape(message)):
        call()


# --- the library file, and loading it from the built layer -------------------------------------------------


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = CHILD_TIMEOUT_S) -> str:
    tool = shutil.which(argv[0])
    if tool is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.run(  # noqa: S603 (fixed tools, our own paths)
        [tool, *argv[1:]], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(extra)
    return env


def symbols(which: str, library: Path) -> list[str]:
    """The dynamic symbols (name@version) that ``nm -D`` lists, defined or undefined."""
    return [line.split()[-1] for line in run("nm", "-D", which, str(library)).splitlines() if line.strip()]


def check_library_file(lib_dir: Path) -> None:
    """Exports exactly the API; needs libcrypto by soname through RUNPATH $ORIGIN, and only symbols it has."""
    library = lib_dir / LIBRARY
    dynamic = run("readelf", "-d", str(library))
    assert re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", dynamic) == [LIBCRYPTO, "libc.so.6"]
    assert re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r\w*path: \[(.+)\]", dynamic) == ["$ORIGIN"]
    assert f"{LIBCRYPTO} => {lib_dir.resolve() / LIBCRYPTO}" in run("ldd", str(library))

    assert set(symbols("--defined-only", library)) == EXPORTED
    undefined = symbols("--undefined-only", library)
    needed_from_libcrypto = {name.replace("@", "@@") for name in undefined if "@OPENSSL_" in name}
    assert needed_from_libcrypto, undefined
    libcrypto_exports = set(symbols("--defined-only", lib_dir / LIBCRYPTO))
    assert needed_from_libcrypto <= libcrypto_exports
    glibc = [tuple(map(int, v.split("."))) for v in re.findall(r"@GLIBC_([\d.]+)", " ".join(undefined))]
    assert max(glibc) <= (2, 17), undefined  # the layer's libraries need glibc 2.17, no newer
    assert all(("@GLIBC_" in n or "@OPENSSL_" in n or n.startswith(("_ITM_", "__gmon"))) for n in undefined)


def test_local_library_file() -> None:
    check_library_file(LOCAL_LIB)


LOAD_AND_REPORT = """
import json
from pathlib import Path
from reliquary_native import merkle
leaf_hashes = merkle.hash_leaves([b"a", b"b", b"c"])
maps = Path("/proc/self/maps").read_text()
print(json.dumps({
    "library": merkle._lib()._name,
    "module": merkle.__file__,
    "root": merkle.root(leaf_hashes).hex(),
    "mapped": sorted({line.split()[-1] for line in maps.splitlines() if line.endswith((".so", ".1.1.1k"))}),
}))
"""

MISSING_AND_REPORT = """
import json
from reliquary_native import NativeLibraryUnavailable, merkle
calls = {
    "hash_leaves": lambda: merkle.hash_leaves([b"a"]),
    "root": lambda: merkle.root(b""),
    "subtree_roots": lambda: merkle.subtree_roots(b"", 1),
    "verify_inclusion": lambda: merkle.verify_inclusion(0, 1, bytes(32), [], bytes(32)),
    "verify_inclusions": lambda: merkle.verify_inclusions([]),
    "sha256_floor": lambda: merkle.sha256_floor([]),
}
errors = {}
for name, call in calls.items():
    try:
        call()
    except NativeLibraryUnavailable as exc:
        errors[name] = str(exc)
print(json.dumps({"available": [merkle.available(), merkle.available()], "errors": errors}))
"""


def run_child(code: str, *, pythonpath: Path, cwd: Path, lib_dir: Path | None = None) -> dict[str, Any]:
    extra = {"PYTHONPATH": str(pythonpath)}
    if lib_dir is not None:
        extra["RELIQUARY_NATIVE_LIB_DIR"] = str(lib_dir)
    proc = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


@pytest.mark.parametrize("missing", ["everything", "only the merkle library"])
def test_missing_library_raises_everywhere_but_available(missing: str, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    if missing == "only the merkle library":
        for name in ("liboqs.so", LIBCRYPTO):
            (lib / name).symlink_to(LOCAL_LIB / name)

    result = run_child(MISSING_AND_REPORT, pythonpath=NATIVE, cwd=tmp_path, lib_dir=lib)

    assert result["available"] == [False, False]
    assert sorted(result["errors"]) == sorted(
        ["hash_leaves", "root", "subtree_roots", "verify_inclusion", "verify_inclusions", "sha256_floor"]
    )
    expected = (
        f"{LIBRARY} not found in {lib}" if missing != "everything" else f"liboqs.so not found; searched {lib}"
    )
    assert all(expected in error for error in result["errors"].values()), result["errors"]


def test_built_layer_ships_and_loads_the_library(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    run(
        "make",
        "-C",
        str(NATIVE),
        "build-NativeLayer",
        f"ARTIFACTS_DIR={layer}",
        f"PYTHON={sys.executable}",
        env=clean_env(),
        timeout=300,
    )
    lib = layer / "lib"
    assert (lib / LIBRARY).is_file()
    assert not list(lib.glob(".*"))  # no temporary file left behind
    check_library_file(lib)

    result = run_child(LOAD_AND_REPORT, pythonpath=layer / "python", cwd=tmp_path, lib_dir=lib)

    assert Path(result["library"]) == lib.resolve() / LIBRARY
    assert Path(result["module"]).is_relative_to(layer / "python")
    leaves = [ref_leaf(e) for e in (b"a", b"b", b"c")]
    assert result["root"] == ref_mth(leaves).hex()
    ours = [Path(p) for p in result["mapped"] if Path(p).name in (LIBRARY, LIBCRYPTO)]
    assert sorted(ours) == sorted([lib.resolve() / LIBCRYPTO, lib.resolve() / LIBRARY])
