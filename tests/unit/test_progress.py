import io

from kubectl_debugx.progress import Progress, human_size, line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_human_size():
    assert [human_size(n) for n in (0, 999, 1000, 12_600_000, 3_000_000_000_000)] == [
        "0 B", "999 B", "1.0 kB", "12.6 MB", "3000.0 GB"]


def test_line_with_and_without_total():
    assert line(12_600_000, 21_000_000, 1.5) == "12.6 MB of 21.0 MB (60%), 8.4 MB/s"
    assert line(12_600_000, None, 1.5) == "12.6 MB, 8.4 MB/s"


def test_plain_lines_every_five_seconds_after_a_quiet_first_second():
    out, clock = io.StringIO(), Clock()
    p = Progress("Copying", 10_000_000, stream=out, clock=clock)
    for step in range(1, 14):  # 0.5 s steps, 500 kB each
        clock.now = 100.0 + step * 0.5
        p.add(500_000)
    p.finish()
    assert out.getvalue() == ("Copying: 1.0 MB of 10.0 MB (10%), 1.0 MB/s\n"
                              "Copying: 6.0 MB of 10.0 MB (60%), 1.0 MB/s\n")


def test_terminal_line_refreshed_in_place_and_cleared():
    out, clock = Tty(), Clock()
    p = Progress("Copying", None, stream=out, clock=clock)
    for step in (0.5, 1.0, 1.5):
        clock.now = 100.0 + step
        p.add(1000)
    p.finish()
    assert out.getvalue() == ("\rCopying: 2.0 kB, 2.0 kB/s\x1b[K"
                              "\rCopying: 3.0 kB, 2.0 kB/s\x1b[K"
                              "\r\x1b[K")


def test_quiet_says_nothing():
    out, clock = Tty(), Clock()
    p = Progress("Copying", None, stream=out, quiet=True, clock=clock)
    clock.now = 110.0
    p.add(1)
    p.finish()
    assert out.getvalue() == ""
