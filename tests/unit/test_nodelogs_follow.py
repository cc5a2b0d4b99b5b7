"""nodelogs --follow's own parts: the prefixed, aligned output; what the proxy's answers mean to the follower;
the refused combinations; the lost-and-found connection said once each (whole outputs compared)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_debugx.commands.nodelogs import follow as nlf
from kubectl_debugx.commands.nodelogs.proxy import ProxySource
from kubectl_debugx.commands.nodelogs.target import NodeLogsOptions
from kubectl_debugx.errors import Forbidden, Unreachable, UsageError
from kubectl_debugx.formats.crilog import LogLine, Malformed, parse_line
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.remote.sinks import ByteSink
from kubectl_debugx.talk import Talk

from .test_nodelogs import FakeKube, make_pod, node_tree


def line(text: str, stream: str = "stdout") -> Any:
    item = parse_line(f"2026-11-30T16:00:00.25Z {stream} F {text}".encode())
    return LogLine(item.source, 1, item.timestamp, item.stream, item.content)  # type: ignore[union-attr]


def test_lines_are_prefixed_and_aligned_with_room_for_a_restart(tmp_path: Path):
    out = tmp_path / "out"
    printer = nlf.Printer(ByteSink(str(out)), nlf.FollowOptions())
    web = printer.emitter("web-1", "nginx")
    side = printer.emitter("web-1", "log-shipper")
    web(0, line("GET / 200"))
    side(0, line("shipped 3", "stderr"))
    web(1, line("started again"))
    web(1, Malformed("1.log", 7, b"garbage", "not a CRI line"))
    printer.flush()
    assert out.read_text() == (
        "web-1/nginx         GET / 200\n"
        "web-1/log-shipper   shipped 3\n"
        "web-1/nginx#1       started again\n"
        "web-1/nginx#1       [malformed 1.log:7] garbage\n"
    )
    assert printer.lines == 4


def test_timestamps_and_since(tmp_path: Path):
    out = tmp_path / "out"
    since = line("x").timestamp.to_datetime()
    printer = nlf.Printer(ByteSink(str(out)), nlf.FollowOptions(timestamps=True, since=since))
    emit = printer.emitter("db-0", "pg")
    old = parse_line(b"2026-11-30T15:59:59Z stdout F before")
    emit(0, LogLine("0.log", 1, old.timestamp, "stdout", b"before"))  # type: ignore[union-attr]
    emit(0, line("checkpoint", "stderr"))
    printer.flush()
    assert out.read_text() == "db-0/pg   2026-11-30T16:00:00.25Z [stderr] checkpoint\n"


class ProxyKube:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, str]] = []

    def node_proxy_read(self, node: str, path: str, byte_range: str, read_timeout: float) -> tuple[int, bytes]:
        self.asked.append((node, path, byte_range))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_proxy_reader_asks_ranges_and_reads_the_answers():
    kube = ProxyKube([(206, b"rest\n"), (200, b"0123456789"), (206, b"0123"),
                      api_error(416, b"invalid range: failed to overlap\n"), api_error(404, b"404 page not found\n"),
                      api_error(403, b"forbidden")])
    reader = nlf.ProxyReader(ProxySource(kube, "node-1"), "ns_web_u1", "nginx")  # type: ignore[arg-type]
    assert reader.read("0.log", 100) == b"rest\n"
    assert reader.read("0.log", 6) == b"6789"  # a server that ignored the range: the bytes from 6 on
    assert reader.read("0.log.20261130-160000", 0, 4) == b"0123"
    assert reader.read("0.log", 10) == b""
    assert reader.read("0.log", 10) is None
    with pytest.raises(Forbidden, match=r"--follow needs get on nodes/proxy"):
        reader.read("0.log", 10)
    assert kube.asked == [
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log", "100-"),
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log", "6-"),
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log.20261130-160000", "0-3"),
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log", "10-"),
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log", "10-"),
        ("node-1", "logs/pods/ns_web_u1/nginx/0.log", "10-"),
    ]


@pytest.mark.parametrize(("args", "message"), [
    (("auto", "out", False, False, 10), "--follow cannot be used with -o/--output: it prints the lines on stdout "
                                        "(redirect it to keep them); -o copies the files once"),
    (("auto", None, True, False, 10), "--follow cannot be used with --raw: it prints decoded lines"),
    (("auto", None, False, True, 10), "--follow cannot be used with --merge: it already interleaves every pod's "
                                      "lines as they come"),
    (("proxy", None, False, False, -2), "--tail: must be -1 (all), 0 or more, got -2"),
    (("auto", None, False, False, 10, True), "--summary json cannot be used with --follow: stdout carries the lines"),
])
def test_refused_combinations(args, message):
    with pytest.raises(UsageError) as e:
        nlf.check(*args)
    assert str(e.value) == message


class Said(Talk):
    def __init__(self) -> None:
        super().__init__(command="nodelogs")
        self.lines: list[str] = []

    def say(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"Warning: {message}")


class Flaky:
    """A follower whose polls fail `failures` times, then succeed; it ends after `polls` good polls."""

    def __init__(self, failures: int, polls: int) -> None:
        self.failures, self.polls, self.ended = failures, polls, ""

    def poll(self) -> None:
        if self.failures:
            self.failures -= 1
            raise Unreachable("cannot reach the API server at https://127.0.0.1:6443: connection refused")
        self.polls -= 1
        if not self.polls:
            self.ended = "its log directory is gone (the pod was deleted)"


def test_a_lost_connection_is_said_once_and_the_reconnect_once(monkeypatch, tmp_path: Path):
    naps: list[float] = []
    monkeypatch.setattr(nlf.time, "sleep", naps.append)
    talk = Said()
    run = nlf.Follow(None, talk, nlf.FollowOptions(), nlf.Printer(ByteSink(str(tmp_path / "o")),  # type: ignore[arg-type]
                                                                   nlf.FollowOptions()))
    run.followed.append(nlf.Followed("web", "nginx", Flaky(4, 2)))  # type: ignore[arg-type]
    assert run.run(None) == ""
    assert talk.lines == [
        "Lost the connection (cannot reach the API server at https://127.0.0.1:6443: connection refused): "
        "retrying; every file resumes after its last whole line",
        talk.lines[1],
        "web/nginx: its log directory is gone (the pod was deleted): no longer followed",
    ]
    assert talk.lines[1].startswith("Reconnected after ") and talk.lines[1].endswith("s: resumed where each file "
                                                                                      "stopped")
    assert naps[:4] == [1.0, 2.0, 4.0, 5.0]  # backing off up to RETRY_MAX
    assert run.reconnects == 1


class EndedStream:
    """A pods/log stream whose container wrote nothing more and ended."""

    def news(self) -> bool:
        return False

    def close(self) -> None:
        pass


class TreeKube(FakeKube):
    """test_nodelogs' node tree, read with byte ranges as the kubelet's file server answers them; its log
    streams end at once (the polls read the files)."""

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = 0) -> Any:
        return EndedStream()

    def node_proxy_read(self, node: str, path: str, byte_range: str, read_timeout: float) -> tuple[int, bytes]:
        response = self.node_proxy_get(node, path)
        data = response.read(decode_content=False)
        start, _, end = byte_range.partition("-")
        if int(start) >= len(data):
            raise api_error(416, b"invalid range: failed to overlap\n")
        return 206, data[int(start):int(end) + 1 if end else None]


def test_one_pod_end_to_end_from_the_node_tree(capfd):
    talk = Talk(command="nodelogs")
    opts = NodeLogsOptions(pod="nginx", all_containers=True)
    code = nlf.run_one(TreeKube(node_tree(), make_pod()), opts, nlf.FollowOptions(tail=-1, duration=0.0), talk)
    out, err = capfd.readouterr()
    assert code == 0
    # init/ has no directory in the tree (warned); nginx's live instance is 1.log; side's line is not CRI
    assert out == ("nginx/nginx#1 restarted\n"
                   "nginx/side    [malformed 0.log:1] not a log line\n")
    assert err.splitlines()[-2:] == [
        "Following 2 containers of 1 pod through the node proxy (at once on each log stream's news, every 0.5s "
        "at least); Ctrl-C to stop",
        "Stopped (--duration) after 2 lines"]
    assert (talk.summary["linesWritten"], talk.summary["stoppedBy"], talk.summary["via"]) == (2, "--duration", "proxy")


def test_a_pod_that_joins_later_is_one_call(capfd):
    kube = TreeKube(node_tree(), make_pod())
    talk = Talk(command="nodelogs")
    opts = NodeLogsOptions(pod="nginx", container="side")

    def join_once(run: nlf.Follow) -> None:
        if len(run.followed) == 1:
            assert run.join(make_pod()) == ["side"]  # as a watch would, for a pod that appeared

    def start(run: nlf.Follow) -> list[tuple[str, list[str]]]:
        run.between_polls = join_once
        return [("nginx", run.add_pod(nlf.resolve(kube, opts, "rec"), ("nginx",)))]

    fopts = nlf.FollowOptions(tail=0, duration=0.7)
    assert nlf.follow(kube, talk, fopts, opts, start, "pod nginx") == 0
    out, _ = capfd.readouterr()
    assert out == "nginx/side    [malformed 0.log:1] not a log line\n"  # all its lines: it is new
    assert talk.summary["container"] == "nginx"  # the one followed at the start


class Counting:
    """A follower that counts its polls (and when each was) and ends after ``polls`` of them."""

    def __init__(self, polls: int) -> None:
        self.polls, self.left, self.ended, self.at = 0, polls, "", []

    def poll(self) -> None:
        if self.ended:
            return
        self.at.append(time.monotonic())
        self.polls += 1
        self.left -= 1
        if not self.left:
            self.ended = "its log directory is gone (the pod was deleted)"


def test_a_container_woken_without_pause_is_polled_once_per_wake_gap(tmp_path: Path):
    """A container writing as fast as it can (its stream wakes it at every wait): polled at once, then at most
    once per WAKE_GAP, its lines read in batches; nothing else waits for it."""
    run = nlf.Follow(None, Said(), nlf.FollowOptions(), nlf.Printer(ByteSink(str(tmp_path / "o")),  # type: ignore[arg-type]
                                                                      nlf.FollowOptions()))
    quiet, busy = Counting(1000), Counting(1000)
    run.followed += [nlf.Followed("web", "quiet", quiet), nlf.Followed("web", "busy", busy)]  # type: ignore[arg-type]
    run.wakeups = Woken()  # type: ignore[assignment]
    assert run.run(time.monotonic() + 0.45) == "--duration"
    assert quiet.polls == 1  # within one POLL_INTERVAL: the full poll only
    woken = busy.at[1:]  # the first poll is the full one, at the start
    gaps = [b - a for a, b in zip(woken, woken[1:], strict=False)]
    assert 3 <= len(woken) <= 5 and min(gaps) >= nlf.WAKE_GAP - 0.005, (len(woken), gaps)


class Woken:
    """Wakeups whose every wait wakes container 1 at once; dropped keys recorded."""

    def __init__(self) -> None:
        self.waits, self.dropped = 0, []

    def wait(self, timeout: float) -> set[int]:
        self.waits += 1
        return {1}

    def drop(self, key: int) -> None:
        self.dropped.append(key)


def test_a_container_whose_stream_woke_is_polled_at_once_the_others_every_interval(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(nlf, "WAKE_GAP", 0.001)
    run = nlf.Follow(None, Said(), nlf.FollowOptions(), nlf.Printer(ByteSink(str(tmp_path / "o")),  # type: ignore[arg-type]
                                                                      nlf.FollowOptions()))
    quiet, busy = Counting(1000), Counting(5)
    run.followed += [nlf.Followed("web", "quiet", quiet), nlf.Followed("web", "busy", busy)]  # type: ignore[arg-type]
    run.wakeups = Woken()  # type: ignore[assignment]
    assert run.run(time.monotonic() + 0.3) == "--duration"  # well within one POLL_INTERVAL: one full poll
    assert (quiet.polls, busy.polls, busy.ended != "") == (1, 5, True)
    assert run.wakeups.dropped == [1]  # type: ignore[union-attr]
