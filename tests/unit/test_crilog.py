"""crilog: parsing, joining, ordering and decoding, shaped like tests/cluster/recordings/logs."""

from __future__ import annotations

import calendar
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kubectl_debugx.formats.crilog import (
    DecodeReport,
    FileReport,
    LogLine,
    Malformed,
    PartialJoiner,
    Record,
    Timestamp,
    decode_instance,
    iter_records,
    keep_since,
    open_log,
    parse_line,
    parse_timestamp,
    render,
    since_ns,
)
from kubectl_debugx.formats.logfiles import Instance, LogFileName, LogPlan, Skipped, classify_name, plan_container_logs


def join_partials(items: Iterable[Record | Malformed]) -> Iterator[LogLine | Malformed]:
    """Whole lines from the records of one container instance; malformed lines pass through in place."""
    joiner = PartialJoiner()
    for item in items:
        if isinstance(item, Malformed):
            yield item
            continue
        line = joiner.feed(item)
        if line is not None:
            yield line
    yield from joiner.finish()


SPLIT = 16384  # containerd's max_container_log_line_size, as recorded (14-cri-partial-lines-split)
IST = timezone(timedelta(hours=5, minutes=30))


def epoch_ns(year: int, month: int, day: int, h: int, m: int, s: int, nanos: int = 0) -> int:
    return calendar.timegm((year, month, day, h, m, s, 0, 0, 0)) * 1_000_000_000 + nanos


def ts(text: str) -> Timestamp:
    parsed = parse_timestamp(text)
    assert parsed is not None
    return parsed


def cri(timestamp: str, stream: str, tag: str, content: bytes) -> bytes:
    return timestamp.encode() + b" " + stream.encode() + b" " + tag.encode() + b" " + content + b"\n"


def docker(log: str, stream: str, time: str) -> bytes:
    return json.dumps({"log": log, "stream": stream, "time": time}).encode() + b"\n"


def split_cri(timestamps: list[str], stream: str, line: bytes) -> list[bytes]:
    """Cut a line like containerd: 16384-byte P records, then the rest as F (no empty F)."""
    pieces = [line[i : i + SPLIT] for i in range(0, len(line), SPLIT)]
    assert len(pieces) == len(timestamps)
    tags = ["P"] * (len(pieces) - 1) + ["F"]
    return [cri(t, stream, tag, p) for t, tag, p in zip(timestamps, tags, pieces, strict=True)]


# ---------------------------------------------------------------------------------------------- timestamps


def test_timestamp_utc_with_trimmed_fraction() -> None:
    # Go drops trailing zeros of the fraction: .5293763 is 529376300 ns.
    assert parse_timestamp("2026-11-27T07:18:35.5293763Z") == Timestamp(
        "2026-11-27T07:18:35.5293763Z", epoch_ns(2026, 11, 27, 7, 18, 35, 529376300), 0
    )


def test_timestamp_with_offset_is_the_same_instant() -> None:
    ist = parse_timestamp(b"2026-11-27T12:55:57.997955995+05:30")
    assert ist == Timestamp(
        "2026-11-27T12:55:57.997955995+05:30", epoch_ns(2026, 11, 27, 7, 25, 57, 997955995), 19800
    )
    assert ist.epoch_ns == ts("2026-11-27T07:25:57.997955995Z").epoch_ns


def test_timestamp_negative_offset_and_no_fraction() -> None:
    assert parse_timestamp("2026-11-27T02:00:00-05:00") == Timestamp(
        "2026-11-27T02:00:00-05:00", epoch_ns(2026, 11, 27, 7, 0, 0), -18000
    )


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T07:18:35",  # no zone
        "2026-13-27T07:18:35Z",  # month 13
        "2026-11-27T07:18:35.1234567891Z",  # 10 fraction digits
        "2026-11-27 07:18:35Z",
        "2026-11-27T07:18:35+24:00",
        "",
    ],
)
def test_timestamp_rejects(text: str) -> None:
    assert parse_timestamp(text) is None


def test_timestamp_to_datetime_keeps_offset() -> None:
    assert ts("2026-11-27T12:55:57.997955995+05:30").to_datetime() == datetime(
        2026, 11, 27, 12, 55, 57, 997955, tzinfo=IST
    )
    assert ts("2026-11-27T12:55:57.997955995+05:30").to_datetime().utcoffset() == timedelta(
        hours=5, minutes=30
    )


# ---------------------------------------------------------------------------------------------- lines


def test_parse_cri_full_line() -> None:
    line = b"2026-11-27T07:18:34.80442642Z stdout F out seq=000001  two  spaces\n"
    assert parse_line(line, "0.log", 1) == Record(
        "0.log",
        1,
        "cri",
        ts("2026-11-27T07:18:34.80442642Z"),
        "stdout",
        False,
        b"out seq=000001  two  spaces",
    )


def test_parse_cri_partial_stderr_with_extra_tag_fields() -> None:
    line = b"2026-11-27T07:18:55.108311738Z stderr P:future:tags LONG17000<xx\n"
    assert parse_line(line, "0.log", 7) == Record(
        "0.log", 7, "cri", ts("2026-11-27T07:18:55.108311738Z"), "stderr", True, b"LONG17000<xx"
    )


def test_parse_cri_empty_content_and_no_newline_at_eof() -> None:
    assert parse_line(b"2026-11-27T07:18:34Z stdout F ") == Record(
        "", 0, "cri", ts("2026-11-27T07:18:34Z"), "stdout", False, b""
    )


def test_parse_cri_keeps_carriage_return_and_invalid_utf8() -> None:
    line = b"2026-11-27T07:18:34Z stdout F a\xffb\r\n"
    assert parse_line(line).content == b"a\xffb\r"  # type: ignore[union-attr]


def test_parse_docker_lines() -> None:
    assert parse_line(
        docker("hello\n", "stdout", "2026-11-27T07:18:34.123456789Z"), "x-json.log", 3
    ) == Record("x-json.log", 3, "docker", ts("2026-11-27T07:18:34.123456789Z"), "stdout", False, b"hello")
    # Docker marks a piece of a longer line by leaving out the newline.
    assert parse_line(docker("pi\u00e8ce", "stderr", "2026-11-27T07:18:34Z")) == Record(
        "", 0, "docker", ts("2026-11-27T07:18:34Z"), "stderr", True, "pi\u00e8ce".encode()
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hello world\n", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
        (b"2026-11-27T07:18:34Z stdout F\n", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
        (b"yesterday stdout F text\n", "bad CRI timestamp 'yesterday'"),
        (b"2026-11-27T07:18:34Z stdin F text\n", "bad CRI stream 'stdin'"),
        (b'{"log": "x\\n", "stream": "stdout"\n', "not a CRI line and not Docker JSON"),
        (b"[1, 2]\n", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
        (
            b'{"log": 1, "stream": "stdout", "time": "2026-11-27T07:18:34Z"}\n',
            'Docker JSON line without a "log" string',
        ),
        (b'{"log": "x", "stream": "stdin", "time": "2026-11-27T07:18:34Z"}\n', "bad Docker stream 'stdin'"),
        (b'{"log": "x", "stream": "stdout", "time": "now"}\n', "bad Docker time 'now'"),
        (b"\n", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
    ],
)
def test_malformed_lines_are_kept_raw(line: bytes, reason: str) -> None:
    assert parse_line(line, "0.log", 9) == Malformed("0.log", 9, line.rstrip(b"\n"), reason)


def test_iter_records_numbers_lines_and_mixes_formats() -> None:
    data = io.BytesIO(
        cri("2026-11-27T07:18:34Z", "stdout", "F", b"one")
        + b"garbage\n"
        + docker("two\n", "stderr", "2026-11-27T07:18:35Z")
        + b"2026-11-27T07:18:36Z stdout F torn"  # cut mid-write: no newline
    )
    assert list(iter_records(data, "0.log")) == [
        Record("0.log", 1, "cri", ts("2026-11-27T07:18:34Z"), "stdout", False, b"one"),
        Malformed("0.log", 2, b"garbage", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
        Record("0.log", 3, "docker", ts("2026-11-27T07:18:35Z"), "stderr", False, b"two"),
        Record("0.log", 4, "cri", ts("2026-11-27T07:18:36Z"), "stdout", False, b"torn"),
    ]


def test_iter_records_is_lazy() -> None:
    consumed = []

    def lines() -> Iterator[bytes]:
        for i in range(1_000_000):
            consumed.append(i)
            yield cri("2026-11-27T07:18:34Z", "stdout", "F", b"x")

    records = iter_records(lines())
    next(records)
    assert consumed == [0]


# ---------------------------------------------------------------------------------------------- joining


def test_join_line_split_at_16384_with_stderr_between_pieces() -> None:
    # 40000 bytes: P 16384 + P 16384 + F 7232, each piece with its own timestamp (14-cri-partial-lines-split);
    # an "é" straddles the first cut, so bytes must be joined before they are decoded.
    long_line = b"LONG40000<" + b"x" * (SPLIT - 11) + "é".encode() + b"x" * (40000 - SPLIT - 2) + b">"
    assert len(long_line) == 40000 and long_line[SPLIT - 1 : SPLIT + 1] == "é".encode()
    stamps = [
        "2026-11-27T07:18:52.05148331Z",
        "2026-11-27T07:18:52.052524487Z",
        "2026-11-27T07:18:52.052691446Z",
    ]
    pieces = split_cri(stamps, "stdout", long_line)
    stderr = cri("2026-11-27T07:18:52.0520Z", "stderr", "F", b"err between")
    assert [len(p) - len(t) - len(" stdout P \n") for p, t in zip(pieces, stamps, strict=True)] == [
        16384,
        16384,
        7232,
    ]
    data = io.BytesIO(pieces[0] + stderr + pieces[1] + pieces[2])
    joined = list(join_partials(iter_records(data, "0.log")))
    assert joined == [
        LogLine("0.log", 2, ts("2026-11-27T07:18:52.0520Z"), "stderr", b"err between"),
        LogLine("0.log", 1, ts(stamps[0]), "stdout", long_line, parts=3),
    ]
    assert isinstance(joined[1], LogLine)
    assert "é" in joined[1].text and "\ufffd" not in joined[1].text


@pytest.mark.parametrize(("length", "parts"), [(16383, 1), (16384, 1), (16385, 2), (32768, 2), (40000, 3)])
def test_join_recorded_split_sizes(length: int, parts: int) -> None:
    line = b"y" * length
    stamps = [f"2026-11-27T07:18:5{i}Z" for i in range(parts)]
    data = io.BytesIO(b"".join(split_cri(stamps, "stderr", line)))
    assert list(join_partials(iter_records(data, "0.log"))) == [
        LogLine("0.log", 1, ts(stamps[0]), "stderr", line, parts=parts)
    ]


def test_stdout_and_stderr_partials_are_not_joined_with_each_other() -> None:
    data = io.BytesIO(
        cri("2026-11-27T07:18:01Z", "stdout", "P", b"out-a ")
        + cri("2026-11-27T07:18:02Z", "stderr", "P", b"err-a ")
        + cri("2026-11-27T07:18:03Z", "stderr", "F", b"err-b")
        + cri("2026-11-27T07:18:04Z", "stdout", "F", b"out-b")
    )
    assert list(join_partials(iter_records(data, "0.log"))) == [
        LogLine("0.log", 2, ts("2026-11-27T07:18:02Z"), "stderr", b"err-a err-b", parts=2),
        LogLine("0.log", 1, ts("2026-11-27T07:18:01Z"), "stdout", b"out-a out-b", parts=2),
    ]


def test_trailing_partial_is_an_unterminated_line() -> None:
    # 15-line-without-newline case c: text without a newline at exit is written as a P record.
    data = io.BytesIO(
        b"2026-11-27T07:18:34.834307243Z stdout F first-line\n"
        b"2026-11-27T07:18:34.83433237Z stderr P err-no-newline\n"
        b"2026-11-27T07:18:34.9Z stdout P no-newline-at-exit\n"
    )
    assert list(join_partials(iter_records(data, "0.log"))) == [
        LogLine("0.log", 1, ts("2026-11-27T07:18:34.834307243Z"), "stdout", b"first-line"),
        LogLine(
            "0.log", 2, ts("2026-11-27T07:18:34.83433237Z"), "stderr", b"err-no-newline", unterminated=True
        ),
        LogLine("0.log", 3, ts("2026-11-27T07:18:34.9Z"), "stdout", b"no-newline-at-exit", unterminated=True),
    ]


def test_docker_pieces_are_joined() -> None:
    data = io.BytesIO(
        docker("abc", "stdout", "2026-11-27T07:18:01Z")
        + docker("def\n", "stdout", "2026-11-27T07:18:02Z")
        + docker("tail", "stdout", "2026-11-27T07:18:03Z")
    )
    assert list(join_partials(iter_records(data, "c-json.log"))) == [
        LogLine("c-json.log", 1, ts("2026-11-27T07:18:01Z"), "stdout", b"abcdef", parts=2),
        LogLine("c-json.log", 3, ts("2026-11-27T07:18:03Z"), "stdout", b"tail", unterminated=True),
    ]


def test_malformed_line_between_pieces_stays_in_place() -> None:
    data = io.BytesIO(
        cri("2026-11-27T07:18:01Z", "stdout", "P", b"a")
        + b"junk\n"
        + cri("2026-11-27T07:18:02Z", "stdout", "F", b"b")
    )
    assert list(join_partials(iter_records(data, "0.log"))) == [
        Malformed("0.log", 2, b"junk", "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"),
        LogLine("0.log", 1, ts("2026-11-27T07:18:01Z"), "stdout", b"ab", parts=2),
    ]


# ---------------------------------------------------------------------------------------------- since


def test_since_compares_instants_across_offsets_to_the_nanosecond() -> None:
    since = datetime(2026, 11, 27, 7, 26, 0, tzinfo=timezone.utc)
    before = LogLine("0.log", 1, ts("2026-11-27T12:55:59.999999999+05:30"), "stdout", b"before")
    at = LogLine("0.log", 2, ts("2026-11-27T12:56:00+05:30"), "stdout", b"at")
    after = LogLine("0.log", 3, ts("2026-11-27T07:26:00.000000001Z"), "stderr", b"after")
    junk = Malformed("0.log", 4, b"junk", "x")
    assert [i for i in (before, at, after, junk) if keep_since(i, since)] == [at, after, junk]
    # the same instant given in another zone
    assert [i for i in (before, at) if keep_since(i, since.astimezone(IST))] == [at]
    assert [i for i in (before,) if keep_since(i, None)] == [before]


def test_since_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        keep_since(LogLine("0.log", 1, ts("2026-11-27T07:26:00Z"), "stdout", b""), datetime(2026, 11, 27))


def test_since_ns() -> None:
    assert since_ns(datetime(2026, 11, 27, 12, 56, 0, 123456, tzinfo=IST)) == epoch_ns(
        2026, 11, 27, 7, 26, 0, 123456000
    )


# ---------------------------------------------------------------------------------------------- render


def test_render() -> None:
    t = ts("2026-11-27T12:56:17.151238102+05:30")
    assert [
        render(LogLine("0.log", 1, t, "stdout", b"tz-line-1")),
        render(LogLine("0.log", 2, t, "stderr", b"tz-line-2")),
        render(LogLine("0.log", 3, t, "stdout", b"no eol", unterminated=True)),
        render(LogLine("0.log", 4, t, "stderr", b"bad \xff byte", unterminated=True)),
        render(Malformed("0.log.20261127-125600.gz", 17, b"raw \xfe text", "reason")),
    ] == [
        "2026-11-27T12:56:17.151238102+05:30 tz-line-1\n",
        "2026-11-27T12:56:17.151238102+05:30 [stderr] tz-line-2\n",
        "2026-11-27T12:56:17.151238102+05:30 [unterminated] no eol\n",
        "2026-11-27T12:56:17.151238102+05:30 [stderr,unterminated] bad \ufffd byte\n",
        "[malformed 0.log.20261127-125600.gz:17] raw \ufffd text\n",
    ]


# ---------------------------------------------------------------------------------------------- ordering


def test_classify_name() -> None:
    assert [classify_name(n) for n in ["0.log", "12.log.20261127-071841", "0.log.20261127-071838.gz"]] == [
        LogFileName("0.log", "cri", 0, None, "", False),
        LogFileName("12.log.20261127-071841", "cri", 12, None, "20261127-071841", False),
        LogFileName("0.log.20261127-071838.gz", "cri", 0, None, "20261127-071838", True),
    ]
    assert classify_name("abc-json.log.2.gz", {"abc": 3}) == LogFileName(
        "abc-json.log.2.gz", "docker", 3, "abc", "2", True
    )
    assert [classify_name(n) for n in ["0.log.gz", "x.log", "0.log.2026", "0.log.20261127-071838.tmp"]] == [
        None
    ] * 4


def test_plan_orders_rotations_and_restarts() -> None:
    names = [
        "1.log",
        "0.log",
        "10.log",
        "0.log.20261127-071950",  # newest rotation stays plain until the next one
        "0.log.20261127-071838.gz",
        "0.log.20261127-071935.gz",
        "0.log.20261127-071935",  # between the kubelet's rename to .gz and its unlink
        "0.log.20261127-071929.tmp",  # the kubelet's gzip in progress
        "1.log.20261127-072001.gz",
        "9.log",
        "notes.txt",
    ]
    assert plan_container_logs(names) == LogPlan(
        instances=(
            Instance(
                0,
                None,
                (
                    "0.log.20261127-071838.gz",
                    "0.log.20261127-071935",
                    "0.log.20261127-071950",
                    "0.log",
                ),
            ),
            Instance(1, None, ("1.log.20261127-072001.gz", "1.log")),
            Instance(9, None, ("9.log",)),
            Instance(10, None, ("10.log",)),
        ),
        skipped=(
            Skipped("0.log.20261127-071929.tmp", "kubelet's temporary gzip output"),
            Skipped("0.log.20261127-071935.gz", "same content as 0.log.20261127-071935"),
            Skipped("notes.txt", "not a log file name"),
        ),
    )


def test_plan_rotated_names_in_local_time_sort_by_name() -> None:
    # TZ=Asia/Kolkata (80-tz-rotated-name-clock): names carry the kubelet's clock, order is by name.
    assert plan_container_logs(["0.log", "0.log.20261127-125603", "0.log.20261127-125600.gz"]) == LogPlan(
        (Instance(0, None, ("0.log.20261127-125600.gz", "0.log.20261127-125603", "0.log")),)
    )


def test_plan_docker_files() -> None:
    old, new, unknown = "a" * 64, "b" * 64, "c" * 64
    names = [
        f"{new}-json.log",
        f"{new}-json.log.1",
        f"{new}-json.log.2.gz",
        f"{new}-json.log.10",
        f"{old}-json.log",
        f"{old}-json.log.1",
        f"{unknown}-json.log",
    ]
    assert plan_container_logs(names, {old: 0, new: 1}) == LogPlan(
        (
            Instance(0, old, (f"{old}-json.log.1", f"{old}-json.log")),
            Instance(
                1,
                new,
                (f"{new}-json.log.10", f"{new}-json.log.2.gz", f"{new}-json.log.1", f"{new}-json.log"),
            ),
            Instance(None, unknown, (f"{unknown}-json.log",)),
        )
    )
    assert [i.label for i in plan_container_logs(names, {old: 0, new: 1}).instances] == ["0", "1", unknown]


# ---------------------------------------------------------------------------------------------- files


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def test_open_log_by_magic(tmp_path: Path) -> None:
    data = cri("2026-11-27T07:18:34Z", "stdout", "F", b"x")
    paths = [
        write_gz(tmp_path / "0.log.20261127-071838.gz", data),
        write_gz(tmp_path / "0.log.20261127-071841", data),  # gzip under a plain name
        tmp_path / "0.log.20261127-071844.gz",  # .gz name, plain content
    ]
    paths[2].write_bytes(data)
    for path in paths:
        with open_log(path) as f:
            assert f.read() == data


def test_decode_instance_across_files(tmp_path: Path) -> None:
    gz = write_gz(
        tmp_path / "0.log.20261127-125600.gz",
        cri("2026-11-27T12:55:57.997955995+05:30", "stdout", "F", b"tz 1")
        + cri("2026-11-27T12:55:58+05:30", "stderr", "F", b"err 1")
        # a long line cut by the rotation: its P is in this file, its F in the next
        + cri("2026-11-27T12:55:59+05:30", "stdout", "P", b"A" * SPLIT),
    )
    plain = tmp_path / "0.log.20261127-125603"
    plain.write_bytes(
        cri("2026-11-27T12:56:02+05:30", "stdout", "F", b"tail")
        + b"not a log line\n"
        + cri("2026-11-27T12:56:03+05:30", "stdout", "F", b"tz 2")
    )
    live = tmp_path / "0.log"
    live.write_bytes(cri("2026-11-27T12:56:04+05:30", "stderr", "P", b"dying"))
    out = io.StringIO()
    report = decode_instance([gz, plain, live], out)
    assert out.getvalue() == (
        "2026-11-27T12:55:57.997955995+05:30 tz 1\n"
        "2026-11-27T12:55:58+05:30 [stderr] err 1\n"
        f"2026-11-27T12:55:59+05:30 {'A' * SPLIT}tail\n"
        "[malformed 0.log.20261127-125603:2] not a log line\n"
        "2026-11-27T12:56:03+05:30 tz 2\n"
        "2026-11-27T12:56:04+05:30 [stderr,unterminated] dying\n"
    )
    assert report == DecodeReport(
        files=(
            FileReport(gz.name, gz.stat().st_size, 3),
            FileReport(plain.name, plain.stat().st_size, 3, malformed=(2,)),
            FileReport(live.name, live.stat().st_size, 1),
        ),
        lines=6,
        stderr_lines=2,
        unterminated=1,
        malformed=1,
        before_since=0,
    )


def test_decode_instance_since(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    live.write_bytes(
        cri("2026-11-27T12:55:59+05:30", "stdout", "F", b"old")
        + b"junk\n"
        + cri("2026-11-27T07:26:00Z", "stdout", "F", b"new")
        + cri("2026-11-27T12:56:01+05:30", "stderr", "F", b"newer")
    )
    out = io.StringIO()
    report = decode_instance([live], out, since=datetime(2026, 11, 27, 12, 56, tzinfo=IST))
    assert out.getvalue() == (
        "[malformed 0.log:2] junk\n2026-11-27T07:26:00Z new\n2026-11-27T12:56:01+05:30 [stderr] newer\n"
    )
    assert report == DecodeReport(
        files=(FileReport("0.log", live.stat().st_size, 4, malformed=(2,)),),
        lines=3,
        stderr_lines=1,
        unterminated=0,
        malformed=1,
        before_since=1,
    )


def test_decode_instance_truncated_gzip_and_name_mismatch(tmp_path: Path) -> None:
    lines = b"".join(cri("2026-11-27T07:18:34Z", "stdout", "F", b"line %d" % i) for i in range(2000))
    whole = gzip.compress(lines, mtime=0)
    cut = tmp_path / "0.log.20261127-071838.gz"
    cut.write_bytes(whole[: len(whole) - 40])  # a copy taken while the file was being removed
    plain_named_gz = tmp_path / "0.log.20261127-071841.gz"
    plain_named_gz.write_bytes(cri("2026-11-27T07:18:40Z", "stdout", "F", b"plain"))
    out = io.StringIO()
    report = decode_instance([cut, plain_named_gz], out)
    text = out.getvalue().splitlines()
    assert text[0] == "2026-11-27T07:18:34Z line 0"
    assert text[-1] == "2026-11-27T07:18:40Z plain"
    got = report.files[0].records
    assert 0 < got < 2000 and report.lines == got + 1
    assert report.files == (
        FileReport(
            cut.name,
            cut.stat().st_size,
            got,
            error=f"damaged gzip data after line {got}: "
            "Compressed file ended before the end-of-stream marker was reached",
        ),
        FileReport(
            plain_named_gz.name,
            plain_named_gz.stat().st_size,
            1,
            note="named .gz but not gzip: read as plain text",
        ),
    )
