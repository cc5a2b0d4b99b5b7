"""Fixtures for the end-to-end tests of kubectl-debugx (and of the test cluster itself).

Stable API (every e2e test of the product uses it; change it only with all callers):

* ``e2e`` (session) -> ``E2E`` with
    - ``kubeconfig: Path``            kubeconfig of the cluster under test
    - ``context: str | None``         context to use (None: the kubeconfig's current context)
    - ``limited_context: str | None`` a context whose user may only get/list/watch pods; on a real cluster
                                      None unless ``DEBUGX_E2E_LIMITED_CONTEXT`` is set
    - ``image: str``                  debug image with sh, ps, tcpdump, strace, curl
                                      (``DEBUGX_E2E_IMAGE``, default ``nicolaka/netshoot:v0.13``); also the
                                      image of the product's debug containers (see below)
    - ``nginx_image: str``            target image (``DEBUGX_E2E_NGINX_IMAGE``, default ``nginx:1.27``)
    - ``cluster: TestCluster | None`` the local test cluster, None on a real cluster (fault switches live there:
                                      ``cut_exec_after_bytes``, ``set_latency``, ``stop_apiserver``,
                                      ``start_apiserver``, ``set_ephemeral_containers_enabled``,
                                      ``restart_container``, ``rotate_logs``)
    - ``kubectl(*args, check=True, input=None, timeout=120) -> CompletedProcess`` the real kubectl with
      ``--kubeconfig`` (and ``--context``); text mode unless ``input`` is bytes
    - ``kubectl_limited(*args, ...)`` the same as the limited user (skips the test if there is none)
    - ``api() -> kubernetes.client.CoreV1Api`` for test code; ``api_client()`` for other API groups
    - ``env() -> dict`` environment for running the product (KUBECONFIG and KUBECTL_DEBUGX_IMAGE set)
* ``namespace`` (function) -> name of a fresh namespace, deleted after the test
* ``make_namespace(labels: dict | None = None) -> str`` (function) factory of more fresh namespaces
* ``make_pod(namespace, name, image=None, command=None, **spec_overrides) -> dict`` (function) creates a pod
  with one container and waits until it is Running (60 s); returns the pod as the API's JSON dict.
  The container is named ``nginx`` when ``image`` is None (the nginx image), else ``main``;
  ``spec_overrides`` are merged into ``spec`` (e.g. ``hostNetwork=True``, ``containers=[...]``);
  ``terminationGracePeriodSeconds`` defaults to 5 so that teardown is quick.
* ``nginx_pod`` (function) -> ``(namespace, pod name)`` of a Running nginx pod (container ``nginx``)
  in a fresh namespace.

Where: ``DEBUGX_E2E_KUBECONFIG`` set -> that real cluster (``DEBUGX_E2E_CONTEXT`` optional); otherwise the
local test cluster (tests/cluster), which needs root. Without root every e2e test is skipped with one
reason line; with ``CI=true`` they fail instead. Tests using ``e2e`` are marked ``e2e`` automatically.
During every test that uses ``e2e``, ``KUBECTL_DEBUGX_IMAGE`` is set to ``e2e.image`` in ``os.environ`` (unless
the user set it), so every run of the product, however started, uses the debug image under test rather than
its built-in default: ``DEBUGX_E2E_IMAGE`` alone picks the image. After each e2e test the local cluster's fault
switches are reset (latency 0, no exec cut, ephemeral
containers enabled, API server serving). At the end of the session the local cluster is stopped and the
fixture fails loudly if anything is left behind (processes, test namespaces, veth interfaces, mounts, temp dirs).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"
DEFAULT_NGINX_IMAGE = "nginx:1.27"
NAMESPACE_PREFIX = "e2e-"
RUNNING_TIMEOUT = 60.0
NAMESPACE_GONE_TIMEOUT = 120.0
# The product's own image override (kubectl_debugx/cli/workflow.py).
PRODUCT_IMAGE_ENV = "KUBECTL_DEBUGX_IMAGE"


@dataclass
class E2E:
    kubeconfig: Path
    context: str | None
    limited_context: str | None
    image: str
    nginx_image: str
    cluster: object | None = None  # tests.cluster.TestCluster
    _api_client: object | None = field(default=None, repr=False)

    def _kubectl_argv(self, context: str | None, args: tuple[str, ...]) -> list[str]:
        argv = ["kubectl", "--kubeconfig", str(self.kubeconfig)]
        if context:
            argv += ["--context", context]
        return argv + [str(a) for a in args]

    def _run(self, argv: list[str], check: bool, input: str | bytes | None, timeout: float
             ) -> subprocess.CompletedProcess:
        binary = isinstance(input, bytes)
        res = subprocess.run(argv, input=input, capture_output=True, text=not binary, timeout=timeout,
                             env=self.env())
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed with {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def kubectl(self, *args: str, check: bool = True, input: str | bytes | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        return self._run(self._kubectl_argv(self.context, args), check, input, timeout)

    def kubectl_limited(self, *args: str, check: bool = True, input: str | bytes | None = None,
                        timeout: float = 120) -> subprocess.CompletedProcess:
        if not self.limited_context:
            pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
        return self._run(self._kubectl_argv(self.limited_context, args), check, input, timeout)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.setdefault(PRODUCT_IMAGE_ENV, self.image)
        return env

    def api_client(self):
        if self._api_client is None:
            from kubernetes import config

            self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig),
                                                              context=self.context)
        return self._api_client

    def api(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client())


MARKER_ENV = "DEBUGX_E2E_SESSION"


def _leak_snapshot(marker: str) -> dict[str, set[str]]:
    """What a test cluster could leave behind, as comparable sets (compared before/after the session).

    Processes: every process carrying this session's marker in its environment (the kubelet's helpers,
    exec'd commands, kubectl and the product started by tests inherit it) and all their descendants
    (container processes get an environment of their own). Other clusters on the machine are not ours: neither
    are other xdist workers' (each has its own marker, and its own temp dir names, see tests/cluster/worker.py).
    Veths: the pod network's live in each cluster's own network namespace, so none should ever show up here."""
    from tests.cluster.worker import temp_prefix

    # Under pytest-xdist the other workers' clusters run meanwhile: their temp dirs are named after their worker.
    own_temp = (temp_prefix("debugx-cluster"), temp_prefix("test-kubelet"))
    snap: dict[str, set[str]] = {"processes": set(), "veths": set(), "mounts": set()}
    me = os.getpid()
    needle = f"{MARKER_ENV}={marker}".encode()
    parent: dict[int, int] = {}
    info: dict[int, str] = {}
    marked: set[int] = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        pid = int(d.name)
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            environ = (d / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        parent[pid] = int(stat[1])
        info[pid] = f"{pid}@{stat[19]} {cmd[:160]}"
        if needle in environ.split(b"\0"):
            marked.add(pid)
    for pid in parent:
        p, hops = pid, 0
        while p > 1 and hops < 64:
            if p in marked:
                if info[pid].split(" ", 1)[-1]:  # skip zombies and kernel threads (empty cmdline)
                    snap["processes"].add(info[pid])
                break
            p, hops = parent.get(p, 0), hops + 1
    try:
        out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True,
                             timeout=10).stdout
        # Ours are veth<N> on the cluster's br0 (tests/cluster/containers.py); another cluster on this machine
        # (the lab's CNI bridge: veth<8 hex> master k8slab0) adds and removes its own meanwhile.
        snap["veths"] = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                         if ":" in line and re.match(r"\d+: veth\d+@", line) and (
                             " master " not in line or " master br0 " in line)}
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4]
            if any(prefix in mnt for prefix in own_temp):
                snap["mounts"].add(mnt)
    except OSError:
        pass
    return snap


def _wait(cond: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def _namespace_exists(e2e: E2E, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        e2e.api().read_namespace(name)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


NO_ROOT_REASON = "e2e tests need root to run the local test cluster (or set DEBUGX_E2E_KUBECONFIG)"
# Where the skips are reported (this definition's line), see pytest_runtest_makereport.
_NO_ROOT_LINE = next(n for n, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                     if line.startswith("NO_ROOT_REASON ="))


# Where the run starts (./build.sh test runs pytest-xdist with --dist loadgroup --no-loadscope-reorder, which
# hands tests out in the order below): the longest tests and xdist groups first, so that none of them starts
# late and then runs alone at the end; then the other cluster tests; the unit tests last (short, they fill
# the gaps at the end). Seconds: one run on a 2-core machine with 4 workers.
START_FIRST = (
    "tests/e2e/test_reliability.py::",  # a bench: ~240 s
    "tests/clustertests/test_contract.py::test_case[",  # xdist group contract-replay: ~150 s
    "tests/e2e/test_workloads.py::test_a_pod_deleted_mid_capture_ends_alone",  # a 40 s capture
    "tests/clustertests/test_contract_tcpdump.py::",
    "tests/clustertests/test_contract.py::test_workload_case[",  # xdist group contract-workloads
    "tests/clustertests/test_contract.py::test_namespace_case[",
    "tests/e2e/test_cp.py::test_cp_ctrl_c_keeps_finished_files_and_stops_tar",
    "tests/clustertests/test_contract_lifetime.py::",
)


def _start_rank(item: pytest.Item) -> int:
    for rank, prefix in enumerate(START_FIRST):
        if item.nodeid.startswith(prefix):
            return rank
    return len(START_FIRST) + item.nodeid.startswith("tests/unit/")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "e2e" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=_start_rank)  # stable: the order within each rank stays the collection's


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Without root every e2e test skips for the same reason: report them all at one place, so that the
    short summary folds them into one line instead of one per test."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and isinstance(rep.longrepr, tuple) and rep.longrepr[2].endswith(NO_ROOT_REASON):
        rep.longrepr = (__file__, _NO_ROOT_LINE, rep.longrepr[2])



@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    image = os.environ.get("DEBUGX_E2E_IMAGE") or DEFAULT_IMAGE
    nginx_image = os.environ.get("DEBUGX_E2E_NGINX_IMAGE") or DEFAULT_NGINX_IMAGE
    real = os.environ.get("DEBUGX_E2E_KUBECONFIG")
    if real:
        yield E2E(Path(real), os.environ.get("DEBUGX_E2E_CONTEXT") or None,
                  os.environ.get("DEBUGX_E2E_LIMITED_CONTEXT") or None, image, nginx_image)
        return
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(NO_ROOT_REASON, pytrace=False)
        pytest.skip(NO_ROOT_REASON)

    from tests.cluster import TestCluster

    marker = secrets.token_hex(8)
    os.environ[MARKER_ENV] = marker  # inherited by every process the session starts (see _leak_snapshot)
    before = _leak_snapshot(marker)
    cluster = TestCluster()
    cluster.start()
    workdir = cluster.workdir
    kubelet_workdir = getattr(cluster.kubelet, "_workdir", None)
    env = E2E(cluster.kubeconfig, cluster.context, cluster.limited_context, image, nginx_image, cluster)
    created_namespaces = _SESSION_NAMESPACES
    try:
        yield env
    finally:
        problems: list[str] = []
        try:
            if cluster.apiserver is not None and not cluster.apiserver.serving:
                cluster.start_apiserver()  # a test left it stopped: we still need it to clean up
            left = [ns for ns in created_namespaces if _namespace_exists(env, ns)]
            for ns in left:
                env.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            if not _wait(lambda: not any(_namespace_exists(env, ns) for ns in created_namespaces),
                         NAMESPACE_GONE_TIMEOUT):
                problems.append(f"namespaces still present: {created_namespaces}")
        except Exception as e:  # noqa: BLE001 - report, then still stop the cluster
            problems.append(f"namespace cleanup failed: {e!r}")
        try:
            cluster.stop()
        except Exception as e:  # noqa: BLE001
            problems.append(f"cluster stop failed: {e!r}")

        def leaks() -> dict[str, set[str]]:
            after = _leak_snapshot(marker)
            return {k: after[k] - before[k] for k in after if after[k] - before[k]}

        _wait(lambda: not leaks(), 10)
        left_over = leaks()
        dirs = {str(d) for d in (workdir, kubelet_workdir) if d is not None and Path(d).exists()}
        if dirs:
            left_over["temp dirs"] = dirs
        for kind, items in left_over.items():
            problems.append(f"{kind} left behind: {sorted(items)}")
        if problems:
            pytest.fail("test cluster teardown: " + "; ".join(problems), pytrace=False)


_SESSION_NAMESPACES: list[str] = []


@pytest.fixture(autouse=True)
def _product_uses_e2e_image(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The product runs with the debug image under test: without this, on a real cluster it would pull its
    built-in default whatever DEBUGX_E2E_IMAGE says. In os.environ (not only in E2E.env()) because tests also
    start the product with subprocess directly; per test (monkeypatch), so unit tests never see it."""
    if "e2e" not in request.fixturenames or os.environ.get(PRODUCT_IMAGE_ENV):
        return
    monkeypatch.setenv(PRODUCT_IMAGE_ENV, request.getfixturevalue("e2e").image)


@pytest.fixture(autouse=True)
def _reset_test_cluster_switches(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that fails half-way must not leave latency, exec cuts or a stopped API server to the next one."""
    yield
    if "e2e" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("e2e").cluster
    if cluster is None or cluster.apiserver is None:
        return
    cluster.set_latency(0)
    cluster.cut_exec_after_bytes(None)
    cluster.set_ephemeral_containers_enabled(True)
    if not cluster.apiserver.serving:
        cluster.start_apiserver()


def _new_namespace_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"{NAMESPACE_PREFIX}{base}-{secrets.token_hex(3)}".replace("--", "-")


@pytest.fixture
def make_namespace(e2e: E2E, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    from kubernetes import client

    made: list[str] = []

    def make(labels: dict | None = None) -> str:
        name = _new_namespace_name(request)
        e2e.api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        made.append(name)
        _SESSION_NAMESPACES.append(name)
        return name

    yield make
    cluster = e2e.cluster
    if cluster is not None and cluster.apiserver is not None and not cluster.apiserver.serving:
        cluster.start_apiserver()  # the test stopped it (and failed before restarting it)
    for name in made:
        with contextlib.suppress(Exception):  # already gone, or the session teardown reports it
            e2e.api().delete_namespace(name)
    # The local cluster deletes fast: wait, so that a test's processes are gone before the next test.
    if e2e.cluster is not None:
        _wait(lambda: not any(_namespace_exists(e2e, n) for n in made), NAMESPACE_GONE_TIMEOUT)


@pytest.fixture
def namespace(make_namespace: Callable[..., str]) -> str:
    return make_namespace()


def _pod_summary(pod: dict) -> str:
    st = pod.get("status") or {}
    parts = [f"phase={st.get('phase')}"]
    for key in ("initContainerStatuses", "containerStatuses"):
        for c in st.get(key) or []:
            parts.append(f"{c.get('name')}={c.get('state')}")
    return ", ".join(parts)


@pytest.fixture
def make_pod(e2e: E2E) -> Callable[..., dict]:
    def make(namespace: str, name: str, image: str | None = None, command: list[str] | None = None,
             **spec_overrides) -> dict:
        container: dict = {"name": "nginx" if image is None else "main", "image": image or e2e.nginx_image}
        if command:
            container["command"] = list(command)
        spec: dict = {"containers": [container], "terminationGracePeriodSeconds": 5}
        spec.update(spec_overrides)
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                "spec": spec}
        api = e2e.api()
        api.create_namespaced_pod(namespace, body)
        pod: dict = {}

        def running() -> bool:
            nonlocal pod
            pod = api.api_client.sanitize_for_serialization(api.read_namespaced_pod(name, namespace))
            return (pod.get("status") or {}).get("phase") == "Running"

        if not _wait(running, RUNNING_TIMEOUT, 0.1):
            raise AssertionError(f"pod {namespace}/{name} not Running after {RUNNING_TIMEOUT:.0f}s: "
                                 f"{_pod_summary(pod)}")
        return pod

    return make


@pytest.fixture
def nginx_pod(namespace: str, make_pod: Callable[..., dict]) -> tuple[str, str]:
    make_pod(namespace, "nginx")
    return namespace, "nginx"
