"""--ring N --max-size SIZE: the capture goes to the newest N files of at most SIZE bytes each.

Naming as logrotate does: the file being written is the name given (`web.pcapng`), the older ones `web.1.pcapng`
(the newest of them) … `web.{N-1}.pcapng` (the oldest); a name without an extension gets `.1`, `.2` …

Every file is valid on its own: it starts with the header units seen so far (pcap: the global header; pcapng:
the SHB, the NRB and an IDB for every interface known so far, in the order they were first written, so an
interface keeps its id in every file) and then holds whole records only (a packet, or an ISB). A record is
never split and never lost at rotation: it goes whole to the next file. A record that does not fit in an empty
file (header + record > SIZE) is written alone in a file of its own rather than lost (`oversize` counts them).

Rotation renames newest-last: `web.{N-2}` -> `web.{N-1}` (replacing the oldest, atomically), …, `web` ->
`web.1`, then a new `web` is opened. A crash at any point leaves at least the N-1 older files.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import UsageError
from kubectl_debugx.talk import human_size, plural


def validate(files: int, size: int | None, output: str, viewer: str | None) -> None:
    """--ring's checks, before anything is created; each message names the flags."""
    if files < 2:
        raise UsageError(f"--ring: must be at least 2 files (the one written and an older one), got {files}")
    if size is None:
        raise UsageError("--ring needs --max-size: the size of each file (e.g. --ring 3 --max-size 100M)")
    if viewer:
        raise UsageError(f"--ring and --{viewer} cannot be combined: the capture goes to {viewer}, not to files")
    if output == "-":
        raise UsageError("--ring and -o - cannot be combined: a ring is files (name the newest with -o FILE)")


def ring_name(path: str, index: int) -> str:
    """The name of the file `index` rotations old: 0 is `path` itself, 1 `web.1.pcapng`, …"""
    if index == 0:
        return path
    head, tail = os.path.split(path)
    stem, ext = os.path.splitext(tail)
    if not stem:  # `.pcap`: a dot file without an extension
        stem, ext = tail, ""
    return os.path.join(head, f"{stem}.{index}{ext}")


@dataclass
class RingFile:
    """One file of the ring: its records (packets) and bytes; files[0] is the one being written."""

    packets: int = 0
    records: int = 0
    size: int = 0


class RingSink:
    """Queue header units and records, write them with flush(); rotation happens between records."""

    def __init__(self, path: str, files: int, size: int) -> None:
        if files < 2:
            raise ValueError("a ring has at least 2 files")
        self.path = path
        self.files = files
        self.size = size
        self.written = 0  # bytes written to every file, dropped ones included
        self.files_written = 0  # files opened
        self.files_dropped = 0  # files deleted (replaced by a rename) to keep the newest N
        self.packets_dropped = 0  # packets in the files dropped
        self.oversize = 0  # records that did not fit in an empty file and were written alone
        self.kept: deque[RingFile] = deque()  # newest first; kept[0] is the current file once opened
        self._header: list[bytes] = []  # what starts every file
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._current = RingFile()  # the file being filled (opened on its first flush)
        self._fd: int | None = None

    @property
    def display(self) -> str:
        return self.path

    def names(self) -> list[str]:
        """The files kept, newest first."""
        return [ring_name(self.path, i) for i in range(len(self.kept))]

    def header(self, data: bytes) -> None:
        """A unit every later file starts with (and this one gets now, if it fits)."""
        data = bytes(data)
        if self._current.records and self._fill() + len(data) > self.size:
            self._header.append(data)
            self._rotate()  # the new file's header holds it
            return
        self._header.append(data)
        self._queue(data)

    def record(self, data: bytes | memoryview, packets: int = 1) -> None:
        """A unit that goes whole into one file: the current one, or the next when it would pass the size.
        Called once per packet: the common case is one comparison."""
        size = len(data)
        current = self._current
        if current.size + self._pending_size + size > self.size:
            if current.records:
                self._rotate()
                current = self._current
            if not current.records and current.size + self._pending_size + size > self.size:
                self.oversize += 1
        self._pending.append(data)
        self._pending_size += size
        current.records += 1
        current.packets += packets

    def records(self, units: Sequence[bytes | memoryview]) -> None:
        """record() for each unit of a batch (one packet each), in a loop that stays in this method."""
        pending, limit = self._pending, self.size
        for data in units:
            size = len(data)
            current = self._current
            if current.size + self._pending_size + size > limit:
                self.record(data)  # a rotation, or a unit that does not fit an empty file: the general case
                pending = self._pending
                continue
            pending.append(data)
            self._pending_size += size
            current.records += 1
            current.packets += 1

    def flush(self) -> None:
        """Write what is queued to the current file (opening it, the first time after removing the older files
        of an earlier run: the command refused them unless --force)."""
        if not self._pending:
            return
        if self._fd is None:
            if not self.files_written:
                for i in range(1, self.files):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(ring_name(self.path, i))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.files_written += 1
            self.kept.appendleft(self._current)
        parts, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        while parts:
            chunk = parts[:1024]  # IOV_MAX
            n = os.writev(self._fd, chunk)
            if n == sum(map(len, chunk)):  # the usual case: all of it
                del parts[:1024]
                continue
            while n >= len(parts[0]):  # a short write (a full disk is an OSError): the rest next
                n -= len(parts.pop(0))
            parts[0] = memoryview(parts[0])[n:]
        self._current.size += size
        self.written += size

    def close(self) -> None:
        """Close the file being written. What is queued and not flushed stays unwritten, as with a ByteSink
        that was never written to: a capture whose tcpdump never started leaves no file (only the pcapng head
        was queued)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _fill(self) -> int:
        return self._current.size + self._pending_size

    def _queue(self, data: bytes | memoryview) -> None:
        self._pending.append(data)
        self._pending_size += len(data)

    def _rotate(self) -> None:
        """Close the current file, shift the names (newest last), start the next file with the header."""
        self.flush()
        self.close()
        if len(self.kept) == self.files:
            oldest = self.kept.pop()
            self.files_dropped += 1
            self.packets_dropped += oldest.packets
        for i in range(len(self.kept) - 1, -1, -1):
            os.replace(ring_name(self.path, i), ring_name(self.path, i + 1))
        self._current = RingFile()
        for unit in self._header:
            self._queue(unit)


def summary(sink: RingSink) -> dict[str, Any]:
    """The ring's part of capture's JSON summary (kubectl_debugx/summary.py): the files kept, newest first."""
    return {
        "ringFiles": [{"file": name, "packets": f.packets, "bytes": f.size}
                      for name, f in zip(sink.names(), sink.kept, strict=True)],
        "filesWritten": sink.files_written, "filesDropped": sink.files_dropped,
        "packetsDropped": sink.packets_dropped,
    }


def describe(sink: RingSink) -> str:
    """`ring of 3 files of at most 1 MB: 7 written, 4 dropped (12000 packets); kept web.pcapng (40 packets), …`"""
    kept = ", ".join(f"{name} ({plural(f.packets, 'packet')})" for name, f in zip(sink.names(), sink.kept, strict=True))
    text = (f"ring of {sink.files} files of at most {human_size(sink.size)}: {sink.files_written} written, "
            f"{sink.files_dropped} dropped ({plural(sink.packets_dropped, 'packet')}); kept {kept or 'none'}")
    if sink.oversize:
        text += (f"; {plural(sink.oversize, 'packet')} larger than --max-size "
                 f"{'was' if sink.oversize == 1 else 'were'} written alone in a file")
    return text
