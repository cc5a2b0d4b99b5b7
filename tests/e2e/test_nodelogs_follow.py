"""nodelogs --follow, end to end: the built executable follows a pod's containers live through the node proxy.
A writer prints numbered lines on stdout and stderr; every test checks that each number comes out exactly once,
in order, under the right prefix. The rotations and the API server outage are the test cluster's switches: on
a real cluster only those steps are left out, the checks stay."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import dockermode

from .helpers import debugx, node_runtime, start_debugx, wait_for_line, wait_until

pytestmark = pytest.mark.e2e

LONG = 40000  # more than two of containerd's 16384-byte records: P, P, F

# Instance n of the container prints "iN out K" (K = 1..2*HALF) and every 5th K also "iN err K" on stderr,
# with a LONG-byte line after the first half; between the halves it waits for /state/goN, so that the test
# can act (rotate, cut the connection) while lines are still to come. The first instance then exits 3 (the
# kubelet restarts it), the second sleeps.
WRITER = r"""
n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
lines() {
  k=$1
  while [ $k -le $2 ]; do
    echo "i$n out $k"
    if [ $((k % 5)) = 0 ]; then echo "i$n err $k" >&2; fi
    k=$((k+1))
    sleep 0.005
  done
}
lines 1 HALF
printf 'i%s long ' $n; head -c LONG /dev/zero | tr '\0' x; echo
while [ ! -e /state/go$n ]; do sleep 0.1; done
lines $((HALF+1)) $((2*HALF))
if [ $n = 1 ]; then exit 3; fi
exec sleep 3600
"""
HALF = 100
SIDE = "i=1; while [ $i -le 50 ]; do echo side $i; i=$((i+1)); done; exec sleep 3600"


def writer_script(half: int = HALF) -> str:
    return WRITER.replace("HALF", str(half)).replace("LONG", str(LONG))


@pytest.fixture
def writer(e2e: Any, namespace: str, make_pod: Any) -> tuple[str, str]:
    make_pod(namespace, "writer", image=e2e.image,
             containers=[{"name": "writer", "image": e2e.image, "command": ["sh", "-c", writer_script()],
                          "volumeMounts": [{"name": "state", "mountPath": "/state"}]},
                         {"name": "side", "image": e2e.image, "command": ["sh", "-c", SIDE]}],
             volumes=[{"name": "state", "emptyDir": {}}])
    return namespace, "writer"


def go(e2e: Any, namespace: str, instance: int) -> None:
    e2e.kubectl("exec", "-n", namespace, "writer", "-c", "writer", "--", "touch", f"/state/go{instance}")


def printed(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "replace").splitlines()


def by_prefix(lines: list[str]) -> dict[str, list[str]]:
    """Lines grouped by their prefix (the first field), text only."""
    out: dict[str, list[str]] = {}
    for line in lines:
        prefix, _, text = line.partition(" ")
        out.setdefault(prefix, []).append(text.lstrip(" "))
    return out


def expected(instance: int, first: int = 1, last: int = 2 * HALF) -> list[str]:
    """The writer's lines of one instance in the order of each stream (stdout, stderr apart)."""
    return [f"i{instance} out {k}" for k in range(first, last + 1)]


def streams(texts: list[str], instance: int) -> tuple[list[str], list[str], list[str]]:
    """(stdout numbered lines, stderr lines, long lines) of one instance's texts, each in printed order."""
    out = [t for t in texts if t.startswith(f"i{instance} out ")]
    err = [t for t in texts if t.startswith(f"i{instance} err ")]
    long = [t for t in texts if t.startswith(f"i{instance} long ")]
    assert len(out) + len(err) + len(long) == len(texts), texts
    return out, err, long


def check_instance(texts: list[str], instance: int) -> None:
    out, err, long = streams(texts, instance)
    assert out == expected(instance)  # every number once, in order
    assert err == [f"i{instance} err {k}" for k in range(5, 2 * HALF + 1, 5)]
    assert long == [f"i{instance} long " + "x" * LONG]  # three CRI records, one line


@pytest.fixture
def follow(e2e: Any, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, Path]:
        path = tmp_path / f"stdout{len(procs)}"
        proc = start_debugx(e2e, "nodelogs", "--follow", *args, stdout=path.open("wb"))
        procs.append(proc)
        wait_for_line(proc, "Following ")
        return proc, path

    yield start
    for proc in procs:  # a failed test must not leave a follower running
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


def test_every_line_once_through_rotations_a_long_line_and_a_restart(e2e, writer, follow):
    namespace, pod = writer
    wait_until(lambda: "i1 out 50" in e2e.kubectl("logs", "-n", namespace, pod, "-c", "writer").stdout,
               "the writer's first lines")
    proc, path = follow(pod, "-n", namespace, "--all-containers", "--tail", "-1")
    wait_until(lambda: any(" i1 long " in line for line in printed(path)), "the long line followed")
    if e2e.cluster is not None:
        e2e.cluster.rotate_logs(namespace, pod, "writer")  # 0.log -> 0.log.STAMP, a new 0.log
    go(e2e, namespace, 1)
    wait_until(lambda: any(line.startswith("writer/writer#1 ") and line.endswith(" i2 long " + "x" * LONG)
                           for line in printed(path)), "the second instance followed")
    if e2e.cluster is not None:
        e2e.cluster.rotate_logs(namespace, pod, "writer")  # 1.log this time
    go(e2e, namespace, 2)
    wait_until(lambda: {f"i2 out {2 * HALF}", f"i2 err {2 * HALF}"} <= set(by_prefix(printed(path)).get(
        "writer/writer#1", [])), "the last lines of the second instance")
    code, err = stop(proc)
    assert code == 130, err
    assert "Stopped (SIGINT)" in err, err
    lines = printed(path)
    groups = by_prefix(lines)
    assert sorted(groups) == ["writer/side", "writer/writer", "writer/writer#1"], groups.keys()
    assert groups["writer/side"] == [f"side {i}" for i in range(1, 51)]
    check_instance(groups["writer/writer"], 1)
    check_instance(groups["writer/writer#1"], 2)
    # stern's alignment: the text starts in the same column on every line (the longest prefix + a space)
    assert {len(line) - len(line.split(" ", 1)[1].lstrip(" ")) for line in lines} == {len("writer/writer#1 ")}


def test_a_lost_connection_resumes_without_repeating_or_skipping(e2e, writer, follow):
    namespace, pod = writer
    wait_until(lambda: "i1 out 20" in e2e.kubectl("logs", "-n", namespace, pod, "-c", "writer").stdout,
               "the writer's first lines")
    proc, path = follow(pod, "-n", namespace, "--tail", "-1", "--timestamps")
    if e2e.cluster is not None:
        uid = e2e.api().read_namespaced_pod(pod, namespace).metadata.uid
        live = e2e.cluster.node_root / "var/log/pods" / f"{namespace}_{pod}_{uid}" / "writer" / "0.log"
        live = dockermode.resolve_link(e2e.cluster.node_root, live)  # Docker mode: N.log links into the node root
        e2e.cluster.stop_apiserver()  # every connection closed; the writer goes on on the node
        try:
            wait_for_line(proc, "Lost the connection")
            # CRI "... F i1 long xx", json-file {"log":"i1 long xx": either way on the node
            wait_until(lambda: b"i1 long " in live.read_bytes(), "lines written during the outage")
        finally:
            e2e.cluster.start_apiserver()
        wait_for_line(proc, "Reconnected after ")
    go(e2e, namespace, 1)
    wait_until(lambda: f"i1 err {2 * HALF}" in path.read_text() and f"i1 out {2 * HALF}" in path.read_text(),
               "the first instance's last lines")
    code, err = stop(proc, signal.SIGTERM)
    assert code == 143, err
    texts = by_prefix(printed(path))["writer/writer"]
    # --timestamps: the decoded files' format, the stderr mark after the timestamp
    stamped = [re.fullmatch(r"\S+Z (\[stderr\] )?(.*)", t) for t in texts]
    assert all(stamped), texts[:5]
    assert all(bool(m.group(1)) == (" err " in m.group(2)) for m in stamped if m)
    check_instance([m.group(2) for m in stamped if m], 1)


def test_tail_and_duration(e2e, namespace, make_pod, follow):
    make_pod(namespace, "quiet", image=e2e.image,
             command=["sh", "-c", "i=1; while [ $i -le 20 ]; do echo line $i; i=$((i+1)); done; exec sleep 3600"])
    wait_until(lambda: "line 20" in e2e.kubectl("logs", "-n", namespace, "quiet").stdout, "the lines")
    proc, path = follow("quiet", "-n", namespace, "--tail", "3", "--duration", "2s")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    # room for "#1" after the prefix, should the container restart
    assert printed(path) == ["quiet/main   line 18", "quiet/main   line 19", "quiet/main   line 20"]


def ticker_deployment(e2e: Any, namespace: str) -> Callable[[], list[str] | None]:
    """Deployment ticker (2 replicas, each printing `tick N` every 0.1 s); returns a probe giving the names of
    its 2 Running pods not being deleted (None until there are exactly 2)."""
    ticker = "i=1; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ticker"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ticker"}},
                 "template": {"metadata": {"labels": {"app": "ticker"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "main", "image": e2e.image,
                                                       "command": ["sh", "-c", ticker]}]}}},
    }
    e2e.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(deployment))

    def running() -> list[str] | None:
        pods = e2e.api().list_namespaced_pod(namespace, label_selector="app=ticker").items
        names = sorted(p.metadata.name for p in pods
                       if p.status.phase == "Running" and not p.metadata.deletion_timestamp)
        return names if len(names) == 2 else None

    return running


def ticks(groups: dict[str, list[str]], pod: str) -> list[int]:
    """The N of each `tick N` printed under POD/main."""
    return [int(text.split()[1]) for text in groups[f"{pod}/main"]]


def wait_for_ticks(path: Path, pods: list[str], n: int) -> None:
    wait_until(lambda: all(len(by_prefix(printed(path)).get(f"{pod}/main", [])) >= n for pod in pods),
               f"{n} lines of each of {', '.join(pods)}")


def test_a_deployment_every_replica_followed_and_nothing_left(e2e, namespace, follow):
    """deploy/NAME: the running replicas resolved at the start, each line under its pod's prefix, every number
    once and in order; Ctrl-C leaves nothing in the cluster (the node proxy creates nothing)."""
    running = ticker_deployment(e2e, namespace)
    pods = wait_until(running, "2 Running replicas")
    proc, path = follow("deploy/ticker", "-n", namespace, "--tail", "-1")
    wait_for_ticks(path, pods, 30)
    code, err = stop(proc)
    assert code == 130, err
    groups = by_prefix(printed(path))
    assert sorted(groups) == [f"{pod}/main" for pod in pods]
    for pod in pods:
        numbers = ticks(groups, pod)
        assert numbers == list(range(1, len(numbers) + 1)), pod
    managed = e2e.kubectl("get", "pods", "-A", "-l", "app.kubernetes.io/managed-by=kubectl-debugx", "-o", "name")
    assert managed.stdout.strip() == ""


def test_a_rollout_the_new_pods_join_from_their_first_line(e2e, namespace, follow):
    """deploy/NAME --follow through `kubectl rollout restart` (the real kubectl): the pods the rollout creates
    are followed as they start running, each from its first line (nothing it wrote before we saw it is
    missed), under its own prefix; the old pods' lines end when they go."""
    running = ticker_deployment(e2e, namespace)
    old = wait_until(running, "2 Running replicas")
    proc, path = follow("deploy/ticker", "-n", namespace)
    e2e.kubectl("rollout", "restart", "deploy/ticker", "-n", namespace)
    new = wait_until(lambda: (lambda now: now if now and not set(now) & set(old) else None)(running()),
                     "the rollout: 2 new Running replicas, the old ones gone", timeout=180)
    wait_for_ticks(path, new, 20)
    code, err = stop(proc)
    assert code == 130, err
    groups = by_prefix(printed(path))
    for pod in new:
        numbers = ticks(groups, pod)
        assert numbers == list(range(1, len(numbers) + 1)), pod  # from its first line, none twice, none missed
        assert f"Pod {pod} is running: following main" in err, err
    for pod in old:  # --tail 10 at the start, then every line until the pod went
        numbers = ticks(groups, pod)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), pod


def test_a_closed_stdout_ends_it_cleanly(e2e, namespace, make_pod):
    """`| head`: the reader goes away, the follow ends with exit 0 and a line saying why, no traceback."""
    make_pod(namespace, "chatty", image=e2e.image,
             command=["sh", "-c", "i=1; while true; do echo chat $i; i=$((i+1)); sleep 0.05; done"])
    wait_until(lambda: "chat 20" in e2e.kubectl("logs", "-n", namespace, "chatty").stdout, "the first lines")
    proc = start_debugx(e2e, "nodelogs", "chatty", "-n", namespace, "-f", "--tail", "-1", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # as head does after its lines
    _, err = proc.communicate(timeout=30)
    assert [line.decode().split() for line in first] == [["chatty/main", "chat", str(i)] for i in (1, 2, 3)]
    assert proc.returncode == 0, err.decode()
    assert err.decode().splitlines()[-1].startswith("Stopped (stdout was closed) after "), err.decode()


def test_without_nodes_proxy_one_line_and_exit_4(e2e, nginx_pod):
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--follow", context=e2e.limited_context)
    err = res.stderr.decode()
    assert res.returncode == 4, err
    assert res.stdout == b""
    assert err.splitlines()[-1] == (
        "error: --follow reads through the node proxy and needs get on nodes/proxy (cluster-wide), which is not "
        "allowed; without --follow, nodelogs can copy the files through a node pod"), err


# ------------------------------------------------------------------------------------------------ Docker
# On Docker nodes (cri-dockerd) Docker rotates the json-file itself at max-size (1m, max-file 3 on the lab and
# in the test cluster's Docker mode) outside /var/log (recordings 30-docker-c15); --follow lost every line
# after the first rotation (30-docker-e08: 6100/10000; e09: 6095/20000 and a malformed fragment). With
# --via pod a node pod reads the rotated files. A json-file line is 71 bytes + "tock NNNNNNN " + the padding;
# the writer waits for /state/go, prints FIRST..RESTART, exits 3, and its second instance prints the rest,
# paced at 2000 lines/s at most (a rotation every 2 s or more: never two between polls).
TICKER = r"""
n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
while [ ! -e /state/go ]; do sleep 0.1; done
if [ $n = 1 ]; then k=1; last=RESTART; else k=$((RESTART+1)); last=TOTAL; fi
pad=$(head -c PAD /dev/zero | tr '\0' 0)
while [ $k -le $last ]; do
  printf 'tock %07d %s\n' $k $pad
  if [ $((k % 100)) = 0 ]; then sleep 0.05; fi
  k=$((k+1))
done
if [ $n = 1 ]; then exit 3; fi
exec sleep 3600
"""
DOCKER_TOTAL = 20000


@pytest.mark.parametrize(("pad", "restart_at", "rotations"), [
    (40, 12000, 1),  # 124-byte lines: 12000 (1.49 MB) rotate once, the second instance's 8000 (0.99 MB) not
    (140, 16000, 3),  # 224-byte lines: 16000 (3.58 MB) rotate three times (the first file deleted), 4000 not
], ids=["one-rotation", "three-rotations"])
def test_docker_rotations_and_a_restart_every_line_once(e2e, namespace, make_pod, follow, pad, restart_at,
                                                        rotations):
    runtime = node_runtime(e2e)
    if not runtime.startswith("docker://"):
        pytest.skip(f"the node's runtime is {runtime or 'unknown'}, not Docker (DEBUGX_TEST_RUNTIME=docker)")
    script = TICKER.replace("RESTART", str(restart_at)).replace("TOTAL", str(DOCKER_TOTAL)).replace("PAD", str(pad))
    make_pod(namespace, "ticker", image=e2e.image,
             containers=[{"name": "app", "image": e2e.image, "command": ["sh", "-c", script],
                          "volumeMounts": [{"name": "state", "mountPath": "/state"}]}],
             volumes=[{"name": "state", "emptyDir": {}}])
    proc, path = follow("ticker", "-n", namespace, "--via", "pod", "--tail", "-1")
    e2e.kubectl("exec", "-n", namespace, "ticker", "-c", "app", "--", "touch", "/state/go")
    last = f"tock {DOCKER_TOTAL:07d} "
    wait_until(lambda: any(last in line for line in printed(path)), f"line {DOCKER_TOTAL} followed", timeout=180)
    code, err = stop(proc)
    assert code == 130, err
    lines = printed(path)
    groups = by_prefix(lines)
    assert sorted(groups) == ["ticker/app", "ticker/app#1"], (sorted(groups), err)
    numbers = {prefix: [int(t.split()[1]) for t in texts if t.startswith("tock ")] for prefix, texts in groups.items()}
    others = [t for texts in groups.values() for t in texts if not t.startswith("tock ")]
    assert others == [], others[:3]  # no malformed fragment, nothing else
    assert numbers["ticker/app"] == list(range(1, restart_at + 1)), (len(numbers["ticker/app"]), err)
    assert numbers["ticker/app#1"] == list(range(restart_at + 1, DOCKER_TOTAL + 1)), err
    assert "lines may be missing" not in err and "missing here" not in err, err
    assert "Deleted node pod" in err, err  # the node pod that read Docker's rotated files is gone
    if e2e.cluster is not None:  # the rotations happened: Docker keeps max-file 3 (the live file and 2 rotated)
        cid = e2e.kubectl("get", "pod", "-n", namespace, "ticker", "-o", "jsonpath={.status.containerStatuses[0]"
                          ".lastState.terminated.containerID}").stdout.split("://")[-1]
        kept = sorted(p.name for p in (e2e.cluster.node_root / "var/lib/docker/containers" / cid).glob("*-json.log.*"))
        assert kept == [f"{cid}-json.log.{i}" for i in range(1, min(rotations, 2) + 1)], kept
