"""capture --wireshark / --tshark / --linktype and the progress line, end to end: the built executable with
a stand-in viewer first on PATH (it records its argv, saves what it reads and exits when told), checked with
tshark and the API."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import (
    debugx,
    debugx_containers,
    ephemeral_names,
    processes,
    start_debugx,
    tshark_count,
    tshark_fields,
    wait_for_line,
    wait_until,
)
from .test_workloads import (  # noqa: F401 (deployment: a fixture)
    REPLICAS,
    deployment,
    no_tool_left,
    packets_by_interface,
    request,
    wait_for_lines,
)

pytestmark = pytest.mark.e2e
LISTENING = "listening on"
PORT_80 = ("-f", "tcp port 80")

# A viewer that reads a pcap or pcapng stream on stdin record (block) by record, saves the whole ones it read (so
# the file is valid whenever it stops) to stream.pcap, and exits after LIMIT packets (0: at EOF) or on SIGTERM
# from the test. pcapng as kubectl-debugx writes it: little-endian blocks.
STAND_IN = """#!{python}
import json, os, signal, struct, sys
out, limit = {out!r}, {limit}
json.dump(sys.argv, open(os.path.join(out, "argv.json"), "w"))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(os.path.join(out, "pid"), "w") as f:
    f.write(str(os.getpid()))
stream, source = open(os.path.join(out, "stream.pcap"), "wb", buffering=0), sys.stdin.buffer
first = source.read(24)
pcapng = first[:4] == b"\\x0a\\x0d\\x0d\\x0a"
packets = 0
if pcapng:
    kind, total = struct.unpack("<II", first[:8])
    stream.write(first + source.read(total - 24))
else:
    stream.write(first)
while not limit or packets < limit:
    head = source.read(8 if pcapng else 16)
    if len(head) < (8 if pcapng else 16):
        break
    if pcapng:
        kind, total = struct.unpack("<II", head)
        stream.write(head + source.read(total - 8))
        packets += kind == 6
    else:
        stream.write(head + source.read(struct.unpack("<I", head[8:12])[0]))
        packets += 1
"""


def stand_in(tmp_path: Path, name: str, limit: int = 0) -> tuple[Path, Path]:
    """(the program, the folder where it leaves argv.json, pid and stream.pcap)."""
    bin_dir, out = tmp_path / "bin", tmp_path / "viewer"
    bin_dir.mkdir(exist_ok=True)
    out.mkdir()
    program = bin_dir / name
    program.write_text(STAND_IN.format(python=sys.executable, out=str(out), limit=limit))
    program.chmod(0o755)
    return program, out


def path_first(directory: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}"}


def test_wireshark_gets_the_live_stream_and_closing_it_stops_the_capture(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    program, out = stand_in(tmp_path, "wireshark", limit=5)
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "--wireshark", *PORT_80, "--summary", "json",
                        stdout=subprocess.PIPE, env=path_first(program.parent))
    wait_for_line(proc, LISTENING)
    e2e.kubectl("exec", "-n", namespace, pod, "-c", traffic, "--", "curl", "-s", "-o", "/dev/null",
                "http://127.0.0.1/ws")  # about 10 packets: the viewer closes after 5
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads((out / "argv.json").read_text()) == [str(program), "-k", "-i", "-"]
    assert tshark_count(str(out / "stream.pcap")) == 5  # a valid stream, every packet it read whole
    summary = json.loads(stdout)
    assert (summary["output"], summary["stoppedBy"], summary["exitCode"]) == ("wireshark", "reader-gone", 0)
    assert summary["packetsWritten"] >= 5
    assert "tcpdump" not in processes(e2e, namespace, pod, summary["debugContainer"])


def test_tshark_named_by_the_environment_sees_every_request_until_it_is_closed(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    program, out = stand_in(tmp_path, "my-tshark")
    env = {**os.environ, "KUBECTL_DEBUGX_TSHARK": str(program)}
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "--tshark", *PORT_80, env=env)
    wait_for_line(proc, LISTENING)
    uris = [f"/tshark-{i}" for i in range(3)]
    for uri in uris:
        e2e.kubectl("exec", "-n", namespace, pod, "-c", traffic, "--", "curl", "-s", "-o", "/dev/null",
                    f"http://127.0.0.1{uri}")
    stream = out / "stream.pcap"
    # the stand-in writes whole records only, so the file can be read at any time
    wait_until(lambda: stream.exists() and tshark_fields(str(stream), "http.request", "http.request.uri") == uris,
               "the 3 requests at the viewer")
    os.kill(int((out / "pid").read_text()), signal.SIGTERM)  # the user closes it
    stderr = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 0, stderr
    assert json.loads((out / "argv.json").read_text()) == [str(program), "-l", "-i", "-"]
    assert tshark_fields(str(stream), "http.request", "http.request.uri") == uris
    for ec in debugx_containers(e2e, namespace, pod):
        assert "tcpdump" not in processes(e2e, namespace, pod, ec)


def test_wireshark_on_a_deployment_gets_one_pcapng_of_every_pod_until_it_is_closed(e2e, deployment,  # noqa: F811
                                                                                  tmp_path: Path):
    """A workload: the merged pcapng goes to the viewer (an interface per pod, each request on its pod's), the
    progress line counts the pods, and closing the viewer stops every tcpdump with exit 0."""
    namespace, pods = deployment
    program, out = stand_in(tmp_path, "wireshark")
    proc = start_debugx(e2e, "capture", "deploy/web", "-n", namespace, "--wireshark", *PORT_80, "--summary", "json",
                        stdout=subprocess.PIPE, env=path_first(program.parent))
    wait_for_lines(proc, LISTENING, REPLICAS)
    for name, ip in pods.items():
        request(e2e, namespace, ip, f"/to-{name}")
    stream = out / "stream.pcap"
    expected = {f"{namespace}/{name}": [f"/to-{name}"] for name in pods}
    wait_until(lambda: stream.exists() and packets_by_interface(stream) == expected,
               "each request on its pod's interface")
    os.kill(int((out / "pid").read_text()), signal.SIGTERM)  # the user closes Wireshark
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads((out / "argv.json").read_text()) == [str(program), "-k", "-i", "-"]
    assert stream.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng, and tshark reads it whole:
    assert packets_by_interface(stream) == expected
    summary = json.loads(stdout)
    assert (summary["output"], summary["stoppedBy"], summary["exitCode"]) == ("wireshark", "reader-gone", 0)
    assert f", {REPLICAS} pods" in stderr.decode().split("Captured: ")[1].splitlines()[0], stderr
    no_tool_left(e2e, namespace, "tcpdump")


def test_real_tshark_prints_the_packets_and_ends_with_the_capture(e2e, web):
    namespace, pod, traffic = web
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "--tshark", "--count", "4", *PORT_80,
                        stdout=subprocess.PIPE)
    wait_for_line(proc, LISTENING)
    e2e.kubectl("exec", "-n", namespace, pod, "-c", traffic, "--", "curl", "-s", "-o", "/dev/null",
                "http://127.0.0.1/")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = stdout.decode().splitlines()
    assert len(lines) == 4 and all("TCP" in x or "HTTP" in x for x in lines), lines


def test_linktype_sll_gives_linux_cooked_v1(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "sll.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-i", "any", "--linktype", "sll", "--count", "6",
                        *PORT_80, "-o", str(out))
    wait_for_line(proc, LISTENING)
    e2e.kubectl("exec", "-n", namespace, pod, "-c", traffic, "--", "curl", "-s", "-o", "/dev/null",
                "http://127.0.0.1/sll")
    assert proc.wait(timeout=60) == 0
    assert struct.unpack("<I", out.read_bytes()[20:24]) == (113,)  # LINUX_SLL in the pcap header
    encaps = tshark_fields(str(out), "frame", "frame.encap_type")
    assert encaps == ["25"] * 6  # Wireshark's WTAP_ENCAP_SLL, "Linux cooked-mode capture v1"
    capinfos = subprocess.run(["capinfos", "-E", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Linux cooked-mode capture v1" in capinfos


def test_progress_lines_on_a_non_terminal_and_none_with_quiet(e2e, web, tmp_path: Path):
    namespace, pod, _ = web
    shown = debugx(e2e, "capture", pod, "-n", namespace, "--duration", "3s", "-o", str(tmp_path / "a.pcap"))
    assert shown.returncode == 0, shown.stderr
    lines = [x for x in shown.stderr.decode().splitlines() if x.startswith("Captured: ")]
    assert lines and all(x.endswith("/s") and "packet" in x for x in lines), shown.stderr
    assert b"\r" not in shown.stderr
    quiet = debugx(e2e, "capture", pod, "-n", namespace, "--duration", "3s", "-q", "-o", str(tmp_path / "b.pcap"))
    assert quiet.returncode == 0, quiet.stderr
    assert b"Captured: " not in quiet.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--linktype", "sll", "-i", "eth0"], "error: --linktype sll: LINUX_SLL exists only on -i any"),
        (["--linktype", "EN10MB"], "error: --linktype EN10MB: interface any gives only Linux cooked headers"),
        (["--wireshark", "-o", "{tmp}/x.pcap"], "error: --wireshark and -o/--output cannot be combined"),
        (["--wireshark", "--tshark"], "error: --wireshark and --tshark cannot be combined"),
        (["--wireshark"], "error: --wireshark: wireshark not found on PATH: install it (Debian/Ubuntu: apt "
                          "install wireshark; macOS: brew install --cask wireshark)"),
        (["--tshark"], "error: --tshark: $KUBECTL_DEBUGX_TSHARK names '/nonexistent/tshark', which is not"),
    ],
)
def test_refused_before_anything_is_created(e2e, nginx_pod, tmp_path, args, message):
    namespace, pod = nginx_pod
    before = ephemeral_names(e2e, namespace, pod)
    # no wireshark on PATH: only the Python the launcher needs
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare), "KUBECTL_DEBUGX_TSHARK": "/nonexistent/tshark"}
    result = debugx(e2e, "capture", pod, "-n", namespace, *[a.format(tmp=tmp_path) for a in args], env=env,
                    cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith(message) and stderr.count("\n") == 1, stderr
    assert ephemeral_names(e2e, namespace, pod) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare"]
