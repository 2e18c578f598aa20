"""Strict binary encoding for envelopes, grants and signed messages.

Big-endian integers and length-prefixed fields. The reader raises ``InvalidEnvelopeError`` (opaque by
design) on any short read, over-long field or trailing byte, so a parser built on it is strict.
"""

from __future__ import annotations

import struct

from reliquary.errors import InvalidEnvelopeError

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


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
        self._buffer += _U16.pack(value)
        return self

    def u32(self, value: int) -> Writer:
        self._buffer += _U32.pack(value)
        return self

    def u64(self, value: int) -> Writer:
        self._buffer += _U64.pack(value)
        return self

    def bytes16(self, data: bytes) -> Writer:
        """A field of up to 65535 bytes, prefixed with its u16 length."""
        self._buffer += _U16.pack(len(data))
        self._buffer += data
        return self

    def text(self, value: str) -> Writer:
        """A UTF-8 string prefixed with its u16 length."""
        return self.bytes16(value.encode("utf-8"))

    def getvalue(self) -> bytes:
        return bytes(self._buffer)


class Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(bytes(data))
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def raw(self, length: int) -> bytes:
        end = self._pos + length
        if length < 0 or end > len(self._data):
            raise InvalidEnvelopeError
        chunk = self._data[self._pos : end].tobytes()
        self._pos = end
        return chunk

    def view(self, length: int) -> memoryview:
        """Like ``raw`` but without copying: for large fields (an item body) read straight from the input."""
        end = self._pos + length
        if length < 0 or end > len(self._data):
            raise InvalidEnvelopeError
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        value: int = _U16.unpack(self.raw(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack(self.raw(4))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self.raw(8))[0]
        return value

    def bytes16(self) -> bytes:
        return self.raw(self.u16())

    def text(self) -> str:
        try:
            return self.bytes16().decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise InvalidEnvelopeError from None

    def expect(self, constant: bytes) -> None:
        if self.raw(len(constant)) != constant:
            raise InvalidEnvelopeError

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise InvalidEnvelopeError
