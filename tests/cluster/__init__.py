"""A local Kubernetes test cluster: an API server speaking the real wire protocol, and a kubelet running pods
as real processes in real Linux namespaces (needs root).

    with TestCluster() as cluster:
        subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "get", "pods"])

See README.md in this directory for what it implements and where it deliberately differs from a real cluster,
and CONTRACT.md for the interface between the API server and the kubelet.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import time
from pathlib import Path

from . import dockermode
from .apiserver import ApiServer
from .kubeconfig import ADMIN_CONTEXT, LIMITED_CONTEXT, write_kubeconfig
from .pki import make_pki
from .rbac import Authorizer
from .worker import temp_prefix

__all__ = ["TestCluster", "ADMIN_CONTEXT", "LIMITED_CONTEXT"]

log = logging.getLogger("tests.cluster")


def _host_ip() -> str:
    """The address other machines would use for this node (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class TestCluster:
    """One API server + one kubelet (one node). start()/stop() or use as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, node_name: str = "debugx-node", workdir: Path | None = None,
                 kubelet_factory=None, runtime: str | None = None) -> None:
        self.node_name = node_name
        self.runtime = runtime or dockermode.runtime()  # "containerd" or "docker" (dockermode.py)
        self._workdir_given = workdir
        self._kubelet_factory = kubelet_factory
        self.workdir: Path | None = None
        self.apiserver: ApiServer | None = None
        self.kubelet = None
        self._kubeconfig: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> TestCluster:
        t0 = time.monotonic()
        self.workdir = self._workdir_given or Path(tempfile.mkdtemp(prefix=temp_prefix("debugx-cluster")))
        try:
            pki = make_pki(self.workdir / "pki")
            node_root = self.workdir / "node-root"
            (node_root / "var" / "log" / "pods").mkdir(parents=True, exist_ok=True)
            (node_root / "var" / "log" / "containers").mkdir(parents=True, exist_ok=True)
            host_ip = _host_ip()
            authorizer = Authorizer()
            self.apiserver = ApiServer(node_name=self.node_name, host_ip=host_ip, node_root=node_root,
                                       cert_file=pki.cert_file, key_file=pki.key_file, authorizer=authorizer)
            self.apiserver.runtime = self.runtime
            factory = self._kubelet_factory
            if factory is None:
                from .kubelet import Kubelet as factory  # noqa: N813 - the real kubelet by default
            self.kubelet = factory(self.node_name, node_root, host_ip, self.apiserver.on_status)
            self.kubelet.runtime = self.runtime
            self.kubelet.start()
            self.apiserver.kubelet = self.kubelet
            port = self.apiserver.start()
            self._kubeconfig = write_kubeconfig(
                self.workdir / "kubeconfig", f"https://127.0.0.1:{port}", pki.ca_pem,
                authorizer.admin_token, authorizer.limited_token,
            )
        except BaseException:
            self.stop()
            raise
        log.info("test cluster up in %.2fs: %s", time.monotonic() - t0, self._kubeconfig)
        return self

    def stop(self) -> None:
        """Stop everything and remove the temp dir. Idempotent."""
        errors = []
        if self.kubelet is not None:
            try:
                self.kubelet.stop()
            except Exception as e:  # noqa: BLE001 - keep cleaning up, report at the end
                errors.append(e)
            self.kubelet = None
        if self.apiserver is not None:
            try:
                self.apiserver.shutdown()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
            self.apiserver = None
        if self.workdir is not None and self._workdir_given is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        if errors:
            raise errors[0]

    def __enter__(self) -> TestCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what tests use --------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise RuntimeError("the test cluster is not started")
        return self._kubeconfig

    @property
    def context(self) -> str:
        return ADMIN_CONTEXT

    @property
    def limited_context(self) -> str:
        return LIMITED_CONTEXT

    @property
    def node_root(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "node-root"

    @property
    def server(self) -> str:
        assert self.apiserver is not None
        return f"https://127.0.0.1:{self.apiserver.port}"

    # -- test switches (used by e2e tests, never by the product) ----------------------------------------
    def restart_container(self, namespace: str, pod: str, container: str) -> None:
        self.kubelet.restart_container(namespace, pod, container)

    def rotate_logs(self, namespace: str, pod: str, container: str) -> None:
        self.kubelet.rotate_logs(namespace, pod, container)

    def cut_exec_after_bytes(self, n: int | None) -> None:
        """Abort the TCP connection of every exec stream once it has sent n stdout bytes (None: off)."""
        self.apiserver.exec_faults.cut_after_bytes = n

    def set_latency(self, seconds: float, path: str | None = None) -> None:
        """Delay every API request (including exec handshakes) by this much; with `path`, only the requests
        whose path contains it (e.g. "selfsubjectaccessreviews": an API server that hangs on access reviews)."""
        self.apiserver.latency = max(0.0, float(seconds))
        self.apiserver.latency_path = path

    def stop_apiserver(self) -> None:
        """Close the listener and all connections; pods keep running. start_apiserver() reopens the port."""
        self.apiserver.stop_serving()

    def start_apiserver(self) -> None:
        self.apiserver.start()

    def drop_watches(self) -> None:
        """End every open watch stream now (clients resume from their last resourceVersion)."""
        self.apiserver.drop_watches()

    def expire_watch_history(self) -> None:
        """Watches from any resourceVersion seen so far answer 410 Gone: the client has to list again."""
        self.apiserver.expire_watch_history()

    def set_watches_refused(self, refused: bool) -> None:
        """True: every watch request answers 503 ServiceUnavailable (lists and the rest still work)."""
        self.apiserver.watches_refused = refused

    def set_ephemeral_containers_enabled(self, enabled: bool) -> None:
        """False: pods/ephemeralcontainers answers 404 without details.name, like a cluster without the feature."""
        self.apiserver.ephemeral_containers_enabled = enabled
