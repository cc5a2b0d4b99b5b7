"""`./build.sh demo`: try kubectl-debugx without a cluster of your own.

Starts the test cluster (tests/cluster: a local API server and a kubelet running pods as real processes in
Linux namespaces, hence root), creates an nginx pod, runs capture, trace and nodelogs against it while some
HTTP requests hit nginx, prints where the results are, and stops the cluster. The results stay.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "debugx-demo"
POD = "web"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def traffic(env: dict[str, str], seconds: float, stop: threading.Event) -> None:
    """HTTP requests to nginx from inside the pod (loopback): something for tcpdump and strace to see."""
    script = f"end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ]; do " \
             "curl -s -o /dev/null http://127.0.0.1/ || wget -q -O /dev/null http://127.0.0.1/; sleep 0.3; done"
    while not stop.is_set():
        subprocess.run(["kubectl", "exec", "-n", NAMESPACE, POD, "--", "sh", "-c", script], env=env,
                       capture_output=True, timeout=seconds + 30)
        stop.wait(0.5)


def run_with_traffic(cmd: list[str], env: dict[str, str], seconds: float) -> subprocess.CompletedProcess[str]:
    print("$ kubectl-debugx " + " ".join(cmd[1:]), flush=True)
    stop = threading.Event()
    thread = threading.Thread(target=traffic, args=(env, seconds, stop), daemon=True)
    if seconds:
        thread.start()
    try:
        result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, timeout=300)
    finally:
        stop.set()
        if seconds:
            thread.join(timeout=60)
    summary = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
    if summary:
        try:
            print("summary: " + json.dumps(json.loads(summary[0]), indent=None)[:600])
        except ValueError:
            print(result.stdout[-600:])
    print(f"exit status {result.returncode}", flush=True)
    return result


def main(argv: list[str]) -> int:
    exe = str(Path(argv[0] if argv else ROOT / "dist" / "kubectl-debugx").resolve())
    if os.geteuid() != 0:
        print("./build.sh demo needs root: the test cluster runs each pod as real processes in Linux namespaces\n"
              "(network namespace, veth, mounts). Run: sudo ./build.sh demo", file=sys.stderr)
        return 1
    if not shutil.which("kubectl"):
        print("./build.sh demo needs kubectl on PATH", file=sys.stderr)
        return 1
    out = Path(tempfile.mkdtemp(prefix="debugx-demo-"))
    say("starting the test cluster (python -m tests.cluster)")
    cluster = subprocess.Popen([sys.executable, "-m", "tests.cluster"], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert cluster.stdout is not None
    kubeconfig = cluster.stdout.readline().strip()
    if not kubeconfig:
        print("the test cluster did not start", file=sys.stderr)
        return 1
    env = dict(os.environ, KUBECONFIG=kubeconfig, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ['PATH']}")
    status = 0
    try:
        print(f"kubeconfig: {kubeconfig}")
        kubectl = ["kubectl"]
        subprocess.run([*kubectl, "create", "namespace", NAMESPACE], env=env, check=True, capture_output=True)
        subprocess.run([*kubectl, "run", POD, "-n", NAMESPACE, "--image=nginx:1.27", "--restart=Never"], env=env,
                       check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "-n", NAMESPACE, "--for=condition=Ready", f"pod/{POD}",
                        "--timeout=120s"], env=env, check=True, capture_output=True)
        print(subprocess.run([*kubectl, "get", "pod", "-n", NAMESPACE, "-o", "wide"], env=env, text=True,
                             capture_output=True).stdout)

        say("capture: tcpdump in an ephemeral container sharing the pod's network, 6 s")
        pcap = out / f"{POD}.pcap"
        r1 = run_with_traffic([exe, "capture", POD, "-n", NAMESPACE, "--duration", "6s", "-o", str(pcap),
                               "--summary", "json"], env, 6)
        if shutil.which("tcpdump") and pcap.exists():
            head = subprocess.run(["tcpdump", "-nr", str(pcap), "-c", "5"], capture_output=True, text=True)
            print(head.stdout)

        say("trace: strace nginx's worker processes from an ephemeral container in the pod's PID namespace, 5 s")
        strace = out / f"{POD}.strace"
        r2 = run_with_traffic([exe, "trace", POD, "-n", NAMESPACE, "--process", "worker", "--duration", "5s",
                               "-o", str(strace), "--summary", "json"], env, 5)
        if strace.exists():
            lines = strace.read_text(errors="replace").splitlines(keepends=True)
            picked = [line for line in lines if any(k in line for k in ("accept4", "recvfrom", "writev"))][:6]
            print("".join(picked or lines[:6]))

        say("nodelogs: the pod's log files as the node keeps them, decoded")
        logs = out / f"nodelogs-{POD}"
        r3 = run_with_traffic([exe, "nodelogs", POD, "-n", NAMESPACE, "-o", str(logs), "--summary", "json"],
                              env, 0)
        if r3.returncode != 0:
            print("(that failed; once more through a short-lived node pod instead of the node proxy)")
            shutil.rmtree(logs, ignore_errors=True)
            r3 = run_with_traffic([exe, "nodelogs", POD, "-n", NAMESPACE, "--via", "pod", "-o", str(logs),
                                   "--summary", "json"], env, 0)
        status = max(r1.returncode, r2.returncode, r3.returncode)

        say(f"results in {out}")
        for path in sorted(out.rglob("*")):
            if path.is_file():
                print(f"  {path.stat().st_size:>10}  {path}")
        print(f"\nOpen the capture with: wireshark {pcap}   (or tcpdump -nr {pcap})")
    finally:
        subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=false"], env=env, capture_output=True)
        cluster.send_signal(signal.SIGINT)
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill()
        print("test cluster stopped", flush=True)
    return status


if __name__ == "__main__":
    start = time.monotonic()
    code = main(sys.argv[1:])
    print(f"demo took {time.monotonic() - start:.0f} s; exit status {code}")
    sys.exit(code)
