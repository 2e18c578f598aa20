"""c2sp tlog-tiles layout: paths, which tiles a tree has, encodings, and any node read back from tiles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary.audit import merkle, tiles
from reliquary.audit.merkle import CompactRange, NodeID
from reliquary.audit.tiles import TILE_WIDTH, TileRef
from reliquary.errors import InvalidRequestError, LogInconsistentError


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        (TileRef(0, 1234067), "tile/0/x001/x234/067"),  # the example of the specification
        (TileRef(0, 1234067, 8), "tile/0/x001/x234/067.p/8"),
        (TileRef(1, 5), "tile/1/005"),
        (TileRef(2, 1000), "tile/2/x001/000"),
        (TileRef(None, 0, 3), "tile/entries/000.p/3"),
        (TileRef(None, 999), "tile/entries/999"),
    ],
)
def test_paths_round_trip(ref: TileRef, path: str) -> None:
    assert ref.path == path
    assert tiles.parse_path(path) == ref


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",
        "tile/0/x000/001",  # a leading zero group
        "tile/00/001",
        "tile/0/001.p/256",
        "tile/0/001.p/0",
        "tile/0/001.p/07",
        "tile/0/x1/001",
        "tile/entries",
        "tiles/0/001",
        "tile/-1/001",
        "tile/64/001",
        "tile/0/001/",
    ],
)
def test_non_canonical_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidRequestError):
        tiles.parse_path(path)


_BAD_PATHS = {
    # digits that are not ASCII 0-9 (str.isdigit and re's \d take some of them; int() takes others)
    "superscript level": "tile/\u00b2/000",
    "superscript index": "tile/0/00\u00b2",
    "superscript width": "tile/0/000.p/\u00b2",
    "arabic-indic index": "tile/0/\u0660\u0660\u0661",
    "arabic-indic group": "tile/0/x\u0660\u0660\u0661/000",
    "fullwidth level": "tile/\uff11/000",
    "fullwidth width": "tile/0/000.p/\uff15",
    "devanagari level": "tile/\u0967/000",
    # signs and spaces
    "plus level": "tile/+1/000",
    "minus level": "tile/-1/000",
    "plus width": "tile/0/000.p/+5",
    "minus width": "tile/0/000.p/-5",
    "underscore in width": "tile/0/000.p/1_0",
    "space in level": "tile/ 1/000",
    "trailing newline": "tile/0/000\n",
    "leading space": " tile/0/000",
    # leading zeros where forbidden
    "zero-padded level": "tile/01/000",
    "double zero level": "tile/00/000",
    "zero-padded width": "tile/0/000.p/05",
    "zero width": "tile/0/000.p/0",
    "zero leading group": "tile/0/x000/005",
    "short group": "tile/0/5",
    "long group": "tile/0/0005",
    # overlong
    "level 64": "tile/64/000",
    "level 100": "tile/100/000",
    "width 256": "tile/0/000.p/256",
    "width 1000": "tile/0/000.p/1000",
    "eight index groups": "tile/0/" + "x001/" * 7 + "000",
    "thousands of groups": "tile/0/" + "x001/" * 2000 + "000",
    "a megabyte": "tile/0/" + "9" * 1_000_000,
    # empty and extra segments
    "empty": "",
    "tile alone": "tile",
    "tile slash": "tile/",
    "empty level": "tile//000",
    "empty index": "tile/0/",
    "empty group": "tile/0//000",
    "empty width": "tile/0/000.p/",
    "no index before .p": "tile/0/.p/5",
    "trailing slash": "tile/0/000/",
    "leading slash": "/tile/0/000",
    "entries without index": "tile/entries/",
    "two widths": "tile/0/000.p/5/6",
    "another suffix": "tile/0/000.q/5",
    "upper-case x": "tile/0/X001/000",
    "upper-case tile": "TILE/0/000",
    "checkpoint under tile": "tile/checkpoint",
    "dot segments": "tile/0/../000",
    "nul byte": "tile/0/000\x00",
}


@pytest.mark.parametrize("path", _BAD_PATHS.values(), ids=_BAD_PATHS.keys())
def test_bad_paths_are_a_typed_error_that_does_not_repeat_them(path: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        tiles.parse_path(path)
    assert type(caught.value) is InvalidRequestError
    assert caught.value.code == "invalid_request"
    # The caller's input is never echoed: a fixed message and no details.
    assert caught.value.message in {"not a tile path", "not the canonical tile path"}
    assert caught.value.details == {}


@given(
    level=st.one_of(st.none(), st.integers(0, 63)),
    index=st.integers(0, 2**64 - 1),
    width=st.integers(1, 256),
)
def test_every_tile_path_parses_back(level: int | None, index: int, width: int) -> None:
    ref = TileRef(level, index, width)
    assert tiles.parse_path(ref.path) == ref


def test_tiles_of_a_tree() -> None:
    assert tiles.tiles_for_size(0) == []
    assert tiles.tiles_for_size(1) == [TileRef(None, 0, 1), TileRef(0, 0, 1)]
    size = 256 * 256 + 257  # two levels of full tiles and a partial edge on each
    refs = tiles.tiles_for_size(size)
    assert TileRef(0, 256, 256) in refs
    assert TileRef(0, 257, 1) in refs
    assert TileRef(1, 0, 256) in refs
    assert TileRef(1, 1, 1) in refs
    assert TileRef(2, 0, 1) in refs
    assert TileRef(None, 257, 1) in refs
    assert len([r for r in refs if r.level == 0]) == 258
    # Growing writes the new tiles and the widened edge, never a full tile again.
    changed = tiles.tiles_changed(300, 600)
    assert TileRef(0, 1, 256) in changed
    assert TileRef(0, 2, 88) in changed
    assert TileRef(0, 0, 256) not in changed
    assert all(not (r.full and r in tiles.tiles_for_size(300)) for r in changed)


def test_encodings_are_strict() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    ref = TileRef(0, 0, 3)
    assert tiles.decode_tile(tiles.encode_tile(hashes), ref) == hashes
    with pytest.raises(LogInconsistentError):
        tiles.decode_tile(tiles.encode_tile(hashes)[:-1], ref)
    entries = [b"", b"a", b"x" * 65535]
    bundle = tiles.encode_bundle(entries)
    assert tiles.decode_bundle(bundle, TileRef(None, 0, 3)) == entries
    for bad in (bundle[:-1], bundle + b"\x00", bundle + b"\x00\x00"):
        with pytest.raises(LogInconsistentError):
            tiles.decode_bundle(bad, TileRef(None, 0, 3))
    with pytest.raises(InvalidRequestError):
        tiles.encode_bundle([b"x" * 65536])
    with pytest.raises(InvalidRequestError):
        tiles.encode_tile([])


def _tiles_of(leaf_hashes: list[bytes]) -> dict[TileRef, list[bytes]]:
    """Build every tile of a tree the way an appender does: from the nodes the compact range completes."""
    rows: dict[int, dict[int, bytes]] = {}
    _, completed = CompactRange().extend(leaf_hashes)
    for node, digest in completed:
        if node.level % 8 == 0:
            rows.setdefault(node.level // 8, {})[node.index] = digest
    built = {}
    for ref in tiles.tiles_for_size(len(leaf_hashes)):
        if ref.level is not None:
            row = rows[ref.level]
            built[ref] = [row[ref.index * TILE_WIDTH + i] for i in range(ref.width)]
    return built


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 70_000), data=st.data())
def test_any_node_of_a_tree_is_read_back_from_its_tiles(size: int, data: st.DataObject) -> None:
    leaf_hashes = [merkle.SHA256.hash_leaf(i.to_bytes(4, "big")) for i in range(size)]
    built = _tiles_of(leaf_hashes)

    def get_tile(ref: TileRef) -> list[bytes]:
        return built[ref]

    level = data.draw(st.integers(0, size.bit_length() - 1))
    index = data.draw(st.integers(0, (size >> level) - 1))
    node = NodeID(level, index)
    expected = merkle.root_of(leaf_hashes[node.begin : node.end])
    assert tiles.node_hash(node, size, get_tile) == expected
    # And the proofs a log serves are assembled from tiles alone.
    leaf = data.draw(st.integers(0, size - 1))
    proof = merkle.assemble(merkle.inclusion_plan(leaf, size), lambda n: tiles.node_hash(n, size, get_tile))
    merkle.verify_inclusion(leaf, size, leaf_hashes[leaf], proof, merkle.root_of(leaf_hashes))


def test_a_node_outside_the_tree_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        tiles.tile_for_node(NodeID(3, 1), 15)
