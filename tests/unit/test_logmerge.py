"""logmerge: many container instances' CRI lines as one time-ordered, prefixed stream (whole outputs)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone

from kubectl_debugx.formats.crilog import iter_records
from kubectl_debugx.formats.logmerge import MergeCounts, merge


def cri(ts: str, text: str, stream: str = "stdout", tag: str = "F") -> bytes:
    return f"{ts} {stream} {tag} {text}\n".encode()


def merged(sources, **kwargs) -> str:
    return "".join(merge(sources, **kwargs))


def test_two_pods_interleave_by_time_with_aligned_prefixes():
    web1 = [
        cri("2026-11-27T07:18:34.1Z", "GET / 200"),
        cri("2026-11-27T07:18:34.3Z", "GET /a 200"),
        cri("2026-11-27T07:18:36Z", "GET /b 404"),
    ]
    web2 = [
        cri("2026-11-27T07:18:34.2Z", "GET / 200"),
        cri("2026-11-27T07:18:35.123456789Z", "upstream timed out", "stderr"),
    ]
    assert merged([("web-1/nginx#0", web1), ("web-22/nginx#1", web2)]) == (
        "web-1/nginx#0  2026-11-27T07:18:34.1Z GET / 200\n"
        "web-22/nginx#1 2026-11-27T07:18:34.2Z GET / 200\n"
        "web-1/nginx#0  2026-11-27T07:18:34.3Z GET /a 200\n"
        "web-22/nginx#1 2026-11-27T07:18:35.123456789Z [stderr] upstream timed out\n"
        "web-1/nginx#0  2026-11-27T07:18:36Z GET /b 404\n"
    )


def test_offsets_compare_in_utc():
    # Recording 80-tz-*: a node in TZ=Asia/Kolkata writes +05:30; 12:48:34+05:30 is 07:18:34Z.
    kolkata = [cri("2026-11-27T12:48:34.5+05:30", "late"), cri("2026-11-27T12:48:33+05:30", "early")]
    utc = [cri("2026-11-27T07:18:34Z", "between")]
    assert merged([("a/c#0", kolkata), ("b/c#0", utc)]) == (
        "b/c#0 2026-11-27T07:18:34Z between\n"
        "a/c#0 2026-11-27T12:48:34.5+05:30 late\n"
        "a/c#0 2026-11-27T12:48:33+05:30 early\n"  # its own file order is kept even where time steps back
    )


def test_equal_timestamps_keep_source_order_then_file_order():
    ts = "2026-11-27T07:18:34.5Z"
    out = merged([("a#0", [cri(ts, "a1"), cri(ts, "a2")]), ("b#0", [cri(ts, "b1")]), ("c#0", [cri(ts, "c1")])])
    assert out == f"a#0 {ts} a1\na#0 {ts} a2\nb#0 {ts} b1\nc#0 {ts} c1\n"


def test_partial_lines_are_joined_across_a_stderr_line_and_a_rotation():
    # A P piece, a stderr line between the pieces, the F piece in the next (rotated) file: one line, timed by
    # its first piece, written when it is whole.
    instance = [
        cri("2026-11-27T07:18:34Z", "x" * 5, tag="P"),
        cri("2026-11-27T07:18:34.1Z", "oops", "stderr"),
        # --- 0.log.20261127-071835 ends, 0.log begins
        cri("2026-11-27T07:18:34.2Z", "yy"),
    ]
    other = [cri("2026-11-27T07:18:34.05Z", "other")]
    assert merged([("p/c#0", instance), ("q/c#0", other)]) == (
        "q/c#0 2026-11-27T07:18:34.05Z other\n"
        "p/c#0 2026-11-27T07:18:34.1Z [stderr] oops\n"
        "p/c#0 2026-11-27T07:18:34Z xxxxxyy\n"
    )


def test_an_unterminated_tail_comes_at_its_time():
    instance = [cri("2026-11-27T07:18:34Z", "done"), cri("2026-11-27T07:18:35Z", "no newline", tag="P")]
    other = [cri("2026-11-27T07:18:36Z", "after")]
    assert merged([("p/c#0", instance), ("q/c#0", other)]) == (
        "p/c#0 2026-11-27T07:18:34Z done\n"
        "p/c#0 2026-11-27T07:18:35Z [unterminated] no newline\n"
        "q/c#0 2026-11-27T07:18:36Z after\n"
    )


def test_malformed_lines_stay_after_the_line_before_them():
    instance = [
        b"garbage before anything\n",
        cri("2026-11-27T07:18:35Z", "first"),
        b"not a log line\n",
        cri("2026-11-27T07:18:37Z", "second"),
    ]
    other = [cri("2026-11-27T07:18:34Z", "o1"), cri("2026-11-27T07:18:36Z", "o2")]
    assert merged([("p/c#0", instance), ("q/c#0", other)]) == (
        "p/c#0 [malformed p/c#0:1] garbage before anything\n"
        "q/c#0 2026-11-27T07:18:34Z o1\n"
        "p/c#0 2026-11-27T07:18:35Z first\n"
        "p/c#0 [malformed p/c#0:3] not a log line\n"
        "q/c#0 2026-11-27T07:18:36Z o2\n"
        "p/c#0 2026-11-27T07:18:37Z second\n"
    )


def test_parsed_records_keep_their_file_names():
    rotated = io.BytesIO(cri("2026-11-27T07:18:34Z", "one") + b"\x00junk\n")
    live = io.BytesIO(cri("2026-11-27T07:18:35Z", "two"))
    records = [*iter_records(rotated, "0.log.20261127-071835"), *iter_records(live, "0.log")]
    assert merged([("p/c#0", records)]) == (
        "p/c#0 2026-11-27T07:18:34Z one\n"
        "p/c#0 [malformed 0.log.20261127-071835:2] \x00junk\n"
        "p/c#0 2026-11-27T07:18:35Z two\n"
    )


def test_docker_json_lines_merge_too():
    docker = [json.dumps({"log": "hello\n", "stream": "stderr", "time": "2026-11-27T07:18:34.5Z"}).encode() + b"\n"]
    assert merged([("d/c#0", docker), ("e/c#0", [cri("2026-11-27T07:18:34Z", "hi")])]) == (
        "e/c#0 2026-11-27T07:18:34Z hi\n"
        "d/c#0 2026-11-27T07:18:34.5Z [stderr] hello\n"
    )


def test_since_and_counts():
    counts: dict[str, MergeCounts] = {}
    a = [
        cri("2026-11-27T07:18:30Z", "old"),
        b"junk\n",
        cri("2026-11-27T07:18:40Z", "new", "stderr"),
        cri("2026-11-27T07:18:41Z", "tail", tag="P"),
    ]
    b = [cri("2026-11-27T07:18:39.999999999Z", "just before"), cri("2026-11-27T07:18:40Z", "at")]
    since = datetime(2026, 11, 27, 7, 18, 40, tzinfo=timezone.utc)
    assert merged([("a#0", a), ("b#0", b)], since=since, counts=counts) == (
        "a#0 [malformed a#0:2] junk\n"
        "a#0 2026-11-27T07:18:40Z [stderr] new\n"
        "b#0 2026-11-27T07:18:40Z at\n"
        "a#0 2026-11-27T07:18:41Z [unterminated] tail\n"
    )
    assert counts == {
        "a#0": MergeCounts(lines=3, stderr_lines=1, unterminated=1, malformed=1, before_since=1),
        "b#0": MergeCounts(lines=1, before_since=1),
    }


def test_no_sources_and_empty_sources():
    assert merged([]) == ""
    counts: dict[str, MergeCounts] = {}
    assert merged([("a#0", []), ("bb#0", [cri("2026-11-27T07:18:40Z", "x")])], counts=counts) == (
        "bb#0 2026-11-27T07:18:40Z x\n"
    )
    assert counts == {"a#0": MergeCounts(), "bb#0": MergeCounts(lines=1)}


def test_streams_holding_one_line_per_source():
    read = {"a": 0, "b": 0}

    def endless(name: str, start: int) -> Iterator[bytes]:
        second = start
        while True:
            read[name] += 1
            yield cri(f"2026-11-27T07:18:{second:02d}Z", f"{name}{second}")
            second += 2

    lines = merge([("a", endless("a", 0)), ("b", endless("b", 1))])
    first = [next(lines) for _ in range(4)]
    assert first == [
        "a 2026-11-27T07:18:00Z a0\n",
        "b 2026-11-27T07:18:01Z b1\n",
        "a 2026-11-27T07:18:02Z a2\n",
        "b 2026-11-27T07:18:03Z b3\n",
    ]
    # The four written and a's next one, waiting against b's; b's next is read when the fifth is asked for.
    assert read == {"a": 3, "b": 2}
