"""A stopping capture's wait (commands/capture_drain.py): proven by a packet stamped after the node's clock at the
request, else STOP_GRACE and a quiet stream, never more than MAX_S; on a fake clock."""

from __future__ import annotations

import struct
import time

import pytest

from kubectl_debugx.commands import capture_drain
from kubectl_debugx.commands.capture_drain import MAX_S, QUIET_S, STOP_GRACE, DrainPoint, PacketDrain
from kubectl_debugx.errors import RemoteFailed
from kubectl_debugx.formats.pcap import PcapScanner
from kubectl_debugx.remote.ephemeral import Target

HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def stamped(sec: int) -> bytes:
    return struct.pack("<IIII", sec, 0, 4, 4) + b"data"


def target(name: str) -> Target:
    return Target("ns", {"metadata": {"name": name, "uid": name}}, "app")


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(capture_drain.time, "monotonic", lambda: now[0])
    return now


def point(name: str, node_now: int | None) -> DrainPoint:
    scanner = PcapScanner()
    scanner.feed(HEADER)
    p = DrainPoint(target(name), "debugger-x", scanner)
    p.node_now = node_now  # type: ignore[attr-defined]  # what `date +%s` answers in this pod (None: fails)
    return p


@pytest.fixture
def nodes(monkeypatch):
    def node_seconds(_kube, tgt, ec):
        assert ec == "debugger-x"
        found = next(p for p in made if p.target is tgt)
        if found.node_now is None:
            raise RemoteFailed(f"{tgt.pod_name}/{ec}: sh: date: not found")
        return found.node_now

    made: list[DrainPoint] = []
    monkeypatch.setattr(capture_drain.process, "node_seconds", node_seconds)
    return made


def begin(made: list[DrainPoint]) -> PacketDrain:
    drain = PacketDrain(object(), lambda: made)  # type: ignore[arg-type]
    drain.begin()
    for _ in range(200):  # the marks are read by threads: wait for each to have answered
        if all(p.mark is not None or p.node_now is None for p in made):  # type: ignore[attr-defined]
            break
        time.sleep(0.01)
    return drain


def test_a_packet_stamped_after_the_nodes_now_ends_the_wait_at_once(clock, nodes):
    busy = point("busy", 1000)
    nodes.append(busy)
    drain = begin(nodes)
    assert busy.mark == 1001  # the second after the node's now: all of it is after the request
    busy.scanner.feed(stamped(1000))  # captured in the second of the request: maybe before it
    busy.fed()
    assert not drain.over(0.5)
    busy.scanner.feed(stamped(1001))
    busy.fed()
    assert drain.over(0.6)


def test_without_a_later_packet_the_wait_is_the_grace_then_a_quiet_stream(clock, nodes):
    idle = point("idle", 1000)
    nodes.append(idle)
    drain = begin(nodes)
    clock[0] += STOP_GRACE - 0.1
    assert not drain.over(STOP_GRACE - 0.1)  # quiet since the start, but the grace is not over
    clock[0] += 0.1
    assert drain.over(STOP_GRACE)
    idle.fed()  # a starved tcpdump hands over its backlog late: the wait goes on while it flows
    fed_at = clock[0]
    clock[0] = fed_at + QUIET_S - 0.1
    assert not drain.over(STOP_GRACE + QUIET_S - 0.1)
    clock[0] = fed_at + QUIET_S
    assert drain.over(STOP_GRACE + QUIET_S)


def test_every_pod_must_be_drained_an_ended_one_is_and_max_s_ends_any_wait(clock, nodes):
    proven, flowing, ended, dateless = point("a", 50), point("b", 60), point("c", 70), point("d", None)
    nodes.extend([proven, flowing, ended, dateless])
    drain = begin(nodes)
    assert (proven.mark, flowing.mark, ended.mark, dateless.mark) == (51, 61, 71, None)
    proven.scanner.feed(stamped(51))
    ended.ended = True
    clock[0] += 3.0
    flowing.fed()
    dateless.fed()
    assert not drain.over(3.0)
    clock[0] += QUIET_S
    dateless.fed()  # b is quiet now; d, whose image has no date, still brings packets
    assert not drain.over(3.0 + QUIET_S)
    clock[0] = 100.0 + MAX_S
    dateless.fed()
    assert drain.over(MAX_S)
