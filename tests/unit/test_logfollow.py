"""logfollow: one container's lines followed through polls of listings and ranged reads, across rotations,
restarts, partial lines and lost connections; every test compares the whole delivered stream."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest

from kubectl_debugx.formats.crilog import Malformed
from kubectl_debugx.formats.logfollow import ContainerFollower, Item, Whole


def cri(text: str, stream: str = "stdout", tag: str = "F", ts: str = "2026-11-30T16:00:00.5Z") -> bytes:
    return f"{ts} {stream} {tag} {text}\n".encode()


class Lost(Exception):
    pass


class FakeDir:
    """A container directory of a node: files by name; hooks run between two calls, as the node goes on."""

    def __init__(self, **files: bytes) -> None:
        self.files = {name.replace("_", "."): bytearray(data) for name, data in files.items()}
        self.after_read: list[Callable[[], None]] = []
        self.fail_listing = 0

    def listing(self) -> list[str] | None:
        if self.fail_listing:
            self.fail_listing -= 1
            raise Lost("connection reset")
        return sorted(self.files)

    def read(self, name: str, offset: int, length: int | None = None) -> bytes | None:
        data = self.files.get(name)
        out = None if data is None else bytes(data[offset:] if length is None else data[offset:offset + length])
        while self.after_read:
            self.after_read.pop(0)()
        return out

    def write(self, *records: bytes, name: str = "0.log") -> None:
        for record in records:
            self.files[name] += record

    def rotate(self, stamp: str, restart: int = 0) -> None:
        """The kubelet's rotation: gzip the older rotated file, rename the live one, the runtime reopens."""
        for name in [n for n in self.files if n.startswith(f"{restart}.log.") and not n.endswith(".gz")]:
            self.files[name + ".gz"] = bytearray(gzip.compress(bytes(self.files.pop(name))))
        self.files[f"{restart}.log.{stamp}"] = self.files.pop(f"{restart}.log")
        self.files[f"{restart}.log"] = bytearray()


def follower(node: FakeDir, tail: int = -1) -> tuple[ContainerFollower, list[str]]:
    out: list[str] = []
    notes: list[str] = []

    def emit(restart: int, item: Item) -> None:
        if isinstance(item, Whole):
            item = item.line()
        if isinstance(item, Malformed):
            out.append(f"#{restart} malformed {item.raw.decode()}")
        else:
            mark = " unterminated" if item.unterminated else ""
            out.append(f"#{restart} {item.stream} {item.text}{mark}")

    f = ContainerFollower(node, emit, notes.append)
    assert f.start(tail)
    out.append("--started")
    f.notes = notes  # type: ignore[attr-defined]
    return f, out


def test_tail_then_new_lines_once_each_a_half_written_line_waits():
    node = FakeDir(**{"0_log": cri("a") + cri("b") + cri("c")})
    f, out = follower(node, tail=2)
    node.write(cri("d"), cri("e")[:10])  # the second record is still being written
    f.poll()
    node.files["0.log"] += cri("e")[10:]
    f.poll()
    f.poll()
    assert out == ["#0 stdout b", "#0 stdout c", "--started", "#0 stdout d", "#0 stdout e"]


def test_tail_zero_and_all():
    node = FakeDir(**{"0_log": cri("a") + cri("b")})
    assert follower(node, tail=0)[1] == ["--started"]
    assert follower(node, tail=-1)[1] == ["#0 stdout a", "#0 stdout b", "--started"]


def test_partial_records_are_joined_across_reads_and_streams():
    node = FakeDir(**{"0_log": b""})
    f, out = follower(node)
    node.write(cri("x" * 5, tag="P"), cri("err", "stderr"))
    f.poll()
    node.write(cri("yy"))
    f.poll()
    assert out == ["--started", "#0 stderr err", "#0 stdout xxxxxyy"]


def test_rotation_finishes_the_renamed_file_then_the_new_one():
    node = FakeDir(**{"0_log": cri("1")})
    f, out = follower(node, tail=0)
    node.write(cri("2"))
    f.poll()
    node.write(cri("3"))  # written before the rename, not read yet
    node.rotate("20261130-160001")
    node.write(cri("4"))
    f.poll()  # the live read saw the new file ("4"): dropped; the renamed file is read from the old offset
    node.write(cri("5"))
    f.poll()
    f.poll()
    f.poll()
    assert out == ["--started", "#0 stdout 2", "#0 stdout 3", "#0 stdout 4", "#0 stdout 5"]


def test_rotation_between_the_read_and_the_listing_drops_nothing_and_repeats_nothing():
    node = FakeDir(**{"0_log": cri("1")})
    f, out = follower(node, tail=0)
    node.write(cri("2"))

    def rotate_now() -> None:
        node.write(cri("3"))
        node.rotate("20261130-160001")
        node.write(cri("4"))

    node.after_read.append(rotate_now)  # the live read returned "2"; then the node rotated
    for _ in range(4):
        f.poll()
    assert out == ["--started", "#0 stdout 2", "#0 stdout 3", "#0 stdout 4"]


def test_a_late_write_to_the_renamed_file_is_still_read():
    node = FakeDir(**{"0_log": b""})
    f, out = follower(node)
    node.write(cri("1"))
    node.rotate("20261130-160001")
    f.poll()  # renamed file read; the runtime reopened 0.log
    node.write(cri("late"), name="0.log.20261130-160001")  # a write that was in flight at the reopen
    node.write(cri("2"))
    for _ in range(3):
        f.poll()
    assert out == ["--started", "#0 stdout 1", "#0 stdout late", "#0 stdout 2"]


def test_an_outage_over_two_rotations_reads_the_gzipped_file_from_its_offset():
    node = FakeDir(**{"0_log": cri("1")})
    f, out = follower(node, tail=0)
    node.write(cri("2"))
    node.fail_listing = 1
    with pytest.raises(Lost):
        f.poll()  # "2" was read but not delivered: the listing failed
    node.write(cri("3"))
    node.rotate("20261130-160001")
    node.write(cri("4"))
    node.rotate("20261130-160011")  # the first rotated file is now .gz
    node.write(cri("5"))
    for _ in range(4):
        f.poll()
    assert out == ["--started", "#0 stdout 2", "#0 stdout 3", "#0 stdout 4", "#0 stdout 5"]
    assert sorted(node.files) == ["0.log", "0.log.20261130-160001.gz", "0.log.20261130-160011"]


def test_a_rotated_file_removed_during_an_outage_is_said():
    node = FakeDir(**{"0_log": cri("1")})
    f, out = follower(node, tail=0)
    node.write(cri("2"))
    node.rotate("20261130-160001")
    node.write(cri("3"))
    node.rotate("20261130-160011")
    del node.files["0.log.20261130-160001.gz"]  # retention removed it
    node.write(cri("4"))
    for _ in range(4):
        f.poll()
    assert out == ["--started", "#0 stdout 3", "#0 stdout 4"]
    assert f.notes == [  # type: ignore[attr-defined]
        "0.log was rotated away during an outage before it was read to its end: lines may be missing"]


def test_a_restart_ends_the_instance_with_its_unterminated_line_then_follows_the_new_file():
    node = FakeDir(**{"0_log": cri("a")})
    f, out = follower(node, tail=0)
    node.write(cri("last"), cri("no newline", tag="P"))
    node.files["1.log"] = bytearray(cri("b"))
    f.poll()
    node.write(cri("c"), name="1.log")
    f.poll()
    assert out == ["--started", "#0 stdout last", "#0 stdout no newline unterminated", "#1 stdout b",
                   "#1 stdout c"]


def test_start_follows_the_newest_instance_and_a_gone_directory_ends():
    class Gone(FakeDir):
        gone = False

        def listing(self) -> list[str] | None:
            return None if self.gone else super().listing()

    node = Gone(**{"0_log": cri("old"), "1_log": cri("new")})
    f, out = follower(node)
    node.gone = True
    f.poll()
    assert out == ["#1 stdout new", "--started"]
    assert f.ended == "its log directory is gone (the pod was deleted)"


def test_malformed_lines_are_delivered_as_they_are():
    node = FakeDir(**{"0_log": b"not cri\n" + cri("ok")})
    assert follower(node)[1] == ["#0 malformed not cri", "#0 stdout ok", "--started"]
