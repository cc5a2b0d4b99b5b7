"""Following one container on a Docker node (cri-dockerd), where Docker rotates the log files itself.

Facts (recordings 30-docker-*): ``N.log`` is a symlink to ``/var/lib/docker/containers/ID/ID-json.log``
(30-docker-b02), json-file lines (30-docker-b04); Docker rotates at max-size by renaming ``ID-json.log`` to
``.1`` (``.1`` to ``.2``, the oldest deleted) and opening a new ``ID-json.log`` (30-docker-c15); the container
directory still lists only ``N.log`` and the kubelet never rotates (30-docker-c17, c18). So the listing never
shows a rotation, and the node proxy cannot reach the rotated files (they are outside /var/log).

What went wrong without this (30-docker-e08, e09): after the rotation the live file is shorter than the saved
offset (416, read as "nothing new"), then grows past it and is read from mid-file: every line after the first
rotation lost, and a ``[malformed 0.log:6001]`` fragment.

So every read of the live file starts ``len(self.last)`` bytes before the offset: those bytes must be the
last ones delivered (the end of the last whole line, with Docker's nanosecond ``time``). Any other answer
(shorter, different) means the file we were reading is not the live one any more. Then:

* with a :class:`RotatedSource` (a node pod, ``--via pod``): one consistent snapshot of Docker's rotated files
  and the first bytes of the new live file; ours is the rotated file that starts with the bytes ours started
  with: its rest is delivered, then every newer rotated file whole, then the live file from 0 (checked to
  start with the snapshot's first bytes, else the pass is done again: it was rotated meanwhile);
* without one (the node proxy only): one line says what could not be read and how to read it, and the live
  file is followed from 0.

Lines are delivered once: only whole lines move the offset (formats.logfollow), and every file is matched by
its first bytes before its lines are taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from kubectl_debugx.formats.logfollow import ContainerFollower, Emit, Layout, Reader

FIRST_MAX = 4096  # a first line longer than this is told apart by these bytes
TAIL = 256  # bytes before the offset checked on every read: the last line's end and its nanosecond "time"


class Snapshot(NamedTuple):
    """Docker's files of one container at one moment: the rotated ones oldest first (``.N`` ... ``.1``), whole,
    and the first line of the live ``ID-json.log`` (b"" while it is empty)."""

    rotated: list[bytes]
    live_first: bytes


class RotatedSource(Protocol):
    def docker_files(self, live: str) -> Snapshot | None:
        """The snapshot of the Docker files ``live`` (``N.log`` of the followed directory) links to; None when
        the link or the files are gone."""


def first_line(data: bytes) -> bytes:
    """What tells Docker's files apart: the first line, whose ``time`` has nanoseconds (b"" until whole)."""
    end = data.find(b"\n", 0, FIRST_MAX)
    return data[:end + 1] if end >= 0 else data[:FIRST_MAX] if len(data) >= FIRST_MAX else b""


class DockerFollower(ContainerFollower):
    """ContainerFollower for Docker's files (see the module docstring); restarts work as on CRI nodes."""

    def __init__(self, reader: Reader, emit: Emit, note: Callable[[str], None],
                 rotated: RotatedSource | None, unreadable_hint: str) -> None:
        super().__init__(reader, emit, note)
        self.rotated = rotated
        self.hint = unreadable_hint  # how to read Docker's rotated files, for the one line said without them
        self.last = b""  # the bytes just before self.offset (at most TAIL): the end of the last whole line
        self.first = b""  # the first line of the file being read (or expected at offset 0); b"": not known yet
        self.rotations = 0  # rotations seen
        self.unread = 0  # of them, those whose rest could not be read

    def _begin(self, restart: int, seen: set[str]) -> None:
        super()._begin(restart, seen)
        self.last, self.first = b"", b""

    def _consume(self, data: bytes) -> None:
        if not self.offset and not self.first:
            self.first = first_line(data)
        end = data.rfind(b"\n") + 1
        super()._consume(data)
        if end:
            self.last = (self.last + data[:end])[-TAIL:]

    # ---------------------------------------------------------------------------------------- polls

    def poll(self) -> None:
        if self.ended:
            return
        data = self._read_live()
        names = self.reader.listing()
        if names is None:
            self._finish("its log directory is gone (the pod was deleted)")
            return
        if data is not None:
            self._take(data)
        later = sorted(n for n in Layout(names).live if n > self.restart)
        if later:
            # Instance N ended before M.log was created: what it wrote after the read above is in its file.
            data = self._read_live()
            if data is None:
                self.note(f"{self.restart}.log was removed before it was read to its end: lines may be missing")
            else:
                self._take(data)
            self._flush()
            self._begin(later[0], set())

    def _read_live(self) -> bytes | None:
        return self.reader.read(self._live(self.restart), self.offset - len(self.last))

    def _take(self, data: bytes) -> None:
        """Deliver what a read of the live file brought, unless the file is another one than ours."""
        if self._same_file(data):
            self._consume(data[len(self.last):])
        else:
            self._rotated_away()

    def _same_file(self, data: bytes) -> bool:
        if self.last:
            return data.startswith(self.last)
        # At offset 0: the file must start as the one expected (known after a pass over the rotated files).
        return not self.first or data.startswith(self.first) or self.first.startswith(data)

    def _rotated_away(self) -> None:
        self.rotations += 1
        for _ in range(3):
            snapshot = None if self.rotated is None else self.rotated.docker_files(self._live(self.restart))
            if snapshot is None:
                break
            if self._finish_rotated(snapshot):
                return
        self.unread += 1
        if self.rotated is None:
            self.note(f"Docker rotated {self.restart}.log's file after line {self.lineno}: the rest of it is "
                      f"outside /var/log, which the node proxy does not serve, and is missing here; {self.hint}")
        else:
            self.note(f"Docker rotated {self.restart}.log's file after line {self.lineno} and the rest could "
                      "not be read through the node pod (gone, or rotated again meanwhile): lines may be missing")
        self._restart_file(b"")

    def _finish_rotated(self, snapshot: Snapshot) -> bool:
        """Deliver the rest of our file, then the newer rotated ones; False when the snapshot cannot say."""
        if not self.first:  # nothing of the file was delivered: it is read whole
            ours: int | None = 0 if snapshot.rotated else None
        else:
            ours = next((i for i, data in enumerate(snapshot.rotated) if data.startswith(self.first)), None)
        if ours is None:
            if not snapshot.rotated or snapshot.live_first == self.first:
                return False  # ours is still the live file (a truncated read?) or nothing rotated: ask again
            self.note(f"Docker rotated {self.restart}.log's file away (beyond its max-file) before it was read "
                      f"to its end, after line {self.lineno}: lines are missing")
            self.unread += 1
            ours, rest = -1, b""
        else:
            rest = snapshot.rotated[ours]
            if self.offset and not rest.startswith(self.last, self.offset - len(self.last)):
                return False  # not the bytes we delivered: never seen; ask again
        self._consume(rest[self.offset:])
        for newer in snapshot.rotated[ours + 1:]:
            self._restart_file(b"")
            self._consume(newer)
        self._restart_file(snapshot.live_first)
        return True

    def _restart_file(self, expected_first: bytes) -> None:
        """Follow the next file from its start; it must begin with ``expected_first`` (b"": unknown)."""
        self.offset, self.lineno, self.last, self.head = 0, 0, b"", b""
        self.first = expected_first
