"""pcapng for captures across pods: merge the packets of each pod's tcpdump pcap stream, write one pcapng.

Pure: bytes in, bytes out, no I/O. Blocks follow draft-ietf-opsawg-pcapng, written little-endian (the
byte-order magic 0x1A2B3C4D says so to readers), every option padded to 32 bits and closed by opt_endofopt.
Each pod's stream is read by formats/pcap.py's :class:`~kubectl_debugx.formats.pcap.PcapReader` (the one pcap
parser), which gives the :class:`~kubectl_debugx.formats.pcap.Packet` tuples merged and written here.

API (for commands/capture):

- :func:`section_header` (SHB), :func:`interface_description` (IDB, always ``if_tsresol`` = 9: every EPB
  carries nanoseconds whatever the source's resolution), :func:`enhanced_packet` (EPB),
  :func:`name_resolution` (NRB), :func:`interface_statistics` (ISB: tcpdump's own counts at the end);
  :func:`enhanced_packets` writes a whole :meth:`Merger.ready` list at once.
- :class:`Merger` — a bounded reorder window across N sources, in timestamp order (bound: its docstring).

Block order (checked with tshark 4.0): an IDB may come late (when its pod's pcap header arrives), as long as
it precedes that interface's EPBs; interface ids count IDBs in the order they are written. Write the NRB
before the first EPB: a one-pass reader (tshark from a pipe or a file, without -2) names only later packets.

Additions to the suggested API: ``section_header(comment, userappl=...)`` (userappl defaults to
``kubectl-debugx VERSION``), ``interface_description(..., filter=None)`` (the capture filter as
``if_filter``), :func:`interface_statistics`, :func:`enhanced_packets`, ``Merger(max_held_bytes=...)``,
``Merger.out_of_order`` and ``Merger.watermark()``.
"""

from __future__ import annotations

import heapq
import ipaddress
import struct
from collections import deque
from collections.abc import Iterable

from kubectl_debugx import __version__
from kubectl_debugx.formats.pcap import Packet

_SHB, _IDB, _NRB, _ISB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000004, 0x00000005, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_FILTER = 2, 3, 9, 11
_ISB_STARTTIME, _ISB_ENDTIME, _ISB_IFRECV, _ISB_IFDROP, _ISB_USRDELIV = 2, 3, 4, 5, 8
_NRB_END, _NRB_IPV4, _NRB_IPV6 = 0, 1, 2
_MAX_OPTION = 0xFFFF  # an option's length is a 16-bit field


# ---------------------------------------------------------------------------------------------- writing


def _pad(n: int) -> int:
    return -n % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad(len(value))


def _text(value: str, limit: int = _MAX_OPTION) -> bytes:
    """UTF-8, cut to what an option can hold without splitting a character."""
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raw = raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")
    return raw


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    return b"".join(_option(code, value) for code, value in options) + _option(_OPT_ENDOFOPT, b"")


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(comment: str | None, userappl: str = f"kubectl-debugx {__version__}") -> bytes:
    """The Section Header Block: byte-order magic, version 1.0, section length unknown (-1).

    ``comment`` (opt_comment) records how the capture was made: the command, the cluster server, the start
    time (one per line); ``userappl`` (shb_userappl) names the writer.
    """
    options = [(_SHB_USERAPPL, _text(userappl))] if userappl else []
    if comment:
        options.append((_OPT_COMMENT, _text(comment)))
    body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + _options(options)
    return _block(_SHB, body)


def interface_description(
    name: str, description: str, linktype: int, snaplen: int, filter: str | None = None
) -> bytes:
    """An Interface Description Block; interfaces are numbered from 0 in the order their IDBs are written.

    ``if_tsresol`` is always 9 (ns), so :func:`enhanced_packet` writes ns whatever the source's resolution.
    ``filter`` is the capture filter expression (if_filter, type 0: libpcap filter string).
    """
    options = [(_IF_NAME, _text(name))]
    if description:
        options.append((_IF_DESCRIPTION, _text(description)))
    options.append((_IF_TSRESOL, b"\x09"))
    if filter:
        options.append((_IF_FILTER, b"\0" + _text(filter, _MAX_OPTION - 1)))
    body = struct.pack("<HHI", linktype, 0, snaplen) + _options(options)
    return _block(_IDB, body)


_EPB_HEAD = struct.Struct("<IIIIIII").pack
_U32 = struct.Struct("<I").pack
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4


def enhanced_packets(released: Iterable[tuple[int, Packet]]) -> bytes:
    """The Enhanced Packet Blocks of (interface id, packet) pairs, as :meth:`Merger.ready` gives them, in one
    bytes object; timestamps in ns (if_tsresol = 9)."""
    parts: list[bytes] = []
    append = parts.append
    for interface_id, (ts, orig_len, data) in released:
        size = len(data)
        padding = _PADDING[size & 3]
        total = 32 + size + len(padding)
        append(_EPB_HEAD(_EPB, total, interface_id, ts >> 32, ts & 0xFFFFFFFF, size, orig_len))
        append(data)
        append(padding)
        append(_U32(total))
    return b"".join(parts)


def enhanced_packet(interface_id: int, packet: Packet) -> bytes:
    """One Enhanced Packet Block; the timestamp is in ns (the interface's if_tsresol = 9)."""
    return enhanced_packets(((interface_id, packet),))


def name_resolution(records: list[tuple[str, list[str]]]) -> bytes:
    """A Name Resolution Block: each (IPv4 or IPv6 address, names) pair becomes one record.

    Only packets after it get the names in a one-pass reader. Raises ValueError for an invalid address.
    """
    parts = []
    for address, names in records:
        ip = ipaddress.ip_address(address)
        code = _NRB_IPV4 if ip.version == 4 else _NRB_IPV6
        value = ip.packed + b"".join(_text(name) + b"\0" for name in names)
        parts.append(_option(code, value))
    parts.append(_option(_NRB_END, b""))
    return _block(_NRB, b"".join(parts))


def interface_statistics(
    interface_id: int,
    ts_ns: int,
    *,
    start_ns: int | None = None,
    received: int | None = None,
    dropped: int | None = None,
    delivered: int | None = None,
    comment: str | None = None,
) -> bytes:
    """An Interface Statistics Block with what tcpdump reported at its end.

    tcpdump's "N packets received by filter" is ``received`` (isb_ifrecv), "dropped by kernel" is ``dropped``
    (isb_ifdrop), "captured" is ``delivered`` (isb_usrdeliv); times are ns (the interface's if_tsresol).
    """
    options: list[tuple[int, bytes]] = []
    if start_ns is not None:
        options.append((_ISB_STARTTIME, struct.pack("<II", start_ns >> 32, start_ns & 0xFFFFFFFF)))
    options.append((_ISB_ENDTIME, struct.pack("<II", ts_ns >> 32, ts_ns & 0xFFFFFFFF)))
    for code, count in ((_ISB_IFRECV, received), (_ISB_IFDROP, dropped), (_ISB_USRDELIV, delivered)):
        if count is not None:
            options.append((code, struct.pack("<Q", count)))
    if comment:
        options.append((_OPT_COMMENT, _text(comment)))
    body = struct.pack("<III", interface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF) + _options(options)
    return _block(_ISB, body)


# ---------------------------------------------------------------------------------------------- merging


class Merger:
    """Puts the packets of N sources (one tcpdump stream each) in timestamp order, within a bounded window.

    A held packet is released by :meth:`ready` once

    - its timestamp is at or below the *watermark*: the lowest, over the sources still live, of the highest
      timestamp each has delivered (a live source that has delivered nothing yet holds the watermark back),
    - some packet with an equal or later timestamp has been held for ``window_ns`` of the caller's clock
      (``now_ns``; use a monotonic clock): an idle pod holds the others back by at most the window, or
    - ``held_bytes`` would stay above ``max_held_bytes`` (if set): the earliest packets go first.

    Released packets come out in timestamp order (equal timestamps: in arrival order).

    Bound on disorder. Let the *delay* of a packet be its arrival at the merger (caller's clock) minus its
    timestamp (its node's clock, so the delay includes that clock's skew). A packet P is written after a
    packet Q with a later timestamp only if

    1. P's source was added after Q was written, or
    2. P's own stream delivered a packet with a timestamp >= Q's before P (tcpdump's order is not quite
       timestamp order; the merge then keeps at most that stream's own disorder), or
    3. P arrived more than ``window_ns`` after a packet R with ts(R) >= ts(Q) (the memory cap aside); then
       delay(P) - delay(R) > window_ns + (ts(Q) - ts(P)), so **the inversion ts(Q) - ts(P) is less than how
       much later P's stream delivered than R's, minus the window**. So when all delays lie within a span
       of ``window_ns`` (tcpdump delivers in batches up to about 1 s late, recording 27-*: a window above
       1 s plus the skew between node clocks), the merge writes nothing out of order.

    ``out_of_order`` counts the packets released with a timestamp below one already released.
    """

    def __init__(self, window_ns: int, max_held_bytes: int | None = None) -> None:
        self.window_ns = window_ns
        self.max_held_bytes = max_held_bytes
        self.held = 0
        self.held_bytes = 0
        self.out_of_order = 0
        self._latest: list[int | None] = []  # per source: the highest timestamp it has delivered
        self._live: list[bool] = []
        self._heap: list[tuple[int, int, int, Packet]] = []  # (ts, arrival sequence, source, packet)
        self._seq = 0
        self._arrivals: deque[tuple[int, int]] = deque()  # (now_ns, highest ts) per push, in arrival order
        self._forced = -1  # packets at or below this timestamp go now: the window released them
        self._last_out = -1  # the highest timestamp released

    def add_source(self) -> int:
        """A new source; its id is the index the caller uses as the pcapng interface id."""
        self._latest.append(None)
        self._live.append(True)
        return len(self._live) - 1

    def push(self, source: int, packets: list[Packet], now_ns: int) -> None:
        if not self._live[source]:
            raise ValueError(f"source {source} has ended")
        if not packets:
            return
        heap, push = self._heap, heapq.heappush
        seq = self._seq
        for packet in packets:
            push(heap, (packet[0], seq, source, packet))
            seq += 1
        self._seq = seq
        self.held += len(packets)
        self.held_bytes += sum(len(packet[2]) for packet in packets)
        highest = max(packet[0] for packet in packets)
        latest = self._latest[source]
        self._latest[source] = highest if latest is None else max(latest, highest)
        self._arrivals.append((now_ns, highest))

    @property
    def live(self) -> int:
        """How many sources have not ended."""
        return sum(self._live)

    def end_source(self, source: int) -> None:
        """The source's stream ended: it no longer holds the others back."""
        self._live[source] = False

    def watermark(self) -> int | None:
        """Packets at or below this timestamp can go; None: a live source has delivered nothing yet."""
        marks = [latest for latest, live in zip(self._latest, self._live, strict=True) if live]
        if any(mark is None for mark in marks):
            return None
        return min((mark for mark in marks if mark is not None), default=_INFINITY)

    def ready(self, now_ns: int) -> list[tuple[int, Packet]]:
        """The (source, packet) pairs that can be written now, in timestamp order."""
        arrivals, deadline = self._arrivals, now_ns - self.window_ns
        while arrivals and arrivals[0][0] <= deadline:
            self._forced = max(self._forced, arrivals.popleft()[1])
        mark = self.watermark()
        limit = self._forced if mark is None else max(mark, self._forced)
        return self._release(limit)

    def drain(self) -> list[tuple[int, Packet]]:
        """Everything still held, in timestamp order (at the end)."""
        self._arrivals.clear()
        return self._release(_INFINITY)

    def _release(self, limit: int) -> list[tuple[int, Packet]]:
        """Pop the packets at or below ``limit``, and more while over the memory cap."""
        heap, pop, cap = self._heap, heapq.heappop, self.max_held_bytes
        held_bytes, last, late = self.held_bytes, self._last_out, 0
        out: list[tuple[int, Packet]] = []
        while heap and (heap[0][0] <= limit or (cap is not None and held_bytes > cap)):
            ts, _, source, packet = pop(heap)
            held_bytes -= len(packet[2])
            if ts < last:
                late += 1
            else:
                last = ts
            out.append((source, packet))
        self.held -= len(out)
        self.held_bytes, self._last_out = held_bytes, last
        self.out_of_order += late
        return out


_INFINITY = 1 << 128  # above any timestamp: with no live source, everything goes
