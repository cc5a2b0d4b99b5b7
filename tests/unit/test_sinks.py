"""Where streamed data goes: whole lines only for traces."""

from __future__ import annotations

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
