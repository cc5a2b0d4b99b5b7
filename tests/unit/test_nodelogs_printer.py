"""nodelogs --follow's printer: a run of whole CRI records taken at once prints the very bytes the line-by-line
way prints; a run it cannot take whole is refused and goes line by line (whole outputs compared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_debugx.commands.nodelogs.follow import FollowOptions
from kubectl_debugx.commands.nodelogs.printer import Printer
from kubectl_debugx.formats.crilog import parse_timestamp
from kubectl_debugx.formats.logfollow import ContainerFollower
from kubectl_debugx.remote.sinks import ByteSink

RECORDS = (b"2026-12-07T16:40:00.123456789Z stdout F GET / 200\n"
           b"2026-12-07T17:40:00.1+01:00 stderr F warn: slow\n"
           b"2026-12-07T16:40:01Z stdout F \n"  # an empty line
           b"2026-12-07T16:40:02.5-03:30 stdout F text with stdout in it and F too\n"
           b"2026-12-07T16:40:03Z stderr F [stderr] as text\n")


class OneFile:
    """A container directory whose live 0.log holds ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def listing(self) -> list[str]:
        return ["0.log"]

    def read(self, name: str, offset: int, length: int | None = None) -> bytes:
        return self.data[offset:]


def printed(tmp_path: Path, data: bytes, timestamps: bool, whole_runs: bool) -> tuple[bytes, int, int]:
    """(stdout, lines counted, offset) after the follower read ``data`` appended to an empty live file."""
    out = tmp_path / f"out-{timestamps}-{whole_runs}"
    printer = Printer(ByteSink(str(out)), FollowOptions(timestamps=timestamps))
    reader = OneFile(b"")
    follower = ContainerFollower(reader, printer.emitter("web-1", "nginx"), lambda _: None)
    assert follower.start(0)
    if whole_runs:
        follower.emit_block = printer.block_emitter("web-1", "nginx")
    printer.emitter("web-1", "log-shipper")  # a longer prefix: every line padded to it
    reader.data = data
    follower.poll()
    printer.flush()
    return out.read_bytes(), printer.lines, follower.offset


@pytest.mark.parametrize("timestamps", [False, True])
def test_a_run_of_whole_records_prints_what_line_by_line_prints(tmp_path: Path, timestamps: bool):
    by_line = printed(tmp_path, RECORDS, timestamps, whole_runs=False)
    assert printed(tmp_path, RECORDS, timestamps, whole_runs=True) == by_line
    expected = (b"web-1/nginx         2026-12-07T16:40:00.123456789Z GET / 200\n"
                b"web-1/nginx         2026-12-07T17:40:00.1+01:00 [stderr] warn: slow\n"
                b"web-1/nginx         2026-12-07T16:40:01Z \n"
                b"web-1/nginx         2026-12-07T16:40:02.5-03:30 text with stdout in it and F too\n"
                b"web-1/nginx         2026-12-07T16:40:03Z [stderr] [stderr] as text\n") if timestamps else (
                b"web-1/nginx         GET / 200\n"
                b"web-1/nginx         warn: slow\n"
                b"web-1/nginx         \n"
                b"web-1/nginx         text with stdout in it and F too\n"
                b"web-1/nginx         [stderr] as text\n")
    assert by_line == (expected, 5, len(RECORDS))


@pytest.mark.parametrize("run", [
    RECORDS + b"2026-12-07T16:40:04Z stdout P part of a long line\n2026-12-07T16:40:04Z stdout F  ends\n",
    RECORDS + b"not a log line\n",
    RECORDS + b"2026-12-07T16:40:04Z stdout F says stderr F in its text\n",  # a tag in the text: not replaced
])
@pytest.mark.parametrize("timestamps", [False, True])
def test_a_run_that_is_not_all_whole_records_is_refused_and_goes_line_by_line(tmp_path: Path, run: bytes,
                                                                           timestamps: bool):
    printer = Printer(ByteSink(str(tmp_path / "o")), FollowOptions(timestamps=timestamps))
    taken = printer.block_emitter("web-1", "nginx")(0, run)
    assert (taken, printer.lines) == ((True, 6) if run.endswith(b"in its text\n") and not timestamps else (False, 0))
    assert printed(tmp_path, run, timestamps, whole_runs=True) == printed(tmp_path, run, timestamps,
                                                                            whole_runs=False)


def test_since_refuses_runs(tmp_path: Path):
    since = parse_timestamp(b"2026-12-07T16:40:01Z")
    assert since is not None
    printer = Printer(ByteSink(str(tmp_path / "o")), FollowOptions(since=since.to_datetime()))
    assert printer.block_emitter("web-1", "nginx")(0, RECORDS) is False
