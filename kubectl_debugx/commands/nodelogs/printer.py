"""nodelogs --follow's stdout: every followed container's lines, prefixed ``POD/CONTAINER[#RESTART]`` and aligned.

Two ways in. :meth:`Printer.emitter` takes one parsed line at a time (formats.logfollow's items: partial lines
joined, malformed ones, --since filtered). :meth:`Printer.block_emitter` takes a run of whole CRI records at
once (``TIMESTAMP stdout|stderr F CONTENT`` lines, nearly every run a poll reads) and turns it into output with
two regular-expression substitutions, no Python per line: per line that was most of our CPU (issue 24: 2.9-4.2x
``kubectl logs -f``'s on the test cluster). A run it cannot take whole (a P or malformed record, --since) goes
line by line; both give the same bytes (tests/unit/test_nodelogs_printer.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from kubectl_debugx.formats.crilog import LogLine, Malformed, parse_timestamp, render, since_ns
from kubectl_debugx.formats.logfollow import Emit, Item, Whole
from kubectl_debugx.remote.sinks import ByteSink

# crilog.TIMESTAMP_RE without its groups: the header of a whole record at a line's start.
_STAMP = rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
_HEADER = re.compile(rb"(?m)^" + _STAMP + rb" std(?:out|err) F ")
_OUT, _ERR = b" stdout F ", b" stderr F "


Block = Callable[[int, bytes], bool]  # (restart, whole records) -> taken


class PrintOptions(Protocol):
    @property
    def timestamps(self) -> bool: ...

    @property
    def since(self) -> datetime | None: ...


def _epoch_ns(item: LogLine | Whole) -> int:
    if isinstance(item, LogLine):
        return item.timestamp.epoch_ns
    stamp = parse_timestamp(item.timestamp)
    return 0 if stamp is None else stamp.epoch_ns


class Printer:
    """stdout: the lines of every container, prefixed and aligned, written once per poll.

    The width is the longest prefix so far, counting ``#N`` for every container from the start (room for a
    restart below 10), and lines are laid out when written: every pod's --tail lines align with each other."""

    def __init__(self, sink: ByteSink, opts: PrintOptions) -> None:
        self.sink = sink
        self.timestamps = opts.timestamps
        self.since = None if opts.since is None else since_ns(opts.since)
        self.width = 0
        self.batch: list[tuple[str, bytes, bool]] = []  # (prefix, data, data is a run of whole records)
        self.lines = 0

    def _prefixer(self, pod: str, container: str) -> Callable[[int], str]:
        self.width = max(self.width, len(f"{pod}/{container}#1"))
        prefixes: dict[int, str] = {}

        def prefix(restart: int) -> str:
            got = prefixes.get(restart)
            if got is None:
                got = prefixes[restart] = f"{pod}/{container}" + (f"#{restart}" if restart else "")
                self.width = max(self.width, len(got))
            return got

        return prefix

    def emitter(self, pod: str, container: str) -> Emit:
        prefix_of = self._prefixer(pod, container)

        def emit(restart: int, item: Item) -> None:
            if self.since is not None and not isinstance(item, Malformed) and _epoch_ns(item) < self.since:
                return
            prefix = prefix_of(restart)
            if isinstance(item, Whole):  # render()'s format, kept in bytes (as kubectl logs passes them on)
                data = item.content + b"\n"
                if self.timestamps:
                    data = item.timestamp + (b" [stderr] " if item.stream == b"stderr" else b" ") + data
            elif self.timestamps or isinstance(item, Malformed):
                data = render(item).encode()
            else:
                data = item.content + b"\n"
            self.batch.append((prefix, data, False))
            self.lines += 1

        return emit

    def block_emitter(self, pod: str, container: str) -> Block:
        """``(restart, records) -> bool``: take a run of whole CRI records (each ending with a newline) whole;
        False (nothing taken) when one of them is not a whole F record, or --since filters."""
        prefix_of = self._prefixer(pod, container)

        def block(restart: int, records: bytes) -> bool:
            if self.since is not None:
                return False
            lines = records.count(b"\n")
            if len(_HEADER.findall(records)) != lines:
                return False  # a P record, a malformed line
            if self.timestamps and records.count(_OUT) + records.count(_ERR) != lines:
                return False  # a text holds " stdout F " too: the replaces below would change it
            self.batch.append((prefix_of(restart), records, True))
            self.lines += lines
            return True

        return block

    def _render(self, pad: bytes, records: bytes) -> bytes:
        """Whole records (checked by block()) as printed. Replacements with no group reference run in C:
        one with ``\\1`` calls Python for every match (Python 3.10's re)."""
        if self.timestamps:  # TIMESTAMP stdout F TEXT -> TIMESTAMP TEXT; stderr -> TIMESTAMP [stderr] TEXT
            body = records.replace(_OUT, b" ").replace(_ERR, b" [stderr] ")
            return (pad + body.replace(b"\n", b"\n" + pad))[:-len(pad)]
        return _HEADER.sub(pad.replace(b"\\", b"\\\\"), records)

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if batch:
            pads = {prefix: f"{prefix:<{self.width}} ".encode() for prefix in {prefix for prefix, _, _ in batch}}
            self.sink.write(b"".join([part for prefix, data, whole in batch
                                      for part in ((self._render(pads[prefix], data),) if whole
                                                   else (pads[prefix], data))]))
