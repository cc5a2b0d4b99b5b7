"""Where streamed data goes: whole lines only for traces."""

from __future__ import annotations

import os
from pathlib import Path

from kubectl_debugx.remote.sinks import ByteSink, WholeLines


def test_whole_lines_holds_a_line_until_its_newline(tmp_path: Path):
    path = tmp_path / "t.trace"
    out = WholeLines(ByteSink(str(path)))
    assert out.write(b"read(3") == 0
    assert not path.exists()  # nothing whole yet: no file
    assert out.write(memoryview(b", ...) = 1\nwrite(1, ")) == 1
    assert path.read_bytes() == b"read(3, ...) = 1\n"  # what a kill -9 now would leave: whole lines
    assert out.write(b"...) = 2\nclose(3) = 0\nexit") == 2
    assert path.read_bytes() == b"read(3, ...) = 1\nwrite(1, ...) = 2\nclose(3) = 0\n"
    out.close()
    assert path.read_bytes() == b"read(3, ...) = 1\nwrite(1, ...) = 2\nclose(3) = 0\nexit"  # the rest at the end


def test_whole_lines_close_without_flush_drops_the_unterminated_rest(tmp_path: Path):
    path = tmp_path / "t.trace"
    out = WholeLines(ByteSink(str(path)))
    out.write(b"a\nb")
    out.close(flush=False)
    assert path.read_bytes() == b"a\n"


def test_writev_goes_on_after_short_writes_and_past_iov_max(tmp_path: Path, monkeypatch):
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, parts) -> int:  # a slow pipe: at most 5 bytes a call, never more than 1024 parts
        calls.append(len(parts))
        assert len(parts) <= 1024
        return real_writev(fd, [b"".join(bytes(p) for p in parts)[:5]])

    monkeypatch.setattr(os, "writev", short_writev)
    path = tmp_path / "x"
    sink = ByteSink(str(path))
    parts: list[bytes | memoryview] = [b"abc", memoryview(b"defghij"), b"", b"k", b"lmnop"] + [b"q"] * 1100
    sink.writev(parts)
    sink.close()
    assert (path.read_bytes(), sink.written) == (b"abcdefghijklmnop" + b"q" * 1100, 16 + 1100)
    assert calls[0] == 1024


def test_writev_writes_each_part_once_when_the_kernel_takes_all(tmp_path: Path):
    path = tmp_path / "x"
    sink = ByteSink(str(path))
    sink.writev([b"a" * 3000, memoryview(b"b" * 5), b""] * 700)
    sink.write(b"end")
    sink.close()
    assert (path.read_bytes(), sink.written) == ((b"a" * 3000 + b"b" * 5) * 700 + b"end", 3005 * 700 + 3)
