"""``nodelogs --merge``: many container instances' log lines, merged into one time-ordered stream.

Pure: takes ``(prefix, lines)`` pairs, one per container instance, and yields output lines; nothing is read
or written here. ``lines`` are the instance's physical lines in reading order (its rotated files then the live
one, formats/logfiles.py), as bytes; already-parsed :class:`crilog.Record` / :class:`crilog.Malformed` items
are taken too, which keeps file names and line numbers in the ``[malformed FILE:LINE]`` markers (parse each
file with ``crilog.iter_records(f, name)``). Bytes lines are parsed as the kubelet does (CRI, then Docker
JSON) and named ``PREFIX:N`` (N counts across the instance's lines).

Output: one line per log line, ``PREFIX`` padded to the longest prefix (stern's alignment), then the line
as the per-instance decoded files have it (crilog.render)::

    web-7d4b9c/nginx#0  2026-11-27T07:18:34.80442642Z GET / 200
    web-7d4b9c/nginx#1  2026-11-27T07:18:35.1Z [stderr] worker exiting
    web-x9z2q/nginx#0   2026-11-27T07:18:35.2Z GET /healthz 200

Order: by the line's timestamp in UTC (offsets of different nodes compare right), with a k-way merge
(``heapq.merge``) that holds one line per instance. Ties keep the order of the sources as given, then file
order. A line is timed by its first piece, as crilog joins them (P pieces, the ``unterminated`` tail at the
end); an instance's own lines keep their file order even where its timestamps step back (stdout and stderr
are stamped separately, recording 16). A malformed line, which has no time, takes the time of the line before
it in the same instance (the start of time if it is the first), so it stays right after that line.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from kubectl_debugx.formats.crilog import LogLine, Malformed, PartialJoiner, Record, parse_line, render, since_ns

Item = bytes | Record | Malformed


@dataclass
class MergeCounts:
    """What one instance gave to the merged stream."""

    lines: int = 0  # written, malformed ones included
    stderr_lines: int = 0
    unterminated: int = 0
    malformed: int = 0
    before_since: int = 0  # left out by --since


def merge(
    sources: Sequence[tuple[str, Iterable[Item]]],
    since: datetime | None = None,
    counts: dict[str, MergeCounts] | None = None,
) -> Iterator[str]:
    """Yield the merged output lines (newline included); write them with ``newline=""`` to keep a ``\\r``.

    ``since`` (timezone-aware) leaves out lines before it, like ``kubectl logs --since-time``; malformed lines
    have no time and stay. ``counts``, if given, gets a :class:`MergeCounts` per prefix, complete once the
    generator is exhausted.
    """
    if not sources:
        return
    width = max(len(prefix) for prefix, _ in sources)
    limit = None if since is None else since_ns(since)
    streams = []
    for prefix, items in sources:
        tally = MergeCounts()
        if counts is not None:
            counts[prefix] = tally
        streams.append(_timed(f"{prefix:<{width}} ", items, prefix, limit, tally))
    for _, text in heapq.merge(*streams, key=_by_time):
        yield text


def _by_time(pair: tuple[int, str]) -> int:
    return pair[0]


def _timed(
    lead: str, items: Iterable[Item], prefix: str, limit: int | None, tally: MergeCounts
) -> Iterator[tuple[int, str]]:
    """One instance's output lines with the time that orders them (UTC ns), in file order."""
    joiner = PartialJoiner()
    last = -1  # the time of the previous line: a malformed line's place
    lineno = 0
    for raw in items:
        if isinstance(raw, bytes):
            lineno += 1
            item = parse_line(raw, prefix, lineno)
        else:
            item = raw
        if isinstance(item, Malformed):
            tally.lines += 1
            tally.malformed += 1
            yield last, lead + render(item)
            continue
        line = joiner.feed(item)
        if line is not None:
            last = line.timestamp.epoch_ns
            if _kept(line, limit, tally):
                yield last, lead + render(line)
    for line in joiner.finish():
        if _kept(line, limit, tally):
            yield line.timestamp.epoch_ns, lead + render(line)


def _kept(line: LogLine, limit: int | None, tally: MergeCounts) -> bool:
    if limit is not None and line.timestamp.epoch_ns < limit:
        tally.before_since += 1
        return False
    tally.lines += 1
    tally.stderr_lines += line.stream == "stderr"
    tally.unterminated += line.unterminated
    return True
