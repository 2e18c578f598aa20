"""Strict binary encoding for envelopes, grants and signed messages.

Big-endian integers and length-prefixed fields. The reader raises ``InvalidEnvelopeError`` (opaque by
design) on any short read, over-long field or trailing byte, so a parser built on it is strict.
"""

from __future__ import annotations

import struct
from typing import Any

from reliquary.errors import InvalidEnvelopeError

U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


def text16(value: str) -> bytes:
    """A UTF-8 string prefixed with its u16 length, as one bytes object (``Writer.text`` appends it)."""
    encoded = value.encode("utf-8")
    return U16.pack(len(encoded)) + encoded


class Writer:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def raw(self, data: bytes | memoryview) -> Writer:
        self._buffer += data
        return self

    def u8(self, value: int) -> Writer:
        self._buffer.append(value)
        return self

    def u16(self, value: int) -> Writer:
        self._buffer += U16.pack(value)
        return self

    def u32(self, value: int) -> Writer:
        self._buffer += U32.pack(value)
        return self

    def u64(self, value: int) -> Writer:
        self._buffer += U64.pack(value)
        return self

    def bytes16(self, data: bytes) -> Writer:
        """A field of up to 65535 bytes, prefixed with its u16 length."""
        self._buffer += U16.pack(len(data))
        self._buffer += data
        return self

    def text(self, value: str) -> Writer:
        """A UTF-8 string prefixed with its u16 length."""
        return self.bytes16(value.encode("utf-8"))

    def getvalue(self) -> bytes:
        return bytes(self._buffer)


class Reader:
    """Reads fields off the front of a buffer; every method checks its bounds before it reads."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(bytes(data))
        self._end = len(self._data)
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def raw(self, length: int) -> bytes:
        return self.view(length).tobytes()

    def view(self, length: int) -> memoryview:
        """Like ``raw`` but without copying: for large fields (an item body) read straight from the input."""
        start = self._pos
        end = start + length
        if length < 0 or end > self._end:
            raise InvalidEnvelopeError
        self._pos = end
        return self._data[start:end]

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        """A run of fixed-width fields in one step (the hot parsers read their fixed headers this way)."""
        start = self._pos
        end = start + layout.size
        if end > self._end:
            raise InvalidEnvelopeError
        self._pos = end
        return layout.unpack_from(self._data, start)

    def _int(self, layout: struct.Struct) -> int:
        value: int = self.unpack(layout)[0]
        return value

    def u8(self) -> int:
        return self._int(U8)

    def u16(self) -> int:
        return self._int(U16)

    def u32(self) -> int:
        return self._int(U32)

    def u64(self) -> int:
        return self._int(U64)

    def bytes16(self) -> bytes:
        return self.view(self._int(U16)).tobytes()

    def text(self) -> str:
        # Inlined (length, bounds, decode): the grant parser reads five of these per grant.
        start = self._pos + U16.size
        if start > self._end:
            raise InvalidEnvelopeError
        end = start + U16.unpack_from(self._data, self._pos)[0]
        if end > self._end:
            raise InvalidEnvelopeError
        self._pos = end
        try:
            return str(self._data[start:end], "utf-8", "strict")  # decoded from the input, no copy
        except UnicodeDecodeError:
            raise InvalidEnvelopeError from None

    def expect(self, constant: bytes) -> None:
        if self.view(len(constant)) != constant:
            raise InvalidEnvelopeError

    def finish(self) -> None:
        if self._pos != self._end:
            raise InvalidEnvelopeError
