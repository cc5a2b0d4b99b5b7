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
    """Feed raw bytes; get back the buffers that complete whole records (global header included).

    Bytes of a record that is not complete at the end of a feed are copied once and held back; everything
    else is handed back as views of the input (valid until the caller's buffer is reused).
    """

    def __init__(self, max_bytes: int | None = None, *, split: bool = False) -> None:
        """`split`: every unit (the global header, then each record) comes back as a buffer of its own, for a
        writer that puts each record whole in one of several files (remote/ring.py)."""
        self._split = split
        self._held: list[bytes] = []  # the incomplete unit's bytes received so far
        self._held_len = 0
        self._unit_left: int | None = None  # bytes still to come of the current unit; None: size unknown
        self._order: str | None = None  # struct byte order, once the global header is read
        self._max_bytes = max_bytes
        self.stats = PcapStats()
        self.limit_reached = False

    def feed(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        out: list[bytes | memoryview] = []
        if self.limit_reached:
            return out
        view = memoryview(data)
        pos, end, run_start = 0, len(view), 0
        while pos < end:
            if self._unit_left is None:
                size = self._unit_size(view, pos)
                if size is None:
                    break  # the unit's header itself is still incomplete
                self._unit_left = size - self._held_len
            if pos + self._unit_left > end:
                break
            unit_end = pos + self._unit_left
            unit_size = self._held_len + self._unit_left
            if self._max_bytes is not None and self.stats.bytes_out + unit_size > self._max_bytes:
                self.limit_reached = True
                self._held, self._held_len = [], 0
                end = pos  # nothing more of this feed goes out
                break
            if self._split:
                out.append(b"".join([*self._held, bytes(view[pos:unit_end])]) if self._held else view[pos:unit_end])
                self._held, self._held_len = [], 0
                run_start = unit_end
            elif self._held:
                out.extend(self._held)
                self._held, self._held_len = [], 0
                run_start = pos
            if self.stats.bytes_out:  # every unit after the global header is a record
                self.stats.records += 1
            self.stats.bytes_out += unit_size
            self._unit_left = None
            pos = unit_end
        if pos > run_start:
            out.append(view[run_start:pos])
        if pos < end and not self.limit_reached:
            rest = bytes(view[pos:end])
            self._held.append(rest)
            self._held_len += len(rest)
            if self._unit_left is not None:
                self._unit_left -= len(rest)
        return out

    def _unit_size(self, view: memoryview, pos: int) -> int | None:
        """Size of the unit starting with the held bytes then view[pos:]: the global header or a record."""
        need = GLOBAL_HEADER_LEN if self._order is None else RECORD_HEADER_LEN
        missing = need - self._held_len
        if len(view) - pos < missing:
            return None
        header = b"".join(self._held) + bytes(view[pos:pos + missing]) if self._held else view[pos:pos + need]
        if self._order is None:
            magic = struct.unpack_from("<I", header, 0)[0]
            if magic not in _MAGICS:
                raise PcapFormatError(f"the stream is not pcap (starts with {bytes(header[:8]).hex()})")
            self._order = _MAGICS[magic]
            return GLOBAL_HEADER_LEN
        return RECORD_HEADER_LEN + int(struct.unpack_from(self._order + "I", header, 8)[0])
