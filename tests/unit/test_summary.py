"""One summary schema (kubectl_debugx/summary.py): every command's builder gives exactly its keys, typed."""

import json
from datetime import datetime, timezone

import pytest

from kubectl_debugx import summary
from kubectl_debugx.commands import capture, trace
from kubectl_debugx.commands.nodelogs import report
from kubectl_debugx.commands.nodelogs.target import LogTarget, NodeLogsOptions
from kubectl_debugx.formats.traceprocs import Proc, Selection
from kubectl_debugx.talk import Talk, plural


def emitted(command, record, capsys, code=0):
    """The JSON a run prints: the empty summary, what the workflow records, the builder's record, exitCode."""
    talk = Talk(json_summary=True, command=command)
    talk.record(pod="web", namespace="shop")
    talk.record(**record)
    talk.emit_summary(code)
    printed = json.loads(capsys.readouterr().out)
    assert summary.check(command, printed) == []
    assert set(printed) == set(summary.keys(command))
    return printed


def test_capture_summary(capsys):
    counts = {"captured": 12, "received by filter": 14, "dropped by kernel": 1}
    record = capture.summary_record(counts, 12, 2048, "web.pcap", 3.14159, "netadmin", "nginx", "debugx-1a2b",
                                    "any", "SIGINT")
    assert emitted("capture", record, capsys) == {
        "command": "capture", "namespace": "shop", "pod": "web", "container": "nginx", "debugContainer": "debugx-1a2b",
        "profile": "netadmin", "output": "web.pcap", "durationSeconds": 3.142, "stoppedBy": "SIGINT", "exitCode": 0,
        "target": None, "pods": None,
        "interface": "any", "packetsWritten": 12, "bytesWritten": 2048, "packetsCaptured": 12,
        "packetsReceivedByFilter": 14, "droppedByKernel": 1,
        "ringFiles": None, "filesWritten": None, "filesDropped": None, "packetsDropped": None,
    }
    text, warning = capture.summary_text(counts, record)
    assert text == ("tcpdump: 12 packets captured, 14 received by filter, 1 dropped by kernel (on interface any, "
                    "received counts loopback packets twice); 12 packets (2048 bytes) written to web.pcap; 3.1s; "
                    "profile netadmin, container debugx-1a2b")
    assert warning is not None and warning.startswith("the kernel dropped 1 packet that matched the filter: it is ")


def test_capture_summary_before_tcpdump_counted(capsys):
    record = capture.summary_record({}, 1, 100, "-", 0.5, "baseline", "app", "debugx-9", "eth0", "--max-size")
    assert emitted("capture", record, capsys)["packetsCaptured"] is None
    assert capture.summary_text({}, record) == (
        "1 packet (100 bytes) written to -; stopped at --max-size; 0.5s; profile baseline, container debugx-9", None)


def test_trace_summary(capsys):
    selection = Selection((Proc(7, 1, "nginx", "nginx: worker"), Proc(8, 1, "nginx", "nginx: worker")), "name")
    record = trace.summary_record(selection.pids, [7, 8, 31], 40, 4000, "t.trace", 2.0, "general", "nginx",
                                  "debugx-1a2b", None)
    assert emitted("trace", record, capsys, 130) == {
        "command": "trace", "namespace": "shop", "pod": "web", "container": "nginx", "debugContainer": "debugx-1a2b",
        "profile": "general", "output": "t.trace", "durationSeconds": 2.0, "stoppedBy": None, "exitCode": 130,
        "target": None, "pods": None,
        "pids": [7, 8], "traced": [7, 8], "followed": 1, "linesWritten": 40, "bytesWritten": 4000,
    }
    assert trace.summary_text(Selection((Proc(7, 1, "a", "a"),), "pid"), [7], 1, 1, "-", 1.0, "", "general", "d") == (
        "1 process traced (PID 7); 1 line (1 byte) written to -; 1.0s; profile general, container d")


def test_nodelogs_summary(capsys):
    target = LogTarget("shop", "web", "node-1", "u1")
    opts = NodeLogsOptions(pod="web", output_dir="out", via="pod")
    instance = {"restart": 0, "containerID": None, "decoded": "nginx_0.txt", "lines": 3, "stderrLines": 1,
                "unterminatedLines": 0, "malformedLines": 0, "linesBeforeSince": 2,
                "files": [{"path": "node-1/x/nginx/0.log", "size": 10, "records": 5, "note": "", "error": ""}]}
    containers = [{"name": "nginx", "instances": [instance], "skipped": []}]
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    record = report.summary_record(target, "u1", "pod", "debugx-nodelogs-x", opts, since, 1, 10, containers, [],
                                   4.56789)
    assert emitted("nodelogs", record, capsys) == {
        "command": "nodelogs", "namespace": "shop", "pod": "web", "container": "nginx", "debugContainer": None,
        "profile": "baseline", "output": "out", "durationSeconds": 4.568, "stoppedBy": None, "exitCode": 0,
        "target": None, "pods": None,
        "node": "node-1", "uid": "u1", "static": False, "via": "pod", "nodePod": "debugx-nodelogs-x", "raw": False,
        "since": "2026-01-02T03:04:05+00:00", "filesWritten": 1, "bytesWritten": 10, "containers": containers,
        "skipped": [], "linesWritten": None, "reconnects": None,
    }


@pytest.mark.parametrize("command", summary.COMMANDS)
def test_shared_keys_are_the_same_in_every_command(command):
    assert list(summary.keys(command))[:len(summary.SHARED)] == list(summary.SHARED)
    assert summary.new(command) == {**dict.fromkeys(summary.keys(command)), "command": command}
    assert all(key[0].islower() and "_" not in key and " " not in key for key in summary.keys(command))


def test_record_refuses_a_key_outside_the_schema():
    talk = Talk(json_summary=True, command="capture")
    with pytest.raises(ValueError, match="dropped_by_kernel"):
        talk.record(dropped_by_kernel=0)
    talk.record(error="x")  # the failure's message is in every schema


def test_check_names_what_does_not_fit():
    bad = {**summary.new("trace"), "linesWritten": "3", "stoppedBy": "Ctrl-C", "extra": 1}
    del bad["pids"]
    assert summary.check("trace", bad) == [
        "unknown key 'extra'", "missing key 'pids'", "linesWritten: str is not int/NoneType",
        "stoppedBy: 'Ctrl-C' is not one of SIGINT, SIGTERM, --duration, --max-size, reader-gone"]


@pytest.mark.parametrize(("reason", "limit", "expected"), [
    ("", "--max-size", None), ("duration", "reader-gone", "--duration"), ("limit", "--max-size", "--max-size"),
    ("limit", "reader-gone", "reader-gone"), ("SIGINT", "", "SIGINT"), ("SIGTERM", "", "SIGTERM")])
def test_stopped_by(reason, limit, expected):
    assert summary.stopped_by(reason, limit) == expected


def test_plurals():
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "process", "processes") == "1 process" and plural(3, "process", "processes") == "3 processes"
