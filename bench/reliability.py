"""Reliability matrix: does anything stay behind, whatever happens to the client? One table on stdout.

Rows: Ctrl-C at a moment drawn uniformly from 0-6 s (covers container creation, the wait, tool start and
streaming) of capture, trace and nodelogs --via pod, of capture and trace of a 2-replica Deployment, of cp, and
of nodelogs --follow; kill -9 at such a moment; the exec stream cut after a
random number of bytes; the API server stopped and restarted mid-capture; bad inputs. Every product run has
-v=8 (API requests logged), so that a credential in a log line would be seen.

Columns:
* runs (`N hit`: how many were still running at the chosen moment; the others had ended by themselves);
* tools left: tcpdump/strace/tar still running 5 s after the client ended (`ps` in our debug containers and
  in running node pods);
* node pods left: our node pods (any phase, finished ones too) and our node Jobs still in the cluster 5 s after
  the client ended (`N finished`: how many of those pods had ended; a Job counts once with its pod). The node pod
  runs as a Job with ttlSecondsAfterFinished 0 when the user may create jobs, so that Kubernetes deletes it once
  its lease ends it, even after a kill -9 (nodelogs/nodejob.py); a plain node pod would stay until `gc`;
  `N ended by lease window`: killed after asking for the node pod but before taking its lease, the pod ran on
  until its lease window (nodelogs/pod.LEASE_WINDOW, 3 s) ended it, as checked; longer would count as left;
* output valid: the pcap opens in tshark, the trace ends on a whole line, every file nodelogs copied is a
  byte prefix of the node's file (node proxy) and a run that ended well wrote decoded files;
  a bad input: nothing created in the cluster and no file left;
* exit codes: as the README table documents (a kill -9 has none to check);
* credentials printed: a token of the kubeconfig, or an Authorization header, on stdout or stderr.

Uses $KUBECONFIG (a real cluster: the rows needing the test cluster's fault switches are skipped, with the
reason) or starts the test cluster (root). `--seed N` reproduces the moments; `--quick` runs 3 of each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bad_inputs import bad_inputs
from bench.cluster import kubeconfig_or_test_cluster, web_with_traffic

MANAGED = "app.kubernetes.io/managed-by=kubectl-debugx"
TOOLS = ("tcpdump", "strace", "tar")
COMMANDS = ("capture", "trace", "nodelogs")
# The same stops on a workload (a 2-replica Deployment `webd`): every pod's debug container must be said to stay
# (issue 21: "Left in the cluster" for every pod on every way out), tools ended in every pod.
WORKLOAD_COMMANDS = ("capture deploy/webd", "trace deploy/webd")
# cp of a folder of the nginx container (tar and sha256sum running): every file under its real name whole,
# whatever stops it (a file being written when killed stays under .NAME.debugx-partial-PID only)
CP_SOURCE = "/usr/share"
# nodelogs --follow (node proxy, no pod of ours): Ctrl-C only, its lines on stdout whole to the last
FOLLOW = "nodelogs --follow"
PARTIAL = ".debugx-partial-"
ADDED = re.compile(rb"Adding ephemeral container (\S+) \(image [^)]*\) to pod (\S+)")
SETTLE = 5.0  # seconds after the client's end by which nothing may be left


@dataclass
class Row:
    name: str
    runs: int = 0
    tools_left: int = 0
    node_pods_left: int = 0
    node_pods_done: int = 0  # of node_pods_left, those whose pod had finished
    signalled: int = 0  # runs still going at the chosen moment (the others had ended by themselves)
    lease_window: int = 0  # node pods that ran on until their lease window ended them (killed before the lease)
    valid: int = 0
    codes_ok: int = 0
    codes_checked: int = 0
    credentials: int = 0
    added: int = 0  # debug containers added by runs that could still talk (not kill -9)
    added_said: int = 0  # of those, said to stay (a `Left in the cluster` line or the error line)
    skipped: str = ""
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        if self.skipped:
            return [self.name, "0", "-", "-", "-", "-", "-", "-", f"skipped: {self.skipped}"]
        extra = [f"{self.node_pods_done} finished"] if self.node_pods_done else []
        extra += [f"{self.lease_window} ended by lease window"] if self.lease_window else []
        pods = str(self.node_pods_left) + (f" ({', '.join(extra)})" if extra else "")
        codes = f"{self.codes_ok}/{self.codes_checked}" if self.codes_checked else "n/a"
        runs = f"{self.runs} ({self.signalled} hit)" if self.signalled != self.runs and "(0-6 s)" in self.name \
            else str(self.runs)
        said = f"{self.added_said}/{self.added}" if self.added else "-"
        return [self.name, runs, str(self.tools_left), pods, f"{self.valid}/{self.runs}", codes, said,
                str(self.credentials), ""]


HEADERS = ["SCENARIO", "RUNS", "TOOLS LEFT", "NODE PODS LEFT", "OUTPUT VALID", "EXIT CODES OK", "ADDED SAID",
           "CREDENTIALS", "NOTE"]


def render(rows: list[Row]) -> str:
    cells = [HEADERS, *[r.cells() for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
                   for line in cells)


class Bench:
    def __init__(self, stack: ExitStack, kubeconfig: str, zipapp: Path, image: str, nginx: str,
                 cluster: Any = None, context: str | None = None, namespace: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        # the product's debug and node pod image: the one the cluster has (a lab pulls nothing)
        os.environ.setdefault("KUBECTL_DEBUGX_IMAGE", image)
        self.zipapp = zipapp
        self.cluster = cluster
        self.kubectl = ["kubectl", "--kubeconfig", kubeconfig, *(["--context", context] if context else [])]
        self.ns = namespace or f"debugx-rel-{os.getpid()}-{random.randrange(10**6)}"
        self.tmp = Path(tempfile.mkdtemp(prefix="debugx-rel-"))
        stack.callback(shutil.rmtree, self.tmp, True)
        self.secrets = kubeconfig_secrets(kubeconfig)
        web_with_traffic(stack, self.kubectl, self.ns, nginx, image, "baseline", create_namespace=not namespace)
        # a manifest, not `kubectl create deployment` (a typed client sending protobuf, which the test cluster's
        # API server does not speak)
        webd = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "webd", "namespace": self.ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "webd"}},
                         "template": {"metadata": {"labels": {"app": "webd"}},
                                      "spec": {"containers": [{"name": "nginx", "image": nginx}]}}}}
        subprocess.run([*self.kubectl, "create", "-f", "-"], input=json.dumps(webd), text=True, check=True,
                       capture_output=True, timeout=60)
        self.run("rollout", "status", "deploy/webd", "-n", self.ns, "--timeout=180s")
        # Steady traffic, so that captures have packets and traces have syscalls.
        traffic = subprocess.Popen([*self.kubectl, "exec", "-n", self.ns, "web", "-c", "traffic", "--", "sh", "-c",
                                    "while :; do curl -s -o /dev/null http://127.0.0.1/; sleep 0.2; done"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(traffic.kill)
        self.node = self.run("get", "pod", "web", "-n", self.ns, "-o", "jsonpath={.spec.nodeName}").strip()

    def run(self, *args: str, check: bool = True) -> str:
        res = subprocess.run([*self.kubectl, *args], capture_output=True, text=True, timeout=180)
        if check and res.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def product(self, *args: str, kubeconfig: str | None = None) -> list[str]:
        ctx = ["--context", self.context] if self.context and "--context" not in args else []
        return [str(self.zipapp), *args, "--kubeconfig", kubeconfig or self.kubeconfig, *ctx, "-v=8"]

    def scratch(self) -> Path:
        """A fresh directory for one run's output (OUT inside it)."""
        return Path(tempfile.mkdtemp(dir=self.tmp))

    def source_sizes(self) -> dict[str, int]:
        """Size of every regular file under CP_SOURCE in the container, by path relative to it (asked once)."""
        if not hasattr(self, "_sizes"):
            listing = self.run("exec", "-n", self.ns, "web", "-c", "web", "--", "sh", "-c",
                               f"cd {CP_SOURCE} && find . -type f -exec stat -c '%s %n' {{}} +", check=False)
            self._sizes = {name[2:]: int(size) for size, _, name in
                           (line.partition(" ") for line in listing.splitlines()) if size.isdigit()}
        return self._sizes

    def argv(self, command: str, out: Path) -> list[str]:
        if command == "cp":
            return self.product("cp", f"web:{CP_SOURCE}", str(out), "-n", self.ns, "-c", "web")
        if command == FOLLOW:  # stdout into OUT (exec: the signal reaches the product itself)
            return ["sh", "-c", 'exec "$@" > "$0"', str(out), *self.product("nodelogs", "web", "-n", self.ns,
                                                                             "--follow")]
        if " " in command:  # a workload: capture into one pcapng, trace into a folder of POD.trace
            verb, target = command.split(" ")
            path = str(out) + (".pcapng" if verb == "capture" else "/")
            return self.product(verb, target, "-n", self.ns, "-o", path)
        extra = {"capture": [], "trace": [], "nodelogs": ["--via", "pod"]}[command]
        return self.product(command, "web", "-n", self.ns, "-o", str(out), *extra)

    # --- what is left ------------------------------------------------------------------------------

    def leftovers(self) -> tuple[int, int, int]:
        """(tools running, node pods not finished, node pods finished) in our namespace; a node Job without a
        pod (yet, or any more) counts as a node pod not finished."""
        pods = json.loads(self.run("get", "pods", "-n", self.ns, "-o", "json"))["items"]
        jobs = json.loads(self.run("get", "jobs", "-n", self.ns, "-l", MANAGED, "-o", "json"))["items"]
        owners = {ref.get("uid") for pod in pods for ref in pod["metadata"].get("ownerReferences") or []}
        tools = done = 0
        running_pods = sum(1 for job in jobs if job["metadata"]["uid"] not in owners)
        for pod in pods:
            name = pod["metadata"]["name"]
            if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "kubectl-debugx":
                if pod["status"].get("phase") in ("Succeeded", "Failed"):
                    done += 1
                    continue
                running_pods += 1
                tools += self.tools_in(name, "debugger")
                continue
            for status in pod["status"].get("ephemeralContainerStatuses") or []:
                if status["name"].startswith("debugx-") and "running" in (status.get("state") or {}):
                    tools += self.tools_in(name, status["name"])
        return tools, running_pods, done

    def tools_in(self, pod: str, container: str) -> int:
        res = subprocess.run([*self.kubectl, "exec", "-n", self.ns, pod, "-c", container, "--", "ps", "-eo",
                              "comm"], capture_output=True, text=True, timeout=60)
        return sum(1 for line in res.stdout.split() if line in TOOLS)

    def wait_lease_window(self, name: str) -> bool:
        """Wait until node pod `name` has ended, up to its lease window and 10 s more; whether it ran (False:
        it never appeared within 5 s, or had already ended)."""
        from kubectl_debugx.commands.nodelogs.pod import LEASE_WINDOW

        start = time.monotonic()
        seen = False
        while time.monotonic() < start + LEASE_WINDOW + 10:
            # `name` is the node pod's, or its Job's (whose pods carry the label job-name)
            phase = self.run("get", "pods", "-n", self.ns, "-l", f"job-name={name}", "-o",
                             "jsonpath={.items[*].status.phase}", check=False).strip() or self.run(
                "get", "pod", name, "-n", self.ns, "-o", "jsonpath={.status.phase}", check=False)
            if phase in ("Succeeded", "Failed") or (not phase and (seen or time.monotonic() > start + 5)):
                break
            seen = seen or phase in ("Pending", "Running")
            time.sleep(0.5)
        return seen

    def settle(self, since: float) -> tuple[int, int, int]:
        """Poll until nothing runs, or SETTLE seconds after `since`; what is left then."""
        while True:
            left = self.leftovers()
            if not any(left) or time.monotonic() >= since + SETTLE:
                return left
            time.sleep(0.3)

    def clean_done_node_pods(self) -> None:
        self.run("delete", "jobs,pods", "-n", self.ns, "-l", MANAGED, "--wait=false", check=False)

    # --- output validity ---------------------------------------------------------------------------

    def valid(self, command: str, out: Path, code: int | None) -> bool:
        if command == "cp":
            sizes = self.source_sizes()
            files = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()] if out.is_dir() else []
            return all(sizes.get(p.relative_to(out).as_posix()) == p.stat().st_size
                       for p in files if PARTIAL not in p.name)
        if command == FOLLOW:  # no file: stopped before sh opened it
            return not out.exists() or out.stat().st_size == 0 or out.read_bytes().endswith(b"\n")
        if command == "capture deploy/webd":
            return self.valid("capture", out.with_name(out.name + ".pcapng"), code)
        if command == "trace deploy/webd":
            traces = list(out.glob("*.trace")) if out.is_dir() else []
            return all(t.stat().st_size == 0 or t.read_bytes().endswith(b"\n") for t in traces)
        if command == "capture":
            if not out.exists() or out.stat().st_size == 0:
                return code != 0
            res = subprocess.run(["tshark", "-r", str(out)], capture_output=True, text=True, timeout=120)
            return res.returncode == 0 and "cut short" not in res.stderr
        if command == "trace":
            return not out.exists() or out.stat().st_size == 0 or out.read_bytes().endswith(b"\n")
        if not out.exists():
            return code != 0
        copied = [p for p in (out / self.node).rglob("*") if p.is_file()] if (out / self.node).is_dir() else []
        for path in copied:
            rel = path.relative_to(out / self.node).as_posix()
            node = subprocess.run([*self.kubectl, "get", "--raw", f"/api/v1/nodes/{self.node}/proxy/logs/pods/{rel}"],
                                  capture_output=True, timeout=60, input=b"")
            if node.returncode == 0 and not node.stdout.startswith(path.read_bytes()):
                return False
        decoded = list(out.glob("*.txt"))
        return code != 0 or bool(decoded and copied)

    def credentials(self, output: bytes) -> int:
        found = sum(1 for s in self.secrets if s in output)
        return found + len(re.findall(rb"(?i)authorization\s*[:=]\s*['\"]?(bearer|basic)\s+\S", output))


def kubeconfig_secrets(path: str) -> list[bytes]:
    """Every token, password and client key (base64 and the PEM's body lines) of the kubeconfig."""
    import base64

    import yaml

    config = yaml.safe_load(Path(path).read_text())
    secrets: list[bytes] = []
    for user in config.get("users") or []:
        u = user.get("user") or {}
        for key in ("token", "password"):
            if u.get(key):
                secrets.append(str(u[key]).encode())
        if u.get("client-key-data"):
            secrets.append(u["client-key-data"].encode())
            pem = base64.b64decode(u["client-key-data"])
            secrets += [line for line in pem.splitlines() if len(line) >= 32 and not line.startswith(b"-")]
    return secrets


def communicate(proc: subprocess.Popen, timeout: float = 180) -> tuple[int | None, bytes]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out + err
    return proc.returncode, out + err


# --- scenarios -------------------------------------------------------------------------------------------


def as_foreground_job() -> None:
    """The product must start with SIGINT at its default, as a command a user runs in a terminal. A bench
    started in the background (`... &` in a script: the lab runs) ignores SIGINT, and an ignored signal stays
    ignored through fork, sh and exec until the product's start sets its handler: a Ctrl-C in the first
    milliseconds was then lost, and the run went on (lab, seed 916891: a trace ran 180 s until killed). A
    signal *handled* here is at its default in the child after exec, so the bench handles it (Python's own
    handler), rather than a preexec_fn in a process that runs the test cluster's threads."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def interrupt(bench: Bench, row: Row, command: str, sig: int, moment: float) -> None:
    """Start `command`, send `sig` at `moment` (unless it ended before), then check what stays."""
    out = bench.scratch() / "out"
    # The test cluster runs nodelogs in about a second; with 0.3 s per API request it takes about 6 s, as on a
    # real cluster (pod scheduling, image, status updates), so the moments fall over all of it.
    slow = bench.cluster is not None and command == "nodelogs"
    if slow:
        bench.cluster.set_latency(0.3)
    try:
        as_foreground_job()
        proc = subprocess.Popen(bench.argv(command, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(moment)
        signalled = proc.poll() is None
        if signalled:
            proc.send_signal(sig)
            row.signalled += 1
        code, output = communicate(proc)
    finally:
        if slow:
            bench.cluster.set_latency(0)
    # Killed after asking for the node pod but before its lease (said by "Reading /var/log/pods ..."): the pod
    # (its creation may still be in flight) runs on until its lease window passes (pod.LEASE_WINDOW), then
    # ends by itself: checked here, counted apart; still running after that, it counts as left.
    created = re.search(rb"Creating node pod [^/\s]+/(\S+)", output)
    if sig == signal.SIGKILL and created and b"Reading /var/log/pods" not in output:
        row.lease_window += bench.wait_lease_window(created.group(1).decode())
    # nodelogs may end by itself just after the moment (a signal during its final cleanup is only noted): 0.
    record(bench, row, command, out, code, output, time.monotonic(),
           expected=None if sig == signal.SIGKILL else (130,) if signalled and command != "nodelogs" else (0, 130))
    if command == "nodelogs" and sig == signal.SIGKILL:
        bench.clean_done_node_pods()  # what `gc` does; counted above


def record(bench: Bench, row: Row, command: str, out: Path, code: int | None, output: bytes, ended: float,
           expected: tuple[int, ...] | None) -> None:
    row.runs += 1
    if code is not None and code < 0:
        # Exit codes as the shell reports them: a death by signal N is 128+N. A Ctrl-C in the few milliseconds
        # between the launcher's exec and Python's first line meets the default action (a signal caught by sh's
        # trap is reset by exec; one ignored would be lost, and the run would go on): death by SIGINT, which
        # the shell shows as 130 too, with nothing started yet.
        code = 128 - code
    tools, pods, done = bench.settle(ended)
    row.tools_left += tools
    row.node_pods_left += pods + done
    row.node_pods_done += done
    ok_output = bench.valid(command, out, code)
    row.valid += ok_output
    if expected is not None:
        row.codes_checked += 1
        # A stop by signal keeps the data and may say so without an `error:` line; any other failure has one.
        errors = error_lines(output)
        good = code in expected and b"Traceback" not in output and (
            errors == 0 if code == 0 else errors <= 1 if code in (130, 143) else errors == 1)
        row.codes_ok += good
        if not good:
            row.notes.append(f"{command}: exit {code} (expected {expected}): {last_line(output)}")
    row.credentials += bench.credentials(output)
    if expected is not None:  # a run that could still talk: every container it added is said to stay
        for ec, pod in ADDED.findall(output):
            row.added += 1
            said = ec + b" stays in pod " + pod in output
            row.added_said += said
            if not said:
                row.notes.append(f"{command}: {ec.decode()} added to {pod.decode()} and not said to stay")
    if tools or pods or done or not ok_output:
        row.notes.append(f"{command}: tools left {tools}, node pods left {pods + done}, output valid {ok_output}")
    shutil.rmtree(out.parent, ignore_errors=True)


def error_lines(output: bytes) -> int:
    return sum(1 for line in output.splitlines() if line.startswith(b"error:"))


def last_line(output: bytes) -> str:
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def cut_stream(bench: Bench, row: Row, rng: random.Random) -> None:
    command = COMMANDS[row.runs % 3]
    out = bench.scratch() / "out"
    bench.cluster.cut_exec_after_bytes(rng.randrange(2000, 20000))
    try:
        argv = bench.argv(command, out)
        if command != "nodelogs":
            argv += ["--duration", "20s"]
        code, output = communicate(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    finally:
        bench.cluster.cut_exec_after_bytes(None)
    # A stream cut is exit 6; a short nodelogs may finish before the cut and a trace may see no cut in 20 s.
    record(bench, row, command, out, code, output, time.monotonic(), expected=(6, 0))


def restart_apiserver(bench: Bench, row: Row, rng: random.Random) -> None:
    out = bench.scratch() / "out"
    proc = subprocess.Popen(bench.argv("capture", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    said = b""
    while b"listening on" not in said:
        line = proc.stderr.readline()
        if not line:
            break
        said += line
    time.sleep(rng.uniform(0, 2))
    bench.cluster.stop_apiserver()
    time.sleep(rng.uniform(0.5, 3))
    bench.cluster.start_apiserver()
    code, output = communicate(proc)
    # The exec stream is cut (6); a request failing while the server is down says it cannot be reached (7).
    record(bench, row, "capture", out, code, said + output, time.monotonic(), expected=(6, 7))


def cluster_state(bench: Bench) -> str:
    pods = json.loads(bench.run("get", "pods", "-A", "-o", "json"))["items"]
    return json.dumps(sorted((p["metadata"]["namespace"], p["metadata"]["name"],
                              sorted(c["name"] for c in p["spec"].get("ephemeralContainers") or []))
                             for p in pods))


def bad_input(bench: Bench, row: Row, what: str, args: list[str], code: int) -> None:
    scratch = bench.scratch()
    out, existing_file, existing_dir = scratch / "out", scratch / "existing.pcap", scratch / "existing"
    existing_file.write_bytes(b"keep")
    existing_dir.mkdir()
    (existing_dir / "kept").write_bytes(b"keep")
    kubeconfig = None
    if "UNREACHABLE" in args:  # the same kubeconfig with a server nobody listens on
        kubeconfig = str(scratch / "unreachable")
        Path(kubeconfig).write_text(re.sub(r"server: \S+", "server: https://127.0.0.1:9",
                                           Path(bench.kubeconfig).read_text()))
        args = args[:args.index("UNREACHABLE")]
    names = {"OUT": str(out), "EXISTING_FILE": str(existing_file), "EXISTING_DIR": str(existing_dir)}
    args = [names.get(a, a) for a in args]
    before = cluster_state(bench)
    res = subprocess.run(bench.product(*args, kubeconfig=kubeconfig), capture_output=True, timeout=180)
    output = res.stdout + res.stderr
    row.runs += 1
    nothing = (cluster_state(bench) == before and not out.exists() and existing_file.read_bytes() == b"keep"
               and [p.name for p in existing_dir.iterdir()] == ["kept"])
    row.valid += nothing
    row.codes_checked += 1
    good = res.returncode == code and error_lines(res.stderr) == 1 and b"Traceback" not in output
    row.codes_ok += good
    row.credentials += bench.credentials(output)
    if not good or not nothing:
        row.notes.append(f"bad input {what!r}: exit {res.returncode} (documented {code}), nothing left "
                         f"{nothing}: {last_line(res.stderr)}")
    shutil.rmtree(scratch, ignore_errors=True)


def matrix(bench: Bench, quick: bool, seed: int, say: Callable[[str], None] = print,
           only: tuple[str, ...] = ()) -> list[Row]:
    """Every row (or, with `only`, the Ctrl-C and kill -9 rows of those commands alone)."""
    rng = random.Random(seed)
    n_int, n_kill, n_cut, n_api = (3, 3, 3, 3) if quick else (20, 10, 10, 5)
    rows: list[Row] = []
    for label, sig, n in (("Ctrl-C", signal.SIGINT, n_int), ("kill -9", signal.SIGKILL, n_kill)):
        for command in [c for c in only if c != FOLLOW] if only else (*COMMANDS, *WORKLOAD_COMMANDS, "cp"):
            row = Row(f"{label} {command}{' --via pod' if command == 'nodelogs' else ''} (0-6 s)")
            for _ in range(n):
                interrupt(bench, row, command, sig, rng.uniform(0, 6))
            rows.append(row)
            say(f"done: {row.name}")
    if not only or FOLLOW in only:
        row = Row(f"Ctrl-C {FOLLOW} (0-6 s)")
        for _ in range(3 if quick else 10):
            interrupt(bench, row, FOLLOW, signal.SIGINT, rng.uniform(0, 6))
        rows.append(row)
        say(f"done: {row.name}")
    if only:
        return rows
    for name, scenario, n in (("exec stream cut", cut_stream, n_cut),
                              ("API server restart mid-capture", restart_apiserver, n_api)):
        row = Row(name)
        if bench.cluster is None:
            row.skipped = "needs the test cluster's fault switches (a real cluster: use KUBECONFIG unset)"
        else:
            for _ in range(n):
                scenario(bench, row, rng)
        rows.append(row)
        say(f"done: {row.name}")
    row = Row("bad inputs (one each)")
    for what, args, code in bad_inputs(bench.ns):
        bad_input(bench, row, what, args, code)
    rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="seed of the random moments (printed)")
    parser.add_argument("--quick", action="store_true", help="3 runs of each scenario")
    parser.add_argument("--only", default="", help="comma-separated commands whose Ctrl-C and kill -9 rows alone "
                        "run, e.g. 'capture deploy/webd,trace deploy/webd,cp'")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    zipapp = Path(os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")).resolve()
    if not zipapp.exists():
        print(f"bench/reliability: {zipapp} is missing: run ./build.sh first", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        found = kubeconfig_or_test_cluster(stack, "bench/reliability")
        if found is None:
            return 1
        kubeconfig, cluster = found
        bench = Bench(stack, kubeconfig, zipapp, os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13"),
                      os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27"), cluster)
        only = tuple(c.strip() for c in args.only.split(",") if c.strip())
        rows = matrix(bench, args.quick, seed, lambda s: print(s, file=sys.stderr, flush=True), only)
    print(f"seed {seed}{' (quick)' if args.quick else ''}")
    print(render(rows), end="")
    for row in rows:
        for note in row.notes:
            print(f"  {row.name}: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
