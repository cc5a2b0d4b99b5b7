"""capture loses nothing with its default options: a known number of HTTP requests goes into the pod, and the
pcap must hold every request and every response, with tcpdump reporting 0 dropped by kernel.

The traffic comes from a container of the test's own in the pod (curl to nginx on 127.0.0.1), so the same
tests run unchanged on a real cluster. Each capture is stopped the way a user stops it (Ctrl-C right after
the traffic): what happened before the stop must be in the file."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from .helpers import curl, start_debugx, tshark_fields, wait_for_line

pytestmark = pytest.mark.e2e
LISTENING = "listening on"


def low_rate(e2e, namespace: str, pod: str, container: str, tag: str, n: int = 15) -> list[str]:
    """n requests on new connections, 0.2 s apart (the pace of the report that found the loss)."""
    script = ('i=1; while [ "$i" -le "$1" ]; do curl -s -o /dev/null "http://127.0.0.1/$2-$i"; '
              'i=$((i+1)); sleep 0.2; done')
    e2e.kubectl("exec", "-n", namespace, pod, "-c", container, "--", "sh", "-c", script, "sh", str(n), tag)
    return [f"/{tag}-{i}" for i in range(1, n + 1)]


def burst(e2e, namespace: str, pod: str, container: str, tag: str, n: int = 500) -> list[str]:
    """n requests on one keep-alive connection, as fast as curl sends them (curl's URL ranges)."""
    e2e.kubectl("exec", "-n", namespace, pod, "-c", container, "--",
                "curl", "-s", "-o", "/dev/null", f"http://127.0.0.1/{tag}-[1-{n}]")
    return [f"/{tag}-{i}" for i in range(1, n + 1)]


def nginx_listens(e2e, namespace: str, pod: str, container: str) -> None:
    """Running is not listening (on a real node too): one request with retries before anything is counted,
    so that the counted requests never meet a refused connection."""
    curl(e2e, namespace, pod, container, "/ready")


def start_capture(e2e, namespace: str, pod: str, out: Path) -> subprocess.Popen:
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "--summary", "json",
                        stdout=subprocess.PIPE)
    wait_for_line(proc, LISTENING)
    return proc


def stop_and_check(proc: subprocess.Popen, out: Path, sent: list[str]) -> None:
    """Ctrl-C, then: every request and every response in the pcap, nothing dropped, counts that agree."""
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    tags = {uri.split("-")[0] for uri in sent}
    requests = [u for u in tshark_fields(str(out), "http.request", "http.request.uri")
                if u.split("-")[0] in tags]
    responses = [u.split("127.0.0.1", 1)[1] for u in
                 tshark_fields(str(out), "http.response", "http.response_for.uri") if "127.0.0.1/" in u]
    responses = [u for u in responses if u.split("-")[0] in tags]
    assert (sorted(requests), sorted(responses)) == (sorted(sent), sorted(sent))
    summary = json.loads(stdout)
    assert summary["droppedByKernel"] == 0, summary
    assert summary["packetsCaptured"] == summary["packetsWritten"], summary
    assert b"Warning" not in stderr, stderr


@pytest.mark.parametrize("send", [low_rate, burst], ids=["15-requests-at-0.2s", "burst-of-500"])
def test_every_request_and_response_is_in_the_pcap(e2e, web, tmp_path: Path, send):
    namespace, pod, traffic = web
    nginx_listens(e2e, namespace, pod, traffic)
    out = tmp_path / "loss.pcap"
    proc = start_capture(e2e, namespace, pod, out)
    sent = send(e2e, namespace, pod, traffic, "loss")
    stop_and_check(proc, out, sent)


def test_two_captures_of_one_pod_at_once_both_hold_everything(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    nginx_listens(e2e, namespace, pod, traffic)
    first = start_capture(e2e, namespace, pod, tmp_path / "a.pcap")
    second = start_capture(e2e, namespace, pod, tmp_path / "b.pcap")
    sent = low_rate(e2e, namespace, pod, traffic, "pair") + burst(e2e, namespace, pod, traffic, "pairburst")
    stop_and_check(first, tmp_path / "a.pcap", sent)
    stop_and_check(second, tmp_path / "b.pcap", sent)


def test_named_interface_with_a_short_snaplen_loses_nothing(e2e, web, make_pod, tmp_path: Path):
    """The options hold off `any` too: on eth0 with --snaplen 96, traffic from another pod (to the pod's IP,
    so it crosses eth0): every connection and every request segment is there, each packet cut to 96 bytes."""
    namespace, pod, traffic = web
    nginx_listens(e2e, namespace, pod, traffic)
    make_pod(namespace, "client", image=e2e.image, command=["sleep", "600"])
    ip = e2e.api().read_namespaced_pod(pod, namespace).status.pod_ip
    out = tmp_path / "eth0.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "-i", "eth0", "--snaplen", "96",
                        "--summary", "json", stdout=subprocess.PIPE)
    wait_for_line(proc, LISTENING)
    # No retries: a retried connection would be one more SYN than requests sent (nginx listens already).
    script = ('i=1; while [ "$i" -le 15 ]; do curl -s -o /dev/null "http://$1/eth-$i"; i=$((i+1)); sleep 0.2; '
              'done; curl -s -o /dev/null "http://$1/eb-[1-500]"')
    e2e.kubectl("exec", "-n", namespace, "client", "--", "sh", "-c", script, "sh", ip)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    syns = tshark_fields(str(out), "tcp.dstport == 80 && tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp.stream")
    segments = tshark_fields(str(out), "tcp.dstport == 80 && tcp.len > 0", "frame.cap_len")
    assert (len(set(syns)), len(segments)) == (16, 515)
    assert {int(n) for n in segments} == {96}
    summary = json.loads(stdout)
    assert (summary["droppedByKernel"], summary["packetsCaptured"]) == (0, summary["packetsWritten"])
