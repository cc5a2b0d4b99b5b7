"""Benchmark: capture's exec stream path versus `kubectl exec`, same bytes, same cluster, same run."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.cluster import sleeping_pod

RECORD_PAYLOAD = 65000
CHUNK_RECORDS = 16  # ~1 MiB of pcap records uploaded once, then repeated remotely


def pcap_chunk() -> tuple[bytes, bytes]:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    payload = bytes(range(256)) * (RECORD_PAYLOAD // 256) + bytes(RECORD_PAYLOAD % 256)
    record = struct.pack("<IIII", 1, 0, RECORD_PAYLOAD, RECORD_PAYLOAD) + payload
    return header, record * CHUNK_RECORDS


def ours(kubeconfig: str, namespace: str, pod: str, container: str, out: str, command: list[str]) -> None:
    """The child process: exactly capture's path, without tcpdump."""
    from kubectl_debugx.commands.capture import GATHER_S, PcapOutput
    from kubectl_debugx.kube.client import Kube
    from kubectl_debugx.kube.config import KubeFlags
    from kubectl_debugx.kube.execstream import pump

    kube = Kube(KubeFlags(kubeconfig=kubeconfig, namespace=namespace))
    output = PcapOutput(out)
    with kube.exec_connection(namespace, pod, container, command) as conn:
        outcome = pump(conn, output.feed, lambda _b: None, on_batch_end=output.flush, gather=GATHER_S)
    output.sink.close()
    framer = output.framer
    if outcome.exit_code != 0:
        raise SystemExit(f"remote command failed: {outcome}")
    print(framer.stats.bytes_out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        site, kubeconfig, namespace, pod, container, out = sys.argv[2:8]
        sys.path.insert(0, site)  # the code as shipped: the zipapp's own unpacked site-packages
        ours(kubeconfig, namespace, pod, container, out, sys.argv[8:])
        return 0
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    zipapp = Path(os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx"))
    if not zipapp.exists():
        print(f"bench/capture_throughput: {zipapp} is missing: run ./build.sh first", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        shiv_root = Path(tempfile.mkdtemp(prefix="debugx-bench-shiv-"))
        stack.callback(shutil.rmtree, shiv_root, True)
        subprocess.run([str(zipapp), "--help"], check=True, capture_output=True,
                       env={**os.environ, "SHIV_ROOT": str(shiv_root)})
        [site] = shiv_root.glob("kubectl-debugx_*/site-packages")
        # The interpreter the zipapp runs on here: the first python3 on PATH (what its launcher picks).
        python = os.environ.get("KUBECTL_DEBUGX_PYTHON") or subprocess.run(
            ["python3", "-c", "import sys; print(sys.executable)"], check=True, capture_output=True, text=True
        ).stdout.strip()
        # Warm, as an installed copy is after its first runs: compiled modules cached.
        subprocess.run([python, "-m", "compileall", "-q", str(site)], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        kubeconfig = os.environ.get("KUBECONFIG", "")
        image = os.environ.get("DEBUGX_E2E_IMAGE", "busybox:1.36")
        if not kubeconfig:
            if os.geteuid() != 0:
                print("bench/capture_throughput: the test cluster needs root (or set KUBECONFIG)", file=sys.stderr)
                return 1
            from tests.cluster import TestCluster

            cluster = stack.enter_context(TestCluster())
            kubeconfig = str(cluster.kubeconfig)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        namespace = f"debugx-bench-{os.getpid()}"
        sleeping_pod(stack, kubectl, namespace, image, "src")
        header, chunk = pcap_chunk()
        upload = "cat > /tmp/chunk"
        subprocess.run([*kubectl, "exec", "-i", "-n", namespace, "src", "--", "sh", "-c", upload],
                       input=chunk, check=True)
        repeats = max(1, size_mb * 1024 * 1024 // len(chunk))
        total = len(header) + repeats * len(chunk)
        octal = "".join(f"\\{b:03o}" for b in header)
        script = (f"printf '{octal}'; "
                  f"i=0; while [ $i -lt {repeats} ]; do cat /tmp/chunk; i=$((i+1)); done")
        command = ["sh", "-c", script]

        # A memory-backed file where there is one: the comparison is with kubectl writing to /dev/null, so
        # the disk should not be what is measured.
        out_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
        out = Path(tempfile.mkdtemp(prefix="debugx-bench-", dir=out_dir)) / "out.pcap"
        stack.callback(lambda: (out.unlink(missing_ok=True), out.parent.rmdir()))
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        kubectl_times: list[float] = []
        our_times: list[float] = []
        peak_rss_mb = 0.0
        # Alternate the two tools so a load change on this machine hits both alike; compare medians.
        kubectl_cpu: list[float] = []
        our_cpu: list[float] = []
        null_times: list[float] = []
        null_cpu: list[float] = []
        kubectl_file_times: list[float] = []
        kubectl_file_cpu: list[float] = []
        theirs = out.parent / "kubectl.pcap"
        stack.callback(lambda: theirs.unlink(missing_ok=True))
        for _ in range(rounds):
            cpu = _children_cpu()
            start = time.perf_counter()
            subprocess.run([*kubectl, "exec", "-n", namespace, "src", "--", *command], check=True,
                           stdout=subprocess.DEVNULL)
            kubectl_times.append(time.perf_counter() - start)
            kubectl_cpu.append(_children_cpu() - cpu)

            # What a user does by hand: `kubectl exec POD -- tcpdump -w - > FILE`, into the same folder as ours
            with theirs.open("wb") as sink:
                cpu = _children_cpu()
                start = time.perf_counter()
                subprocess.run([*kubectl, "exec", "-n", namespace, "src", "--", *command], check=True,
                               stdout=sink)
                kubectl_file_times.append(time.perf_counter() - start)
                kubectl_file_cpu.append(_children_cpu() - cpu)
            if theirs.stat().st_size != total:
                print(f"byte count mismatch: sent {total}, kubectl wrote {theirs.stat().st_size}")
                return 1
            theirs.unlink()

            cpu = _children_cpu()
            start = time.perf_counter()
            child = subprocess.run(
                [python, "-S", *profile, "-m", "bench.capture_throughput", "--child", str(site), kubeconfig,
                 namespace, "src", "src", str(out), *command],
                check=True, capture_output=True, text=True,
            )
            our_times.append(time.perf_counter() - start)
            our_cpu.append(_children_cpu() - cpu)
            written, rss_kb = (int(x) for x in child.stdout.split())
            peak_rss_mb = max(peak_rss_mb, rss_kb / 1024)
            if written != total or out.stat().st_size != total:
                print(f"byte count mismatch: sent {total}, tracked {written}, file {out.stat().st_size}")
                return 1

            # Like for like with kubectl: the same path, but into /dev/null.
            cpu = _children_cpu()
            start = time.perf_counter()
            subprocess.run(
                [python, "-S", "-m", "bench.capture_throughput", "--child", str(site), kubeconfig,
                 namespace, "src", "src", os.devnull, *command],
                check=True, capture_output=True, text=True,
            )
            null_times.append(time.perf_counter() - start)
            null_cpu.append(_children_cpu() - cpu)

    mb = total / 1e6
    kubectl_seconds = statistics.median(kubectl_times)
    our_seconds = statistics.median(our_times)
    print(f"bytes streamed:        {total} ({mb:.0f} MB) per run, pcap records of {RECORD_PAYLOAD} bytes, "
          f"{rounds} alternating runs each, medians")
    print(f"kubectl exec > null:   {kubectl_seconds:7.2f} s  {mb / kubectl_seconds:8.1f} MB/s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in kubectl_times)})")
    print(f"debugx frames->file:   {our_seconds:7.2f} s  {mb / our_seconds:8.1f} MB/s  "
          f"(to {out.parent.parent}) "
          f"(runs: {', '.join(f'{t:.2f}' for t in our_times)})")
    print(f"ratio debugx/kubectl:  {kubectl_seconds / our_seconds:7.2f}  (target >= 1.0)")
    null_seconds = statistics.median(null_times)
    print(f"debugx frames->null:   {null_seconds:7.2f} s  {mb / null_seconds:8.1f} MB/s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in null_times)}); ratio to kubectl "
          f"{kubectl_seconds / null_seconds:.2f} (both to /dev/null)")
    kubectl_file_seconds = statistics.median(kubectl_file_times)
    print(f"kubectl exec > file:   {kubectl_file_seconds:7.2f} s  {mb / kubectl_file_seconds:8.1f} MB/s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in kubectl_file_times)}); ratio debugx/kubectl, both to a file "
          f"{kubectl_file_seconds / our_seconds:.2f} (issue 24: >= 1.2)")
    theirs_cpu, ours_cpu = statistics.median(kubectl_file_cpu), statistics.median(our_cpu)
    print(f"client CPU (user+sys), medians, the same work each side: to a file kubectl {theirs_cpu:.2f} s, debugx "
          f"{ours_cpu:.2f} s, ratio {ours_cpu / theirs_cpu:.2f} (issue 24: <= 0.5); to /dev/null kubectl "
          f"{statistics.median(kubectl_cpu):.2f} s, debugx {statistics.median(null_cpu):.2f} s, ratio "
          f"{statistics.median(null_cpu) / statistics.median(kubectl_cpu):.2f}")
    print(f"debugx peak RSS:       {peak_rss_mb:7.1f} MB (target < 80 MB)")
    print(f"debugx interpreter:    {python}")
    print(f"load average:          {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
