"""c2sp.org/tlog-tiles: tile and entry-bundle paths and encodings, and reading any tree node from tiles.

A tile at level ``L``, index ``N`` holds the hashes of the tree's nodes at level ``8*L`` with indexes
``N*256 .. N*256+W-1`` (``W`` = 256 for a full tile, fewer for the partial tile at the right edge), as
the concatenation of 32-byte hashes. Entry bundles hold the entries themselves (256 per full bundle), each
prefixed by its big-endian uint16 length. Every path names immutable content, partial tiles included: a
partial one's path carries its width, and the wider one that follows it as the log grows has its own.
Paths: ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, where ``<N>`` is written in 3-digit
groups, every group but the last prefixed with ``x`` (1234067 -> ``x001/x234/067``). Pure: no storage here.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reliquary.audit import accel
from reliquary.audit.merkle import HASH_SIZE, SHA256, Hasher, NodeID
from reliquary.errors import InvalidRequestError, LogInconsistentError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_SIZE = 0xFFFF
_ENTRY_LENGTH = struct.Struct(">H")
_MAX_LEVEL = 63
# tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>], ASCII digits only (no re.UNICODE \d).
_PATH = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)"
    r"/(?P<index>(?:x[0-9]{3}/){0,6}[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?",
    re.ASCII,
)
_MAX_PATH_CHARS = 64


@dataclass(frozen=True, slots=True, order=True)
class TileRef:
    """A tile (``level`` >= 0) or an entry bundle (``level`` is None) and its width (1..256)."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if (
            self.index < 0
            or not 1 <= self.width <= TILE_WIDTH
            or (self.level is not None and not 0 <= self.level <= _MAX_LEVEL)
        ):
            raise InvalidRequestError("not a tile", level=self.level, index=self.index, width=self.width)

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        prefix = "tile/entries" if self.level is None else f"tile/{self.level}"
        suffix = "" if self.full else f".p/{self.width}"
        return f"{prefix}/{encode_index(self.index)}{suffix}"


def encode_index(index: int) -> str:
    """1234067 -> 'x001/x234/067'; 5 -> '005'."""
    if index < 0:
        raise InvalidRequestError("a tile index is not negative", index=index)
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def parse_path(path: str) -> TileRef:
    """The tile or entry bundle a path names; InvalidRequestError for anything else.

    Only the canonical ASCII spelling is a path: decimal digits 0-9 only (``str.isdigit`` and ``\\d``
    would take ``²`` or ``٣``), no signs, no leading zeros, no empty segments, at most 7 index groups
    (every uint64 index). The error never repeats the path: it is the caller's input."""
    match = _PATH.fullmatch(path) if isinstance(path, str) and len(path) <= _MAX_PATH_CHARS else None
    if match is None:
        raise InvalidRequestError("not a tile path")
    level_text, index_text, width_text = match.group("level", "index", "width")
    level = None if level_text == "entries" else int(level_text)
    width = TILE_WIDTH if width_text is None else int(width_text)
    if (level is not None and level > _MAX_LEVEL) or (width_text is not None and width >= TILE_WIDTH):
        raise InvalidRequestError("not a tile path")
    ref = TileRef(level, int(index_text.replace("x", "").replace("/", "")), width)
    if ref.path != path:  # a leading zero group (x000/...): not the canonical spelling
        raise InvalidRequestError("not the canonical tile path")
    return ref


def tiles_for_size(size: int) -> list[TileRef]:
    """Every tile and entry bundle a tree of ``size`` leaves has (partial ones at the right edge)."""
    refs = [
        TileRef(None, index, min(TILE_WIDTH, size - index * TILE_WIDTH))
        for index in range(-(-size // TILE_WIDTH))
    ]
    level, count = 0, size  # count: nodes at tree level 8*level
    while count > 0:
        refs.extend(
            TileRef(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH))
            for index in range(-(-count // TILE_WIDTH))
        )
        level, count = level + 1, count >> TILE_HEIGHT
    return refs


def tiles_changed(old_size: int, new_size: int) -> list[TileRef]:
    """The tiles and bundles that growing from ``old_size`` to ``new_size`` writes (new or wider), in the
    order of ``tiles_for_size``. Only the right edge of each row can change: O(rows + tiles written)."""
    if not 0 <= old_size <= new_size:
        raise InvalidRequestError("tiles change only as a tree grows", old_size=old_size, new_size=new_size)
    refs: list[TileRef] = []
    rows: list[tuple[int | None, int, int]] = [(None, old_size, new_size)]
    level, old, new = 0, old_size, new_size
    while new > 0:
        rows.append((level, old, new))
        level, old, new = level + 1, old >> TILE_HEIGHT, new >> TILE_HEIGHT
    for row_level, old_count, new_count in rows:
        for index in range(old_count // TILE_WIDTH, -(-new_count // TILE_WIDTH)):
            width = min(TILE_WIDTH, new_count - index * TILE_WIDTH)
            if width != max(0, min(TILE_WIDTH, old_count - index * TILE_WIDTH)):
                refs.append(TileRef(row_level, index, width))
    return refs


def tile_at(level: int | None, index: int, size: int) -> TileRef | None:
    """The tile (or bundle, ``level`` None) at ``index`` of a tree of ``size``; None if it has none."""
    count = size if level is None else size >> (level * TILE_HEIGHT)
    width = min(TILE_WIDTH, count - index * TILE_WIDTH)
    return TileRef(level, index, width) if width > 0 else None


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    if not 1 <= len(hashes) <= TILE_WIDTH or any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidRequestError("a tile holds 1 to 256 hashes of 32 bytes")
    return b"".join(hashes)


def decode_tile(data: bytes, ref: TileRef) -> list[bytes]:
    if ref.level is None or len(data) != ref.width * HASH_SIZE:
        raise LogInconsistentError("a tile has the wrong size", path=ref.path, size=len(data))
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise InvalidRequestError("an entry bundle holds 1 to 256 entries")
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise InvalidRequestError(f"a log entry is at most {MAX_ENTRY_SIZE} bytes", size=len(entry))
        parts.append(_ENTRY_LENGTH.pack(len(entry)) + entry)
    return b"".join(parts)


def decode_bundle(data: bytes, ref: TileRef) -> list[bytes]:
    if ref.level is not None:
        raise InvalidRequestError("not an entry bundle", path=ref.path)
    entries, position = [], 0
    while position < len(data):
        if position + 2 > len(data):
            raise LogInconsistentError("an entry bundle is truncated", path=ref.path)
        (length,) = _ENTRY_LENGTH.unpack_from(data, position)
        position += 2
        if position + length > len(data):
            raise LogInconsistentError("an entry bundle is truncated", path=ref.path)
        entries.append(data[position : position + length])
        position += length
    if len(entries) != ref.width:
        raise LogInconsistentError("an entry bundle has the wrong number of entries", path=ref.path)
    return entries


def tile_for_node(node: NodeID, size: int) -> tuple[TileRef, int, int]:
    """The tile holding ``node``'s subtree (for a tree of ``size``), and the slice of that tile's hashes
    whose Merkle root is the node: a node between tile levels is hashed up from the tile below it."""
    if node.end > size:
        raise InvalidRequestError(
            "the node is not in the tree", level=node.level, index=node.index, size=size
        )
    tile_level = node.level // TILE_HEIGHT
    shift = node.level - tile_level * TILE_HEIGHT
    first = node.index << shift  # the node's first descendant at tree level 8*tile_level
    tile_index = first >> TILE_HEIGHT
    row_size = size >> (tile_level * TILE_HEIGHT)  # nodes at tree level 8*tile_level
    width = min(TILE_WIDTH, row_size - tile_index * TILE_WIDTH)
    start = first - tile_index * TILE_WIDTH
    return TileRef(tile_level, tile_index, width), start, start + (1 << shift)


def node_hash(
    node: NodeID, size: int, get_tile: Callable[[TileRef], Sequence[bytes]], hasher: Hasher = SHA256
) -> bytes:
    """The hash of any perfect subtree of a tree of ``size``, read from its tiles."""
    ref, start, end = tile_for_node(node, size)
    hashes = get_tile(ref)
    if len(hashes) != ref.width:
        raise LogInconsistentError("a tile has the wrong width", path=ref.path)
    if end - start == 1:
        return hashes[start]
    # The perfect subtree over that slice of the row (in C when the native layer is there).
    return accel.subtree_roots(hashes[start:end], end - start, hasher)[0]
