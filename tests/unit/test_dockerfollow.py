"""dockerfollow: a container followed through Docker's own rotations (ID-json.log -> .1 -> .2, the directory
listing only N.log), with and without a node pod for the rotated files; every test compares the whole
delivered stream (recordings 30-docker-e08/e09: lines lost after the first rotation, a malformed fragment)."""

from __future__ import annotations

import json

from kubectl_debugx.commands.nodelogs.followpod import parse_snapshot
from kubectl_debugx.formats.crilog import LogLine, Malformed
from kubectl_debugx.formats.dockerfollow import DockerFollower, Snapshot, first_line
from kubectl_debugx.formats.logfollow import Item, Whole


def line(n: int, stream: str = "stdout") -> bytes:
    return json.dumps({"log": f"tock {n:07d}\n", "stream": stream,
                       "time": f"2026-12-07T04:02:42.{n:09d}Z"}, separators=(",", ":")).encode() + b"\n"


class DockerNode:
    """One container's Docker files (live, .1, .2 ...) and the N.log links of its directory."""

    def __init__(self, max_file: int = 3) -> None:
        self.max_file = max_file
        self.instances: dict[int, list[bytearray]] = {0: [bytearray()]}  # restart -> [live, .1, .2, ...]
        self.after_read: list = []

    # the node proxy's view of /var/log/pods/NS_POD_UID/CTR/
    def listing(self) -> list[str] | None:
        return sorted(f"{n}.log" for n in self.instances)

    def read(self, name: str, offset: int, length: int | None = None) -> bytes | None:
        files = self.instances.get(int(name.split(".")[0]))
        data = None if files is None else bytes(files[0][offset:])
        while self.after_read:
            self.after_read.pop(0)()
        return data

    # the node
    def write(self, *numbers: int, restart: int = 0) -> None:
        for n in numbers:
            self.instances[restart][0] += line(n)

    def rotate(self, restart: int = 0) -> None:
        files = self.instances[restart]
        files.insert(0, bytearray())
        del files[self.max_file:]

    def docker_files(self, live: str) -> Snapshot | None:
        files = self.instances.get(int(live.split(".")[0]))
        if files is None:
            return None
        return Snapshot([bytes(f) for f in reversed(files[1:])], first_line(bytes(files[0])))


def numbers(node: DockerNode, rotated: bool = True) -> tuple[DockerFollower, list[str], list[str]]:
    out: list[str] = []
    notes: list[str] = []

    def emit(restart: int, item: Item) -> None:
        if isinstance(item, Whole):
            item = item.line()
        if isinstance(item, Malformed):
            out.append(f"malformed {item.raw.decode()}")
        else:
            assert isinstance(item, LogLine)
            out.append(f"#{restart} {item.text.split()[1]}")

    f = DockerFollower(node, emit, notes.append, node if rotated else None, "use --via pod")
    assert f.start(-1)
    return f, out, notes


def expect(*ranges: range, restart: int = 0) -> list[str]:
    return [f"#{restart} {n:07d}" for r in ranges for n in r]


def test_a_rotation_between_polls_finishes_the_rotated_file_then_reads_the_new_one():
    node = DockerNode()
    node.write(*range(1, 11))
    f, out, notes = numbers(node)
    node.write(*range(11, 21))
    f.poll()
    node.write(*range(21, 31))  # written after the read: in the file Docker rotates next
    node.rotate()
    node.write(*range(31, 35))  # the new live file is shorter than the offset: the proxy's 416
    f.poll()
    node.write(*range(35, 200))
    f.poll()
    f.poll()
    assert out == expect(range(1, 200)) and notes == []
    assert f.rotations == 1 and f.unread == 0


def test_a_new_live_file_longer_than_the_offset_is_not_read_from_mid_file():
    """30-docker-e09: the follower resumed mid-file in the new file ([malformed 0.log:6001])."""
    node = DockerNode()
    node.write(*range(1, 4))
    f, out, notes = numbers(node)
    node.write(4)
    node.rotate()
    node.write(*range(5, 100))  # past the old offset before the next poll
    f.poll()
    f.poll()
    assert out == expect(range(1, 100)) and notes == [] and not any("malformed" in o for o in out)


def test_several_rotations_between_two_polls_read_every_kept_file_in_order():
    node = DockerNode()
    node.write(1, 2)
    f, out, _ = numbers(node)
    node.write(3)
    node.rotate()
    node.write(4, 5)
    node.rotate()
    node.write(6)
    f.poll()
    f.poll()
    assert out == expect(range(1, 7))


def test_rotated_beyond_max_file_says_the_loss_and_reads_what_is_kept():
    node = DockerNode(max_file=2)
    node.write(1, 2)
    f, out, notes = numbers(node)
    node.write(3)
    node.rotate()
    node.write(4)
    node.rotate()  # the file holding 3 is deleted
    node.write(5)
    f.poll()
    f.poll()
    assert out == expect(range(1, 3), range(4, 6))
    assert len(notes) == 1 and "beyond its max-file" in notes[0] and f.unread == 1


def test_a_rotation_during_the_snapshot_read_is_caught_at_the_next_read():
    node = DockerNode()
    node.write(1)
    f, out, _ = numbers(node)
    node.write(2)
    node.rotate()
    node.write(3)
    real = node.docker_files

    def racing(live: str) -> Snapshot | None:
        snapshot = real(live)
        node.rotate()  # the live file (3) becomes .1 right after the snapshot
        node.write(4)
        node.docker_files = real  # type: ignore[method-assign]
        return snapshot

    node.docker_files = racing  # type: ignore[method-assign]
    f.poll()
    f.poll()
    f.poll()
    assert out == expect(range(1, 5))


def test_without_a_node_pod_one_line_says_what_is_missing_and_the_new_file_is_followed():
    node = DockerNode()
    node.write(1, 2)
    f, out, notes = numbers(node, rotated=False)
    node.write(3)
    node.rotate()
    node.write(4)
    f.poll()
    node.write(5)
    f.poll()
    assert out == expect([1, 2, 4, 5])
    assert len(notes) == 1 and "after line 2" in notes[0] and "use --via pod" in notes[0]


def test_a_restart_then_a_rotation_of_the_new_instance():
    node = DockerNode()
    node.write(1)
    f, out, _ = numbers(node)
    node.write(2)
    node.instances[1] = [bytearray()]
    node.write(3, restart=1)
    f.poll()
    node.write(4, restart=1)
    f.poll()
    node.write(5, restart=1)
    node.rotate(restart=1)
    node.write(6, restart=1)
    f.poll()
    f.poll()
    assert out == expect(range(1, 3)) + expect(range(3, 7), restart=1)


def test_parse_snapshot_needs_the_consistency_mark():
    out = b"F 4\nab\nnF 2\nc\nL\n" + line(7) + b"OK\n"
    assert parse_snapshot(out) == Snapshot([b"ab\nn", b"c\n"], line(7))
    assert parse_snapshot(out.replace(b"OK", b"MOVED")) is None
    assert parse_snapshot(b"L\nOK\n") == Snapshot([], b"")
