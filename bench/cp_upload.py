"""Benchmark: `kubectl debugx cp LOCAL POD:/path` versus `kubectl cp LOCAL POD:/path`, same file, same pod (nginx:
its image has tar, which kubectl cp needs), same cluster, same run.

The local file is in a memory-backed folder where there is one, so the disk is not what is measured. Each of our
runs is the built executable end to end (the destination resolved, the temporary folder, the stream, sha256sum
of the file in the container, the rename), debug container reused after the first (warm-up) run as a user's
second copy would; `--force` replaces the previous round's file. Each copy is checked afterwards by sha256sum in
the pod, untimed, and removed before the next."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.cluster import setup
from bench.cp_throughput import sha256, timed


def nginx_pod(stack: ExitStack, kubectl: list[str], namespace: str, image: str) -> None:
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    stack.callback(lambda: subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                                          capture_output=True))
    subprocess.run([*kubectl, "run", "web", "-n", namespace, f"--image={image}", "--restart=Never"], check=True,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "-n", namespace, "--for=condition=Ready", "pod/web", "--timeout=120s"],
                   check=True, capture_output=True)


def in_pod(kubectl: list[str], namespace: str, *argv: str) -> str:
    return subprocess.run([*kubectl, "exec", "-n", namespace, "web", "--", *argv], check=True,
                          capture_output=True, text=True).stdout


def main() -> int:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with ExitStack() as stack:
        found = setup(stack, "bench/cp_upload")
        if found is None:
            return 1
        zipapp, image, env, kubectl = found.zipapp, found.image, found.env, found.kubectl
        namespace = f"debugx-bench-up-{os.getpid()}"
        nginx_pod(stack, kubectl, namespace, os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27"))
        work = Path(tempfile.mkdtemp(prefix="debugx-bench-up-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                                     else None))
        stack.callback(shutil.rmtree, work, True)
        local = work / "big"
        with local.open("wb") as f:  # random bytes: nothing compresses them on the way
            for _ in range(size_mb):
                f.write(os.urandom(1000 * 1000))
        expected = sha256(local)
        ours = [str(zipapp), "cp", "--force", "-n", namespace, str(local), "web:/tmp/ours", "--image", image]
        theirs = [*kubectl, "cp", str(local), f"{namespace}/web:/tmp/theirs"]
        timed(ours, env)  # warm-up: unpacks the zipapp and creates the debug container that later runs reuse
        results: dict[str, list[tuple[float, float, int]]] = {"kubectl cp": [], "debugx cp": []}
        for _ in range(rounds):  # alternate, so that a load change on this machine hits both alike
            for name, argv, dest in (("kubectl cp", theirs, "/tmp/theirs"), ("debugx cp", ours, "/tmp/ours")):
                results[name].append(timed(argv, env))
                got = in_pod(kubectl, namespace, "sha256sum", dest).split()[:1]
                if got != [expected]:
                    print(f"{name}: the copy in the pod differs from the local file ({got})", file=sys.stderr)
                    return 1
                in_pod(kubectl, namespace, "rm", "-f", dest)
    median = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    print(f"file uploaded:         {size_mb} MB of random bytes per run, {rounds} alternating runs each, medians")
    for name, runs in results.items():
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs) / 1e6
        print(f"{name + ':':22} {median[name]:7.2f} s  {size_mb / median[name]:8.1f} MB/s  CPU {cpu:6.2f} s  "
              f"peak RSS {rss:6.1f} MB  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    print(f"ratio debugx/kubectl:  {median['kubectl cp'] / median['debugx cp']:7.2f}  (throughput; target >= 1.0)")
    print(f"load average:          {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
