"""Benchmark: start-up of kubectl-debugx against kubectl, same machine, same run."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

RUNS = int(os.environ.get("RUNS", "20"))
WARMUP = int(os.environ.get("WARMUP", "3"))
FIRST_RUNS = int(os.environ.get("FIRST_RUNS", "3"))
TARGET = 1.5


def timed(cmd: Sequence[str], env: dict[str, str] | None = None, runs: int = RUNS, warmup: int = WARMUP,
          check: bool = True) -> float:
    """Median wall time of cmd (seconds) after warm-up runs."""
    for _ in range(warmup):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_run(exe: str, env: dict[str, str]) -> float:
    """Median time of `--help` with an empty shiv cache (unpacking included)."""
    times = []
    for _ in range(FIRST_RUNS):
        root = tempfile.mkdtemp(prefix="debugx-shiv-")
        try:
            times.append(timed([exe, "--help"], dict(env, SHIV_ROOT=root), runs=1, warmup=0))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return statistics.median(times)


def row(label: str, ours: float | None, theirs: float | None, theirs_label: str, note: str = "") -> str:
    ratio = f"{ours / theirs:5.2f}" if ours and theirs else "    -"
    a = f"{ours * 1000:8.1f} ms" if ours is not None else "         -"
    b = f"{theirs * 1000:8.1f} ms" if theirs is not None else "         -"
    return f"| {label:<42} | {a} | {b} {theirs_label:<28} | {ratio} | {note}"


def interpreter_note() -> tuple[str, str | None]:
    python3 = shutil.which("python3") or "?"
    real = os.path.realpath(python3)
    with open(python3, "rb") as f:
        shim = f.read(2) == b"#!"  # a script (pyenv/asdf shim), not the interpreter
    direct = None
    if shim:
        out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True,
                             text=True)
        direct = out.stdout.strip() or None
    return (f"python3 on PATH: {python3}" + (" (a shim script)" if shim else f" -> {real}")), direct


def web_pod(kubectl: list[str], stack: ExitStack, name: str) -> str:
    """A fresh namespace (deleted when `stack` closes) with a Ready nginx pod `web`; the namespace's name."""
    namespace = f"debugx-{name}-{os.getpid()}"
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    stack.callback(lambda: subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                                          capture_output=True))
    image = os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27")
    subprocess.run([*kubectl, "run", "web", "-n", namespace, f"--image={image}", "--restart=Never"], check=True,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "-n", namespace, "--for=condition=Ready", "pod/web", "--timeout=120s"],
                   check=True, capture_output=True)
    return namespace


def cluster_rows(exe: str, env: dict[str, str], stack: ExitStack) -> list[str]:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig:
        if os.geteuid() != 0:
            return ["(time to first API call: skipped, the test cluster needs root; or set KUBECONFIG)"]
        try:
            from tests.cluster import TestCluster
        except ImportError as e:
            return [f"(time to first API call: skipped, no test cluster: {e})"]
        cluster = stack.enter_context(TestCluster())
        kubeconfig = str(cluster.kubeconfig)
    env = dict(env, KUBECONFIG=kubeconfig)
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    namespace = web_pod(kubectl, stack, "startup")
    runs = max(5, RUNS // 2)
    rows = [
        row("version (GET /version)", timed([exe, "version"], env, runs),
            timed([*kubectl, "version"], env, runs), "kubectl version"),
        row("capture POD --dry-run (GET pod, ...)",
            timed([exe, "capture", "web", "-n", namespace, "--dry-run"], env, runs),
            timed([*kubectl, "get", "pod", "web", "-n", namespace], env, runs), "kubectl get pod"),
        row("__complete capture '' (lists pods)",
            timed([exe, "__complete", "capture", "-n", namespace, ""], env, runs),
            timed(["kubectl", "__complete", "get", "pod", "-n", namespace, ""], env, runs),
            "kubectl __complete get pod"),
    ]
    return rows


def main() -> int:
    exe = str(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/kubectl-debugx").resolve())
    if not os.access(exe, os.X_OK):
        print(f"bench/startup: no executable {exe}; run ./build.sh", file=sys.stderr)
        return 1
    if not shutil.which("kubectl"):
        print("bench/startup: kubectl is not on PATH", file=sys.stderr)
        return 1
    shiv_root = tempfile.mkdtemp(prefix="debugx-shiv-")
    env = dict(os.environ, SHIV_ROOT=shiv_root, KUBECONFIG=os.environ.get("KUBECONFIG", "/nonexistent"))
    note, direct = interpreter_note()
    remembered = Path(shiv_root) / ".kubectl-debugx-python"
    rows = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, shiv_root, True)
        kubectl_help = timed(["kubectl", "--help"], env)
        ours_help = timed([exe, "--help"], env)
        rows.append(row("--help (as installed)", ours_help, kubectl_help, "kubectl --help", "target <= 1.5"))
        no_cache = dict(env, KUBECTL_DEBUGX_NO_CACHE="1")
        rows.append(row("--help, help cache off (Typer)", timed([exe, "--help"], no_cache), kubectl_help,
                        "kubectl --help", "KUBECTL_DEBUGX_NO_CACHE=1"))
        rows.append(row("--help via `python3 FILE` (no launcher)", timed(["python3", exe, "--help"], env),
                        kubectl_help, "kubectl --help", "PATH's python3" + (", a shim" if direct else "")))
        rows.append(row("capture --help", timed([exe, "capture", "--help"], env),
                        timed(["kubectl", "debug", "--help"], env), "kubectl debug --help"))
        rows.append(row("__complete '' (subcommands)", timed([exe, "__complete", ""], env),
                        timed(["kubectl", "__complete", ""], env), "kubectl __complete ''"))
        rows.append(row("first run --help (fresh SHIV_ROOT)", first_run(exe, env), kubectl_help,
                        "kubectl --help", "unpacking included"))
        rows += cluster_rows(exe, env, stack)
        launcher = remembered.read_text().strip() if remembered.exists() else None
    print(f"kubectl-debugx start-up   ({exe}, {os.path.getsize(exe) / 1e6:.1f} MB)")
    print(f"medians of {RUNS} runs after {WARMUP} warm-ups; first run: median of {FIRST_RUNS}; {note}")
    if launcher:
        print(f"the launcher runs {launcher} -S (remembered at the first run)")
    print(f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s}  "
          f"load average {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")
    print(f"| {'case':<42} | {'debugx':>11} | {'kubectl':>11} {'':<28} | ratio | ")
    print("|" + "-" * 44 + "|" + "-" * 13 + "|" + "-" * 42 + "|-------|------")
    for line in rows:
        print(line)
    ratio = ours_help / kubectl_help
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"--help ratio {ratio:.2f}: target <= {TARGET} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
