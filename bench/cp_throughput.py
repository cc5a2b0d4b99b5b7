"""Benchmark: `kubectl debugx cp` versus `kubectl cp`, same file, same pod, same cluster, same run.

The target has tar (kubectl cp needs it). Both copy into a memory-backed folder where there is one, so the
disk is not what is measured. Each of our runs is the built executable end to end, debug container reused
after the first (warm-up) run as a user's second copy would, sha256 verification included."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.cluster import setup, sleeping_pod


def _hwm(pid: int) -> int:
    """VmHWM of a live process, in bytes (0 once it is gone). Not ru_maxrss: a child forked from this process
    (which runs the test cluster, ~60 MB) inherits our high-water mark across fork and exec, so every child
    would show at least ours."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, CPU seconds, peak RSS in bytes) of one process: RSS polled; CPU of every process reaped
    meanwhile, so on the test cluster (run in this process) it also holds the pod side's tar and sha256sum."""
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:  # the high-water mark only grows: the last reading before the exit is the peak
        peak = max(peak, _hwm(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - before  # the child was reaped by poll(): its usage is in RUSAGE_CHILDREN now
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({proc.returncode}): {stderr}")
    return seconds, cpu, peak


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with ExitStack() as stack:
        found = setup(stack, "bench/cp_throughput")
        if found is None:
            return 1
        zipapp, image, env, kubectl = found.zipapp, found.image, found.env, found.kubectl
        namespace = f"debugx-bench-{os.getpid()}"
        sleeping_pod(stack, kubectl, namespace, image, "src")
        # Random bytes (nothing compresses them on the way), written in the pod itself.
        subprocess.run([*kubectl, "exec", "-n", namespace, "src", "--", "sh", "-c",
                        f"head -c {size_mb * 1000 * 1000} /dev/urandom > /tmp/big"], check=True)
        out_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
        work = Path(tempfile.mkdtemp(prefix="debugx-bench-cp-", dir=out_dir))
        stack.callback(shutil.rmtree, work, True)
        ours = [str(zipapp), "cp", "-n", namespace, "src:/tmp/big", str(work / "ours"), "--image", image]
        theirs = [*kubectl, "cp", f"{namespace}/src:/tmp/big", str(work / "theirs")]
        timed(ours, env)  # warm-up: unpacks the zipapp and creates the debug container that later runs reuse
        expected = sha256(work / "ours")
        (work / "ours").unlink()
        results: dict[str, list[tuple[float, float, int]]] = {"kubectl cp": [], "debugx cp": []}
        for _ in range(rounds):  # alternate, so that a load change on this machine hits both alike
            for name, argv, dest in (("kubectl cp", theirs, work / "theirs"), ("debugx cp", ours, work / "ours")):
                results[name].append(timed(argv, env))
                if dest.stat().st_size != size_mb * 1000 * 1000 or sha256(dest) != expected:
                    print(f"{name}: the copy differs from the file in the pod", file=sys.stderr)
                    return 1
                dest.unlink()
    mb = size_mb
    median = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    print(f"file copied:           {mb} MB of random bytes per run, {rounds} alternating runs each, medians")
    for name, runs in results.items():
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs) / 1e6
        print(f"{name + ':':22} {median[name]:7.2f} s  {mb / median[name]:8.1f} MB/s  CPU {cpu:6.2f} s  "
              f"peak RSS {rss:6.1f} MB  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    print(f"ratio debugx/kubectl:  {median['kubectl cp'] / median['debugx cp']:7.2f}  (throughput; target >= 1.0)")
    rss = max(r[2] for r in results["debugx cp"]) / 1e6
    print(f"debugx peak RSS:       {rss:7.1f} MB (target < 80 MB, flat in the file's size)")
    print(f"load average:          {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
