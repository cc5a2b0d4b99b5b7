"""pcap record framing: pass a pcap byte stream on in whole records only.

The stream arrives in WebSocket frames that may split a record anywhere. Holding back the incomplete tail
(at most one record, bounded by the snaplen) means whatever we have written is always a valid pcap, even when
the stream is cut or a size limit stops it — for files and for pipes alike.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
# Magic numbers as read little-endian: microsecond and nanosecond pcap, written in either byte order.
_MAGICS = {
    0xA1B2C3D4: "<",
    0xA1B23C4D: "<",
    0xD4C3B2A1: ">",
    0x4D3CB2A1: ">",
}


class PcapFormatError(ValueError):
    pass


@dataclass
class PcapStats:
    records: int = 0
    bytes_out: int = 0


class PcapFramer:
    """Feed raw bytes; get back the bytes that complete whole records (global header included)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._tail = b""
        self._order: str | None = None
        self._max_bytes = max_bytes
        self.stats = PcapStats()
        self.limit_reached = False

    @property
    def pending(self) -> int:
        """Bytes held back because their record is not complete yet."""
        return len(self._tail)

    def feed(self, data: bytes | memoryview) -> memoryview:
        if self.limit_reached:
            return memoryview(b"")
        buf = memoryview(self._tail + bytes(data)) if self._tail else memoryview(data)
        pos = 0
        if self._order is None:
            if len(buf) < GLOBAL_HEADER_LEN:
                self._tail = bytes(buf)
                return memoryview(b"")
            magic = struct.unpack_from("<I", buf, 0)[0]
            if magic not in _MAGICS:
                raise PcapFormatError(f"the stream is not pcap (starts with {bytes(buf[:8]).hex()})")
            self._order = _MAGICS[magic]
            pos = GLOBAL_HEADER_LEN
        fmt = self._order + "I"
        end = len(buf)
        limit = None if self._max_bytes is None else self._max_bytes - self.stats.bytes_out
        while end - pos >= RECORD_HEADER_LEN:
            size = RECORD_HEADER_LEN + struct.unpack_from(fmt, buf, pos + 8)[0]
            if pos + size > end:
                break
            if limit is not None and pos + size > limit:
                self.limit_reached = True
                break
            pos += size
            self.stats.records += 1
        self._tail = b"" if self.limit_reached else bytes(buf[pos:])
        self.stats.bytes_out += pos
        return buf[:pos]
