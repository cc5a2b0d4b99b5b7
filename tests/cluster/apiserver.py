"""The test cluster's API server: Kubernetes REST + watch + exec WebSocket over HTTPS, on aiohttp.

It runs its own asyncio event loop on a background thread, so that synchronous test code (pytest, the
kubernetes client, subprocess kubectl) can use it freely. The store (store.py) lives on that loop; the
kubelet reports pod status from its own threads through `on_status`, which hops onto the loop with
call_soon_threadsafe so that watches see every change promptly.

URL layout handled (everything else is a 404 like the real server's):
  /version /healthz /livez /readyz /api /api/v1 /apis /apis/GROUP/VERSION
  /api/v1/{namespaces,nodes,pods,serviceaccounts}[/NAME[/SUBRESOURCE]]
  /api/v1/namespaces/NS/{pods,serviceaccounts}[/NAME[/{ephemeralcontainers,exec,log,token}]]
  /api/v1/nodes/NODE/proxy/logs/...           (the kubelet's /logs/ file server, via the node proxy)
  /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
  /apis/rbac.authorization.k8s.io/v1/{clusterroles,clusterrolebindings,namespaces/NS/{roles,rolebindings}}
  /openapi/v3[/GROUP-VERSION]                 (only what kubectl needs to leave field validation to us)

Sections: lifecycle, kubelet glue, dispatch (authn/authz), one handler group per resource, then module
helpers (selectors, CRI log rendering, node file serving, the few protobuf bodies kubectl sends) and the
server-side Tables `kubectl get` asks for. Validation and Pod Security live in admission.py.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import datetime as dt
import hashlib
import html
import json
import logging
import mimetypes
import os
import re
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import admission, dockermode, patch, protobuf, workloads
from .execws import ExecFaults, ExecRequest, serve_exec
from .rbac import Authorizer, User, binding_origin, forbidden_message, rules_from_policy
from .store import ApiError, Store, already_exists, bad_request, not_found, now_rfc3339

log = logging.getLogger("tests.cluster.apiserver")

VERSION_INFO = {
    "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
    "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.4", "gitCommit": "74cdb426ef6a1cd5bbd0b4fa8e5e3ae1c6f3ea85",
    "gitTreeState": "clean", "buildDate": "2025-08-12T00:00:00Z", "goVersion": "go1.24.5",
    "compiler": "gc", "platform": "linux/amd64",
}

# Verbs of objects kept as given (PATCH and PUT: patch.py, for kubectl apply, edit and replace).
FOLLOW_CHECK = 0.01  # seconds between two looks at a followed log: the kubelet is woken by fsnotify within ms
_SIMPLE_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# Core v1 resources served: (name, kind, namespaced, verbs, shortNames)
_CORE_RESOURCES = [
    ("namespaces", "Namespace", False, ["create", "delete", "get", "list", "patch", "update", "watch"], ["ns"]),
    ("nodes", "Node", False, ["get", "list", "watch"], ["no"]),
    ("nodes/proxy", "NodeProxyOptions", False, ["create", "delete", "get", "patch", "update"], None),
    ("pods", "Pod", True, ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
     ["po"]),
    ("pods/ephemeralcontainers", "Pod", True, ["get", "patch", "update"], None),
    ("pods/exec", "PodExecOptions", True, ["create", "get"], None),
    ("pods/log", "Pod", True, ["get"], None),
    ("pods/status", "Pod", True, ["get"], None),
    ("serviceaccounts", "ServiceAccount", True, _SIMPLE_VERBS, ["sa"]),
    ("serviceaccounts/token", "TokenRequest", True, ["create"], None),
    *workloads.CORE_RESOURCES,
]
_GROUPS = {
    "authorization.k8s.io": [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"], None),
    ],
    "rbac.authorization.k8s.io": [
        ("clusterrolebindings", "ClusterRoleBinding", False, _SIMPLE_VERBS, None),
        ("clusterroles", "ClusterRole", False, _SIMPLE_VERBS, None),
        ("rolebindings", "RoleBinding", True, _SIMPLE_VERBS, None),
        ("roles", "Role", True, _SIMPLE_VERBS, None),
    ],
    **workloads.GROUPS,
}
# Simple objects stored and served as given (no controller behind them).
_SIMPLE_KINDS = {
    ("", "serviceaccounts"): ("ServiceAccount", "v1", True),
    ("rbac.authorization.k8s.io", "roles"): ("Role", "rbac.authorization.k8s.io/v1", True),
    ("rbac.authorization.k8s.io", "rolebindings"): ("RoleBinding", "rbac.authorization.k8s.io/v1", True),
    ("rbac.authorization.k8s.io", "clusterroles"): ("ClusterRole", "rbac.authorization.k8s.io/v1", False),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (
        "ClusterRoleBinding", "rbac.authorization.k8s.io/v1", False),
}
_PATCH_TYPES = ("application/strategic-merge-patch+json", "application/json-patch+json",
                "application/merge-patch+json")
_FIELD_LABELS = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
    "spec.schedulerName": lambda o: o.get("spec", {}).get("schedulerName", ""),
    "spec.serviceAccountName": lambda o: o.get("spec", {}).get("serviceAccountName", ""),
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body, separators=(",", ":")).encode() + b"\n",
        content_type="application/json", headers={"Cache-Control": "no-cache, private"},
    )


def _error_response(e: ApiError) -> web.Response:
    if e.content_type == "text/plain":
        return web.Response(status=e.code, text=e.message, content_type="text/plain", charset="utf-8")
    return _json(e.status(), e.code)


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1")


@dataclass
class RequestInfo:
    verb: str
    group: str
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    rest: str = ""  # path after the subresource (node proxy)


_SEGMENT = re.compile(r"^[^/]+$")


def parse_path(method: str, path: str, query) -> RequestInfo | None:
    """Split a resource URL into its parts; None for non-resource URLs."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest or rest == [""]:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    tail = "/".join(rest[3:]) if len(rest) > 3 else ""
    if method == "GET":
        verb = "get" if name else "watch" if _truthy(query.get("watch")) else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
    return RequestInfo(verb, group, resource, sub, namespace, name, tail)


class ApiServer:
    """Owns the event loop thread, the HTTPS listener, the store and the glue to the kubelet."""

    def __init__(self, *, node_name: str, host_ip: str, node_root: Path, cert_file: Path, key_file: Path,
                 authorizer: Authorizer) -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        self.node_root = node_root
        self.authorizer = authorizer
        self.authorizer.bindings = self._binding_rules
        self.kubelet = None  # set by TestCluster before start(); see CONTRACT.md
        self.store = Store()
        self.exec_faults = ExecFaults()
        self.latency = 0.0
        self.latency_path: str | None = None  # test switch: the latency only for paths containing this
        self.watch_expired_before = 0  # test switch: a watch from an older resourceVersion gets 410 Gone
        self.watches_refused = False  # test switch: every watch request answers 503
        self.ephemeral_containers_enabled = True
        self.runtime = "containerd"  # or "docker" (dockermode.py): set by TestCluster before start()
        self.workloads = workloads.Workloads(self)
        self.port = 0
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.load_cert_chain(str(cert_file), str(key_file))
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="debugx-apiserver", daemon=True)
        self._runner: web.AppRunner | None = None
        self._background: set[asyncio.Future] = set()
        # Kubelet calls go through one thread so that they keep their order (run_pod before sync_ephemeral).
        self._kubelet_calls = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kubelet-call")
        self._exec_pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="exec-start")
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> int:
        if not self._thread.is_alive():
            self._thread.start()
        if not self._started:
            self._call(self._init_objects())
            self._started = True
        self._call(self._serve())
        return self.port

    def stop_serving(self) -> None:
        """Close the listener and every connection (watches, exec streams); the store is kept."""
        self._call(self._unserve())

    def shutdown(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self._unserve())
            self._call(self._cancel_background())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()
            self._kubelet_calls.shutdown(wait=False, cancel_futures=True)
            self._exec_pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        if self._runner is not None:
            return
        # Go's default header limit is 1 MiB: exec URLs carrying long scripts must fit, as on a real server.
        app = web.Application(middlewares=[self._middleware], client_max_size=64 << 20,
                              handler_args={"max_line_size": 1 << 20, "max_field_size": 1 << 20})
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a watch or log stream whose client went away ends at once (exec streams are
        # protected: their process and output drain live in a task of their own, see execws).
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.25,
                               handler_cancellation=True)
        await runner.setup()
        # The first start binds a free port chosen by the kernel; restarts reuse it so kubeconfigs stay valid.
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self._ssl, reuse_address=True,
                           backlog=256)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    def drop_watches(self) -> None:
        """End every open watch stream (a clean end of the chunked response), as a real API server does at
        its timeout or on restart; clients resume from the last resourceVersion they saw."""
        self._loop.call_soon_threadsafe(self.store.close_watchers)

    def expire_watch_history(self) -> None:
        """From now on a watch from any resourceVersion up to now answers 410 Gone (Expired), as when etcd
        compacted the history the client would resume from: the client must list again."""
        self.watch_expired_before = self.store.resource_version

    async def _unserve(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self.store.close_watchers()
            await runner.cleanup()

    async def _cancel_background(self) -> None:
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=2)

    def _keep(self, task: asyncio.Future) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def serving(self) -> bool:
        return self._runner is not None

    # -- initial objects -------------------------------------------------------------------------------
    async def _init_objects(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create_namespace_obj({"metadata": {"name": ns}})
        info = {
            "machineID": _read("/etc/machine-id"), "systemUUID": _read("/etc/machine-id"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": os.uname().release,
            "osImage": _os_image(), "containerRuntimeVersion": dockermode.runtime_version(self.runtime),
            "kubeletVersion": VERSION_INFO["gitVersion"], "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        }
        if self.kubelet is not None and hasattr(self.kubelet, "node_info"):
            try:
                info.update(self.kubelet.node_info() or {})
            except Exception:  # noqa: BLE001 - a node without runtime details is still a node
                log.exception("kubelet.node_info failed")
        now = now_rfc3339()
        cond = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        cpu = str(os.cpu_count() or 1)
        mem_ki = _mem_ki()
        node = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {
                "name": self.node_name,
                "labels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": self.node_name,
                           "kubernetes.io/os": "linux"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": {},
            "status": {
                "capacity": {"cpu": cpu, "ephemeral-storage": "100Gi", "hugepages-1Gi": "0",
                             "hugepages-2Mi": "0", "memory": f"{mem_ki}Ki", "pods": "110"},
                "allocatable": {"cpu": cpu, "ephemeral-storage": "100Gi", "hugepages-1Gi": "0",
                                "hugepages-2Mi": "0", "memory": f"{mem_ki}Ki", "pods": "110"},
                "conditions": [{"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now,
                                "reason": r, "message": m} for t, s, r, m in cond],
                "addresses": [{"type": "InternalIP", "address": self.host_ip},
                              {"type": "Hostname", "address": self.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": info,
                "images": [],
            },
        }
        self.store.create("nodes", None, node)

    # -- kubelet glue ------------------------------------------------------------------------------------
    def on_status(self, namespace: str, name: str, status: dict) -> None:
        """Kubelet callback (any thread)."""
        with contextlib.suppress(RuntimeError):  # loop closed: the cluster is stopping
            self._loop.call_soon_threadsafe(self._apply_status, namespace, name, copy.deepcopy(status))

    def _apply_status(self, namespace: str, name: str, status: dict) -> None:
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            return
        old = pod.get("status") or {}
        new = dict(status)
        new.setdefault("qosClass", old.get("qosClass", "BestEffort"))
        # The kubelet does not own PodScheduled (the scheduler does); keep it when the kubelet leaves it out.
        conds = list(new.get("conditions") or [])
        sched = [c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"]
        if sched and not any(c.get("type") == "PodScheduled" for c in conds):
            new["conditions"] = conds + sched
        if new == old:
            return
        pod = copy.deepcopy(pod)
        pod["status"] = new
        self.store.update("pods", namespace, pod)

    def _kubelet_call(self, method: str, *args) -> None:
        if self.kubelet is None:
            return
        fn = getattr(self.kubelet, method)

        def run() -> None:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a kubelet bug must not take the API server down
                log.exception("kubelet.%s failed", method)

        self._kubelet_calls.submit(run)

    def _schedule(self, namespace: str, name: str, uid: str) -> None:
        pod = self.store.get("pods", namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        pod = copy.deepcopy(pod)
        if not pod["spec"].get("nodeName"):
            pod["spec"]["nodeName"] = self.node_name
        conds = pod["status"].setdefault("conditions", [])
        if not any(c.get("type") == "PodScheduled" for c in conds):
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339()})
        pod = self.store.update("pods", namespace, pod)
        if pod["spec"]["nodeName"] == self.node_name:
            self._kubelet_call("run_pod", copy.deepcopy(pod))

    def _pod_gone(self, namespace: str, name: str, uid: str) -> None:
        pod = self.store.get("pods", namespace, name)
        if pod is not None and pod["metadata"]["uid"] == uid:
            # The kubelet's final delete is a grace-0 delete: watchers see deletionGracePeriodSeconds 0 (and the
            # deletionTimestamp moved back to now), then DELETED (recordings/21-watch-pods-app-web-rollout-restart).
            if pod["metadata"].get("deletionTimestamp") and pod["metadata"].get("deletionGracePeriodSeconds"):
                pod = copy.deepcopy(pod)
                pod["metadata"]["deletionTimestamp"] = now_rfc3339()
                pod["metadata"]["deletionGracePeriodSeconds"] = 0
                self.store.update("pods", namespace, pod)
            self.store.delete("pods", namespace, name)
        self._maybe_finish_namespace(namespace)

    # -- middleware and dispatch ---------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        if self.latency and (self.latency_path is None or self.latency_path in request.path):
            await asyncio.sleep(self.latency)
        try:
            resp = await handler(request)
        except ApiError as e:
            return _error_response(e)
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:  # noqa: BLE001 - answer like the apiserver does on a panic
            log.exception("internal error on %s %s", request.method, request.path)
            return _error_response(ApiError(500, "InternalError", f"Internal error occurred: {e}",
                                            {"causes": [{"message": str(e)}]}))
        for text in request.get(_WARNINGS, ()):
            if not resp.prepared:
                escaped = text.replace("\\", "\\\\").replace('"', '\\"')
                resp.headers.add("Warning", f'299 - "{escaped}"')
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        user = self.authorizer.authenticate(request.headers.get("Authorization"))
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user = self._impersonated(user, request)
        path = request.path
        if path in ("/version", "/version/"):
            return _json(VERSION_INFO)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain", charset="utf-8")
        if path in ("/api", "/api/"):
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})
        if path in ("/api/v1", "/api/v1/"):
            return _json(_resource_list("v1", _CORE_RESOURCES))
        if path in ("/apis", "/apis/"):
            # Plain APIGroupList even when aggregated discovery is asked for: clients fall back to it.
            return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in _GROUPS]})
        m = re.fullmatch(r"/apis/([^/]+)/v1/?", path)
        if m and m.group(1) in _GROUPS:
            return _json(_resource_list(f"{m.group(1)}/v1", _GROUPS[m.group(1)]))
        if path.startswith("/openapi/v3"):
            return self._openapi_v3(path)
        info = parse_path(request.method, path, request.query)
        if info is None or not self._known(info):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        self._authorize(user, info)
        return await self._handle(request, user, info)

    def _impersonated(self, user: User, request: web.Request) -> User:
        """Impersonate-User, -Group (one header line per group) and -Uid, as the real API server's impersonation
        filter reads them, on every request (REST, watch, exec): the requester needs `impersonate` on `users`
        (`serviceaccounts` in NS for system:serviceaccount:NS:NAME), on `groups` and on `uids`
        (authentication.k8s.io), else 403 `users "X" is forbidden: User "Y" cannot impersonate resource
        "users" in API group "" at the cluster scope`. The user acted as gets the groups given (a service
        account with none: its own two), plus system:authenticated; its rights come from stored bindings and,
        for a user of ours by that name, from its static rules. Not modelled: Impersonate-Extra-*, and groups
        or a uid without a user (refused by the real server; clients refuse it before sending)."""
        name = request.headers.get("Impersonate-User")
        if not name:
            return user
        groups = list(request.headers.getall("Impersonate-Group", []))
        uid = request.headers.get("Impersonate-Uid")
        sa = re.fullmatch(r"system:serviceaccount:([^:]+):([^:]+)", name)
        checks = [("serviceaccounts", "", sa.group(2), sa.group(1)) if sa else ("users", "", name, None)]
        checks += [("groups", "", g, None) for g in groups]
        checks += [("uids", "authentication.k8s.io", uid, None)] if uid else []
        for resource, group, obj, namespace in checks:
            if not self.authorizer.allowed(user, "impersonate", group, resource, "", namespace):
                raise ApiError(403, "Forbidden", forbidden_message(user, "impersonate", group, resource, "", namespace,
                                                                   obj), {"name": obj, "kind": resource})
        if sa and not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa.group(1)}"]
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")
        return User(name, tuple(groups), self.authorizer.static_rules(name))

    def _openapi_v3(self, path: str) -> web.Response:
        """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
        (fieldValidation on PATCH operations), so it does not download schemas to validate client-side."""
        gvs = {"api/v1": ("", _CORE_RESOURCES)}
        gvs.update({f"apis/{g}/v1": (g, res) for g, res in _GROUPS.items()})
        rel = path[len("/openapi/v3"):].strip("/")
        if not rel:
            return _json({"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=0"} for gv in gvs}})
        if rel not in gvs:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        group, resources = gvs[rel]
        paths = {}
        for name, kind, namespaced, verbs, _ in resources:
            if "/" in name or "patch" not in verbs:
                continue
            prefix = "/api/v1" if not group else f"/apis/{group}/v1"
            url = f"{prefix}/namespaces/{{namespace}}/{name}/{{name}}" if namespaced else f"{prefix}/{name}/{{name}}"
            paths[url] = {"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": "v1", "kind": kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                               {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                               {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }}
        return _json({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.4"}, "paths": paths})

    def _known(self, info: RequestInfo) -> bool:
        if info.group == "":
            return any(r[0] == info.resource for r in _CORE_RESOURCES)
        return info.group in _GROUPS and any(r[0] == info.resource for r in _GROUPS[info.group])

    def _authorize(self, user: User, info: RequestInfo) -> None:
        # A namespace object is authorized within itself (RBAC treats /namespaces/X as namespace X).
        ns = info.name if info.resource == "namespaces" and info.namespace is None else info.namespace
        if self.authorizer.allowed(user, info.verb, info.group, info.resource, info.subresource, ns):
            return
        msg = forbidden_message(user, info.verb, info.group, info.resource, info.subresource, ns, info.name)
        details: dict = {"kind": info.resource}
        if info.group:
            details = {"group": info.group, "kind": info.resource}
        if info.name:
            details = {"name": info.name, **details}
        raise ApiError(403, "Forbidden", msg, details)

    async def _handle(self, request: web.Request, user: User, info: RequestInfo) -> web.StreamResponse:
        r, sub, verb = info.resource, info.subresource, info.verb
        if info.group == "authorization.k8s.io":
            if verb != "create":
                raise _method_not_allowed()
            return self._ssar(user, await _body(request))
        if (info.group, r) in _SIMPLE_KINDS:
            if r == "serviceaccounts" and sub == "token":
                return await self._token_request(request, info)
            return await self._simple(request, info)
        if r == "namespaces":
            return await self._namespaces(request, info)
        if (info.group, r) in workloads.KINDS and (not sub or (sub == "scale" and r in workloads.SCALABLE)):
            return await patch.apply_creates_workload(self, request, info) or await self.workloads.handle(request,
                                                                                                         info)
        if r == "nodes":
            if sub == "proxy":
                return await self._node_proxy(request, info)
            if verb == "get":
                return self._one(request, "nodes", self._get_or_404("nodes", None, info.name))
            if verb == "list":
                return self._many(request, "nodes", "NodeList", self._filtered(request, "nodes", None))
            if verb == "watch":
                return await self._watch(request, "nodes", None)
            raise _method_not_allowed()
        if r == "pods":
            if sub == "":
                return await self._pods(request, user, info)
            if sub == "ephemeralcontainers":
                return await self._ephemeral(request, info)
            if sub == "exec":
                return await self._exec(request, info)
            if sub == "log":
                return await self._log(request, info)
            if sub == "status" and verb == "get":
                return _json(self._get_or_404("pods", info.namespace, info.name))
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    # -- helpers -----------------------------------------------------------------------------------------
    def _get_or_404(self, resource: str, namespace: str | None, name: str | None, group: str = "") -> dict:
        obj = self.store.get(resource, namespace, name or "")
        if obj is None:
            raise not_found(resource, name or "", group)
        return obj

    def _list_body(self, kind: str, items: list[dict], api_version: str = "v1") -> dict:
        out = []
        for o in items:
            o = dict(o)
            o.pop("kind", None)
            o.pop("apiVersion", None)
            out.append(o)
        return {"kind": kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": out}

    def _one(self, request: web.Request, resource: str, obj: dict) -> web.Response:
        if wants_table(request):
            return _json(to_table(resource, [obj], obj["metadata"].get("resourceVersion", "")))
        return _json(obj)

    def _many(self, request: web.Request, resource: str, kind: str, items: list[dict]) -> web.Response:
        if wants_table(request):
            return _json(to_table(resource, items, str(self.store.resource_version)))
        items, more = self._page(request, items)
        body = self._list_body(kind, items)
        body["metadata"].update(more)
        return _json(body)

    def _page(self, request: web.Request, items: list[dict]) -> tuple[list[dict], dict]:
        """`limit` and `continue` as the real server pages (recordings/20-list-pods-app-web-limit2*): the token
        names the last key given; `remainingItemCount` only when no selector is given."""
        def key(o: dict) -> str:
            return f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"

        token = request.query.get("continue")
        if token:
            try:
                start = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))["start"]
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                  "(version meta.k8s.io/v1)") from None
            items = [o for o in items if key(o) > start]
        limit = request.query.get("limit", "")
        if not limit.isdigit() or int(limit) <= 0 or len(items) <= int(limit):
            return items, {}
        page = items[:int(limit)]
        start = key(page[-1]) + "\u0000"
        token = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": self.store.resource_version,
                                             "start": start}, separators=(",", ":")).encode()).decode()
        more: dict = {"continue": token.rstrip("=")}
        if not request.query.get("labelSelector") and not request.query.get("fieldSelector"):
            more["remainingItemCount"] = len(items) - len(page)
        return page, more

    def _selector(self, request: web.Request) -> Callable[[dict], bool]:
        label = parse_label_selector(request.query.get("labelSelector", ""))
        field = parse_field_selector(request.query.get("fieldSelector", ""))
        return lambda o: label(o) and field(o)

    def _filtered(self, request: web.Request, resource: str, namespace: str | None) -> list[dict]:
        pred = self._selector(request)
        return [o for o in self.store.list(resource, namespace) if pred(o)]

    async def _watch(self, request: web.Request, resource: str, namespace: str | None) -> web.StreamResponse:
        if self.watches_refused:
            raise ApiError(503, "ServiceUnavailable", "watches are refused (test switch)", {})
        pred = self._selector(request)
        rv = request.query.get("resourceVersion", "")
        since = int(rv) if rv not in ("", "0") and rv.isdigit() else None
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        if since is not None and since < max(self.store.oldest_replayable_rv(), self.watch_expired_before):
            await resp.prepare(request)
            gone = ApiError(410, "Expired", f"too old resource version: {since} ({self.store.resource_version})")
            await resp.write(json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n")
            return resp
        # Register before the first await so that no event can slip between the request and the stream.
        w = self.store.watch(resource, namespace, pred, since)
        table = wants_table(request)
        loop = asyncio.get_running_loop()
        try:
            await resp.prepare(request)
        except BaseException:
            self.store.unwatch(w)
            raise
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(w.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if ev is None:
                    break
                obj = to_table(resource, [ev.obj], ev.obj["metadata"]["resourceVersion"]) if table else ev.obj
                await resp.write(json.dumps({"type": ev.type, "object": obj},
                                            separators=(",", ":")).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.store.unwatch(w)
        return resp

    # -- namespaces ----------------------------------------------------------------------------------------
    def _create_namespace_obj(self, body: dict) -> dict:
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + admission.random_suffix()
        if not name or len(name) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            raise admission.invalid("Namespace", name, admission._name_errors(name, "metadata.name")
                                    or [admission.FieldError("Required", "metadata.name")])
        existing = self.store.get("namespaces", None, name)
        if existing is not None:
            if existing["metadata"].get("deletionTimestamp"):
                raise ApiError(409, "AlreadyExists",
                               f'object is being deleted: namespaces "{name}" already exists',
                               {"name": name, "kind": "namespaces"})
            raise already_exists("namespaces", name)
        labels = dict(meta.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = name
        obj = {"kind": "Namespace", "apiVersion": "v1",
               "metadata": {"name": name, "labels": labels},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if meta.get("annotations"):
            obj["metadata"]["annotations"] = dict(meta["annotations"])
        obj = self.store.create("namespaces", None, obj)
        self.store.create("serviceaccounts", name, {"kind": "ServiceAccount", "apiVersion": "v1",
                                                    "metadata": {"name": "default", "namespace": name}})
        return obj

    async def _namespaces(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        verb = info.verb
        if verb == "create":
            body = await _body(request)
            if _truthy_dry(request):
                raise ApiError(400, "BadRequest", "dryRun is not supported for namespaces by the test cluster")
            return _json(self._create_namespace_obj(body), 201)
        if verb == "list":
            return self._many(request, "namespaces", "NamespaceList", self._filtered(request, "namespaces", None))
        if verb == "watch":
            return await self._watch(request, "namespaces", None)
        if verb == "get":
            return self._one(request, "namespaces", self._get_or_404("namespaces", None, info.name))
        if verb == "delete":
            return _json(self._delete_namespace(info.name or ""))
        if verb in ("patch", "update"):
            return _json(await self._update_namespace(request, info))
        raise _method_not_allowed()

    async def _update_namespace(self, request: web.Request, info: RequestInfo) -> dict:
        ns = copy.deepcopy(self._get_or_404("namespaces", None, info.name))
        body = await _body(request)
        ctype = request.content_type
        if request.method == "PUT":
            new = body
        elif ctype == "application/json-patch+json":
            new = admission.json_patch(ns, body)
        else:
            new = admission.merge_patch(ns, body)
        labels = dict((new.get("metadata") or {}).get("labels") or {})
        labels["kubernetes.io/metadata.name"] = ns["metadata"]["name"]
        ns["metadata"]["labels"] = labels
        if (new.get("metadata") or {}).get("annotations") is not None:
            ns["metadata"]["annotations"] = new["metadata"]["annotations"]
        return self.store.update("namespaces", None, ns)

    def _delete_namespace(self, name: str) -> dict:
        ns = self._get_or_404("namespaces", None, name)
        if ns["metadata"].get("deletionTimestamp"):
            return ns
        ns = copy.deepcopy(ns)
        ns["metadata"]["deletionTimestamp"] = now_rfc3339()
        ns["status"]["phase"] = "Terminating"
        ns = self.store.update("namespaces", None, ns)
        for pod in self.store.list("pods", name):
            self._delete_pod(pod, None)
        for resource in ("serviceaccounts", "roles", "rolebindings"):
            for o in self.store.list(resource, name):
                self.store.delete(resource, name, o["metadata"]["name"])
        self.workloads.delete_namespace(name)
        # Let the DELETE answer go out with phase Terminating before the object disappears.
        self._loop.call_soon(self._maybe_finish_namespace, name)
        return ns

    def _maybe_finish_namespace(self, name: str) -> None:
        ns = self.store.get("namespaces", None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if self.store.list("pods", name):
            return
        self.store.delete("namespaces", None, name)

    # -- pods ------------------------------------------------------------------------------------------------
    async def _pods(self, request: web.Request, user: User, info: RequestInfo) -> web.StreamResponse:
        verb, ns = info.verb, info.namespace
        if verb == "list":
            return self._many(request, "pods", "PodList", self._filtered(request, "pods", ns))
        if verb == "watch":
            return await self._watch(request, "pods", ns)
        if verb == "get":
            return self._one(request, "pods", self._get_or_404("pods", ns, info.name))
        if verb == "create":
            return _json(await self._create_pod(request, ns or ""), 201)
        if verb == "delete":
            pod = self._get_or_404("pods", ns, info.name)
            grace = request.query.get("gracePeriodSeconds")
            body = await _body(request, optional=True)
            if grace is None and isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                grace = body["gracePeriodSeconds"]
            if _truthy_dry(request):
                return _json(pod)
            return _json(self._delete_pod(pod, int(grace) if grace is not None else None))
        if verb in ("patch", "update"):
            return _json(await self._update_pod(request, info))
        if verb == "deletecollection":
            for pod in self._filtered(request, "pods", ns):
                self._delete_pod(pod, None)
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        raise _method_not_allowed()

    async def _create_pod(self, request: web.Request, namespace: str) -> dict:
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        return self.create_pod_object(namespace, body, request)

    def create_pod_object(self, namespace: str, body: dict, request: web.Request | None = None) -> dict:
        """Admit, store and schedule a pod (a POST, or a workload controller creating one: no request)."""
        ns = self.store.get("namespaces", None, namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        pod = admission.default_pod(copy.deepcopy(body), namespace)
        pod["kind"], pod["apiVersion"] = "Pod", "v1"
        name = pod["metadata"].get("name") or ""
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: unable to create new content in '
                           f"namespace {namespace} because it is being terminated",
                           {"name": name, "kind": "pods"})
        errs = admission.validate_pod_create(pod)
        if errs:
            raise admission.invalid("Pod", name, errs)
        denied = admission.forbidden_by_psa(pod, ns["metadata"].get("labels") or {})
        if denied:
            raise denied
        if request is not None:
            _warn(request, admission.psa_warning(pod, ns["metadata"].get("labels") or {}))
        if self.store.get("pods", namespace, name) is not None:
            raise already_exists("pods", name)
        if request is not None and _truthy_dry(request):
            return pod
        pod = self.store.create("pods", namespace, pod)
        self._loop.call_soon(self._schedule, namespace, name, pod["metadata"]["uid"])
        return pod

    async def _update_pod(self, request: web.Request, info: RequestInfo) -> dict:
        """PATCH/PUT of a pod: labels, annotations and the few mutable spec fields; status is ignored."""
        ns, name = info.namespace, info.name or ""
        body = await _body(request)
        pod = self._get_or_404("pods", ns, name)
        ctype = request.content_type
        if info.verb == "update":
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != pod["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": the object '
                               "has been modified; please apply your changes to the latest version and try again",
                               {"name": name, "kind": "pods"})
            new = body
        elif ctype == "application/strategic-merge-patch+json":
            new = admission.strategic_merge(pod, body)
        elif ctype == "application/json-patch+json":
            new = admission.json_patch(pod, body)
        elif ctype == "application/merge-patch+json":
            new = admission.merge_patch(pod, body)
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: '
                           f'{", ".join(_PATCH_TYPES)}', {})
        if not isinstance(new, dict):
            raise bad_request("the body of the request was in an unknown format")
        errs = admission.validate_pod_update(pod, new)
        if errs:
            raise admission.invalid("Pod", name, errs)
        updated = copy.deepcopy(pod)
        meta = new.get("metadata") or {}
        for key in ("labels", "annotations"):
            if meta.get(key):
                updated["metadata"][key] = dict(meta[key])
            else:
                updated["metadata"].pop(key, None)
        new_spec = new.get("spec") or {}
        for key in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations"):
            if key in new_spec:
                updated["spec"][key] = copy.deepcopy(new_spec[key])
        for group in ("containers", "initContainers"):
            images = {c.get("name"): c.get("image") for c in new_spec.get(group) or []}
            for c in updated["spec"].get(group) or []:
                c["image"] = images.get(c["name"]) or c["image"]
        if updated == pod:
            return pod
        if updated["spec"] != pod["spec"]:
            updated["metadata"]["generation"] = pod["metadata"].get("generation", 1) + 1
        if _truthy_dry(request):
            return updated
        return self.store.update("pods", ns, updated)

    def _delete_pod(self, pod: dict, grace: int | None) -> dict:
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        if pod["metadata"].get("deletionTimestamp") and grace != 0:
            return pod
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        phase = (pod.get("status") or {}).get("phase")
        if grace == 0 or not pod["spec"].get("nodeName") or phase in ("Succeeded", "Failed"):
            # Nothing (left) running: the real server deletes such pods at once.
            gone = self.store.delete("pods", ns, name) or pod
            if pod["spec"].get("nodeName") == self.node_name:
                self._kubelet_call("delete_pod", ns, name, 0, lambda: None)
            self._loop.call_soon(self._maybe_finish_namespace, ns)
            return gone
        pod = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        pod["metadata"]["generation"] = pod["metadata"].get("generation", 1) + 1
        pod = self.store.update("pods", ns, pod)

        def on_gone() -> None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._pod_gone, ns, name, uid)

        self._kubelet_call("delete_pod", ns, name, grace, on_gone)
        # Safety net so that a kubelet that never reports back cannot wedge namespace deletion forever.
        self._loop.call_later(grace + 30, self._force_gone, ns, name, uid)
        return pod

    def _force_gone(self, ns: str, name: str, uid: str) -> None:
        pod = self.store.get("pods", ns, name)
        if pod is not None and pod["metadata"]["uid"] == uid:
            log.warning("kubelet never reported pod %s/%s gone; removing it", ns, name)
            self._pod_gone(ns, name, uid)

    # -- ephemeral containers ----------------------------------------------------------------------------
    async def _ephemeral(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        if not self.ephemeral_containers_enabled:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        ns, name, verb = info.namespace, info.name or "", info.verb
        if verb == "get":
            return _json(self._get_or_404("pods", ns, name))
        if verb not in ("patch", "update"):
            raise _method_not_allowed()
        body = await _body(request)
        pod = self._get_or_404("pods", ns, name)
        current = pod["spec"].get("ephemeralContainers") or []
        ctype = request.content_type
        if verb == "update":
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != pod["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods "{name}": the object '
                               "has been modified; please apply your changes to the latest version and try again",
                               {"name": name, "kind": "pods"})
            new = (body.get("spec") or {}).get("ephemeralContainers") or []
        elif ctype == "application/strategic-merge-patch+json":
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            new = admission.smp_ephemeral(current, body.get("spec") or {})
        elif ctype == "application/json-patch+json":
            new = admission.json_patch(pod, body).get("spec", {}).get("ephemeralContainers") or []
        elif ctype == "application/merge-patch+json":
            new = (admission.merge_patch(pod, body).get("spec") or {}).get("ephemeralContainers") or []
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: '
                           f'{", ".join(_PATCH_TYPES)}, application/apply-patch+yaml')
        if not isinstance(new, list) or not all(isinstance(c, dict) for c in new):
            raise bad_request("spec.ephemeralContainers must be a list of objects")
        new = [admission.default_container(copy.deepcopy(c), ephemeral=True) for c in new]
        errs = admission.validate_ephemeral_update(pod, new)
        if errs:
            raise admission.invalid("Pod", name, errs)
        if new == current:
            return _json(pod)  # identical resend: a no-op, no new resourceVersion
        candidate = copy.deepcopy(pod)
        candidate["spec"]["ephemeralContainers"] = new
        candidate["metadata"]["generation"] = pod["metadata"].get("generation", 1) + 1
        nsobj = self.store.get("namespaces", None, ns) or {"metadata": {}}
        denied = admission.forbidden_by_psa(candidate, nsobj["metadata"].get("labels") or {})
        if denied:
            raise denied
        _warn(request, admission.psa_warning(candidate, nsobj["metadata"].get("labels") or {}))
        if _truthy_dry(request):
            return _json(candidate)
        stored = self.store.update("pods", ns, candidate)
        if stored["spec"].get("nodeName") == self.node_name:
            self._kubelet_call("sync_ephemeral", copy.deepcopy(stored))
        return _json(stored)

    # -- exec -------------------------------------------------------------------------------------------------
    async def _exec(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        from . import kubelet as kubelet_mod  # the kubelet's exception types (see CONTRACT.md)

        ns, name = info.namespace or "", info.name or ""
        q = request.query
        pod = self._get_or_404("pods", ns, name)
        container = q.get("container") or ""
        spec = pod["spec"]
        names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 + (spec.get("ephemeralContainers") or [])]
        if not container:
            regular = [c["name"] for c in spec.get("containers") or []]
            if len(regular) == 1:
                container = regular[0]
            else:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(regular)}]")
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
        command = q.getall("command", [])
        if not command:
            raise bad_request("you must specify at least 1 command")
        if "Upgrade" not in request.headers.get("Connection", "") and request.headers.get(
                "Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required")
        req = ExecRequest(ns, name, container, command, _truthy(q.get("stdin")), _truthy(q.get("stdout")),
                          _truthy(q.get("stderr")), _truthy(q.get("tty")))
        kubelet = self.kubelet
        if kubelet is None:
            raise ApiError(500, "InternalError", "no kubelet")

        def start():
            return kubelet.exec(ns, name, container, command, tty=req.tty)

        # The container is in the spec (checked above): if the kubelet does not know it (yet), it is simply
        # not running, which the real server answers with 'container not found ("X")'.
        not_running = (getattr(kubelet_mod, "ContainerNotFound", LookupError),
                       getattr(kubelet_mod, "ContainerNotRunning", ProcessLookupError))
        return await serve_exec(request, req, start, self.exec_faults, self._keep, _NeverRaised, not_running)

    # -- logs ---------------------------------------------------------------------------------------------------
    async def _log(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        ns, name = info.namespace or "", info.name or ""
        q = request.query
        pod = self._get_or_404("pods", ns, name)
        spec = pod["spec"]
        container = q.get("container") or ""
        regular = [c["name"] for c in spec.get("containers") or []]
        init = [c["name"] for c in spec.get("initContainers") or []]
        eph = [c["name"] for c in spec.get("ephemeralContainers") or []]
        if not container:
            if len(regular) == 1:
                container = regular[0]
            else:
                msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(regular)}]"
                if init:
                    msg += f" or one of the init containers: [{' '.join(init)}]"
                if eph:
                    msg += f" or one of the ephemeral containers: [{' '.join(eph)}]"
                raise bad_request(msg)
        if container not in regular + init + eph:
            raise bad_request(f"container {container} is not valid for pod {name}")
        previous = _truthy(q.get("previous"))
        status = _container_status(pod, container)
        path = None
        if self.kubelet is not None:
            path = await self._loop.run_in_executor(
                self._exec_pool, lambda: self.kubelet.log_path(ns, name, container, previous))
        if path is None:
            if previous:
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            waiting = ((status or {}).get("state") or {}).get("waiting")
            if waiting is not None or status is None:
                reason = (waiting or {}).get("reason", "ContainerCreating")
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
            return web.Response(body=b"", content_type="text/plain")
        tail = q.get("tailLines")
        tail_n = int(tail) if tail and tail.lstrip("-").isdigit() else None
        timestamps = _truthy(q.get("timestamps"))
        limit = q.get("limitBytes")
        data = await self._loop.run_in_executor(self._exec_pool, _read_bytes, Path(path))
        records = data.split(b"\n")
        if records and records[-1] == b"":
            records.pop()
        if tail_n is not None and tail_n >= 0:
            records = records[-tail_n:] if tail_n else []
        out = render_cri(records, timestamps, _since_filter(q.get("sinceSeconds"), q.get("sinceTime")))
        if not _truthy(q.get("follow")):
            if limit and limit.isdigit():
                out = out[: int(limit)]
            return web.Response(body=out, headers={"Content-Type": "text/plain",
                                                   "Cache-Control": "no-cache, private"})
        return await self._follow_log(request, Path(path), len(data), out, ns, name, container, timestamps)

    async def _follow_log(self, request: web.Request, path: Path, offset: int, first: bytes, ns: str, name: str,
                          container: str, timestamps: bool) -> web.StreamResponse:
        """The rest of a followed log, as the kubelet's ReadLogs sends it: it watches the open file (fsnotify),
        so a line goes out within milliseconds of its write (here: a stat every FOLLOW_CHECK); when the file
        is renamed (rotation, Docker's or the kubelet's) the open one is read to its end first (its Write
        events come before the Rename), then the new file from its start; it ends once the container is not
        running and nothing more came."""
        resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(first)
        pending = b""
        try:
            f = open(path, "rb")  # noqa: SIM115 (swapped for the new file on rotation, closed below)
            f.seek(offset)
        except OSError:
            f = None
        try:
            while True:
                await asyncio.sleep(FOLLOW_CHECK)
                chunk = b"" if f is None else f.read()
                try:
                    st = path.stat()
                except OSError:
                    st = None
                if st is not None and (f is None or os.fstat(f.fileno()).st_ino != st.st_ino):
                    if f is not None:
                        chunk += f.read()  # what was written before the rename
                        f.close()
                    try:
                        f = open(path, "rb")  # noqa: SIM115
                    except OSError:
                        f = None
                pending += chunk
                if b"\n" in pending:
                    complete, pending = pending.rsplit(b"\n", 1)
                    await resp.write(render_cri(complete.split(b"\n"), timestamps, None))
                pod = self.store.get("pods", ns, name)
                st_c = _container_status(pod, container) if pod else None
                running = bool(((st_c or {}).get("state") or {}).get("running"))
                if pod is None or (not running and not chunk):
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            if f is not None:
                f.close()
        return resp

    # -- node proxy (/logs/ of the kubelet) -----------------------------------------------------------------
    async def _node_proxy(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        self._get_or_404("nodes", None, info.name)
        rel = info.rest
        if not (rel == "logs" or rel.startswith("logs/")):
            return _page_not_found()
        base = (self.node_root / "var" / "log").resolve()
        sub = rel[len("logs"):].lstrip("/")
        target = _resolve_under(self.node_root, base, sub)
        if target is None or not target.exists():
            return _page_not_found()
        try:
            st = target.stat()
        except OSError:
            return _page_not_found()
        headers = {"Last-Modified": _http_date(st.st_mtime), "Cache-Control": "no-cache, private"}
        if target.is_dir():
            entries = []
            for p in sorted(target.iterdir(), key=lambda p: p.name):
                n = p.name + ("/" if p.is_dir() else "")
                entries.append(f'<a href="{urllib.parse.quote(n)}">{html.escape(n)}</a>\n')
            body = ('<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
                    + "".join(entries) + "</pre>\n")
            return web.Response(body=body.encode(), headers={**headers, "Content-Type": "text/html; charset=utf-8"})
        return await self._serve_file(request, target, st.st_size, headers)

    async def _serve_file(self, request: web.Request, path: Path, size: int, headers: dict) -> web.StreamResponse:
        """A node file as Go's http.ServeContent sends it: type by extension or sniffing, Accept-Ranges,
        one byte range if asked; streamed in chunks (log files can be large)."""
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError:
            return _page_not_found()
        start, end, status = 0, size, 200
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", "").strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size:
                return web.Response(status=416, text="invalid range: failed to overlap\n",
                                    headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        resp = web.StreamResponse(status=status, headers={
            **headers, "Content-Type": _go_content_type(path.name, head), "Accept-Ranges": "bytes"})
        resp.content_length = end - start
        await resp.prepare(request)
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = await self._loop.run_in_executor(self._exec_pool, f.read, min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    # -- authorization.k8s.io / rbac / serviceaccounts ----------------------------------------------------
    def _ssar(self, user: User, body: dict) -> web.Response:
        spec = (body or {}).get("spec") or {}
        ra = spec.get("resourceAttributes")
        reason = ""
        if ra is not None:
            allowed, reason = self.authorizer.decide(user, ra.get("verb", ""), ra.get("group", ""),
                                                     ra.get("resource", ""), ra.get("subresource", ""),
                                                     ra.get("namespace") or None)
        else:
            allowed = user.is_admin
        # A denied answer is just {allowed: false}; an allowed one names the binding (22-ssar-*).
        status: dict = {"allowed": allowed, **({"reason": reason} if reason else {})}
        return _json({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                      "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}, 201)

    async def _token_request(self, request: web.Request, info: RequestInfo) -> web.Response:
        ns, name = info.namespace or "", info.name or ""
        self._get_or_404("serviceaccounts", ns, name)
        body = await _body(request, optional=True) or {}
        seconds = int(((body.get("spec") or {}).get("expirationSeconds")) or 3600)
        token = self.authorizer.service_account_token(ns, name)
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _json({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                      "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
                      "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"],
                               "expirationSeconds": seconds, "boundObjectRef": None},
                      "status": {"token": token, "expirationTimestamp": expires}}, 201)

    async def _simple(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        kind, api_version, namespaced = _SIMPLE_KINDS[(info.group, info.resource)]
        ns = info.namespace if namespaced else None
        verb = info.verb
        if namespaced and ns is not None and verb == "create" and self.store.get("namespaces", None, ns) is None:
            raise not_found("namespaces", ns)
        if verb == "get":
            return self._one(request, info.resource, self._get_or_404(info.resource, ns, info.name, info.group))
        if verb == "list":
            items = self._filtered(request, info.resource, ns)
            if wants_table(request):
                return self._many(request, info.resource, f"{kind}List", items)
            return _json(self._list_body(f"{kind}List", items, api_version))
        if verb == "watch":
            return await self._watch(request, info.resource, ns)
        if verb == "delete":
            obj = self._get_or_404(info.resource, ns, info.name, info.group)
            self.store.delete(info.resource, ns, info.name or "")
            return _json(obj)
        if verb == "create":
            body = await _body(request)
            meta = dict(body.get("metadata") or {})
            name = meta.get("name") or ""
            if not name:
                raise admission.invalid(kind, name, [admission.FieldError("Required", "metadata.name",
                                                                          detail="name or generateName is required")])
            if self.store.get(info.resource, ns, name) is not None:
                raise already_exists(info.resource, name, info.group)
            obj = {k: v for k, v in body.items() if k not in ("metadata", "kind", "apiVersion")}
            meta = {k: v for k, v in meta.items() if k not in ("uid", "resourceVersion", "creationTimestamp")}
            if ns is not None:
                meta["namespace"] = ns
            full = {"kind": kind, "apiVersion": api_version, "metadata": meta, **obj}
            if _truthy_dry(request):
                return _json(full, 201)
            return _json(self.store.create(info.resource, ns, full), 201)
        if verb in ("patch", "update"):
            return await patch.change_simple(self, request, info, kind, api_version, ns)
        raise _method_not_allowed()

    def _binding_rules(self, user: User):
        """Rules granted to a user by stored (Cluster)RoleBindings."""
        rules = []
        for binding, scope in ([(b, b["metadata"].get("namespace")) for b in self.store.list("rolebindings")]
                               + [(b, None) for b in self.store.list("clusterrolebindings")]):
            subject = next((s for s in binding.get("subjects") or [] if _subject_matches(s, user)), None)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "Role":
                role = self.store.get("roles", scope, ref.get("name", ""))
            else:
                role = self.store.get("clusterroles", None, ref.get("name", ""))
            if role is not None:
                rules += rules_from_policy(role.get("rules") or [], scope, binding_origin(binding, subject))
        return rules


# ---------------------------------------------------------------------------------------------------------
# module helpers


class _NeverRaised(Exception):
    pass


def _subject_matches(subject: dict, user: User) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace')}:{subject.get('name')}"
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    return False


# As recorded (they are hashes of the storage version, stable across clusters of one version).
_STORAGE_VERSION_HASH = {"namespaces": "Q3oi5N2YM8M=", "nodes": "XwShjMxG9Fs=", "pods": "xPOwRZ+Yhw8="}


def _resource_list(group_version: str, resources) -> dict:
    out = []
    for name, kind, namespaced, verbs, short in resources:
        entry = {"name": name, "singularName": "" if "/" in name else kind.lower(), "namespaced": namespaced,
                 "kind": kind, "verbs": verbs}
        if short:
            entry["shortNames"] = short
        if kind == "Scale":  # the scale subresource is autoscaling/v1's Scale in every group
            entry.update({"group": "autoscaling", "version": "v1"})
        if name == "pods":
            entry["categories"] = ["all"]
        if "/" not in name:
            entry["storageVersionHash"] = _STORAGE_VERSION_HASH.get(name) or base64.b64encode(
                hashlib.sha256(f"{group_version}/{kind}".encode()).digest()[:8]).decode()
        out.append(entry)
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": out}


# One protobuf message level: [(field number, wire type, value)].
_pb_fields = protobuf.fields


def _pb_meta(data: bytes) -> dict:
    meta: dict = {}
    for f, _, v in _pb_fields(data):
        if f in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[f]] = v.decode()
        elif f in (11, 12):
            kv = {k: val for k, _, val in _pb_fields(v)}
            meta.setdefault("labels" if f == 11 else "annotations", {})[kv.get(1, b"").decode()] = (
                kv.get(2, b"").decode())
    return meta


def decode_protobuf(raw: bytes) -> dict:
    """kubectl's typed commands (`create namespace`, `create serviceaccount`, `create token`, `auth can-i`, and
    through protobuf.py `create deployment/role/rolebinding/...`) send protobuf. Only the fields those objects
    carry are decoded; anything else is refused with a 415."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    env = {f: v for f, _, v in _pb_fields(raw[4:])}
    type_meta = {f: v for f, _, v in _pb_fields(env.get(1, b""))}
    kind = type_meta.get(2, b"").decode()
    api_version = type_meta.get(1, b"").decode()
    fields = _pb_fields(env.get(2, b""))
    obj: dict = {"kind": kind, "apiVersion": api_version}
    if kind in ("Namespace", "ServiceAccount"):
        for f, _, v in fields:
            if f == 1:
                obj["metadata"] = _pb_meta(v)
        return obj
    if kind == "TokenRequest":
        spec: dict = {}
        for f, _, v in fields:
            if f == 2:
                for sf, _, sv in _pb_fields(v):
                    if sf == 1:
                        spec.setdefault("audiences", []).append(sv.decode())
                    elif sf == 4:
                        spec["expirationSeconds"] = sv
        obj["spec"] = spec
        return obj
    if kind == "SelfSubjectAccessReview":
        spec = {}
        for f, _, v in fields:
            if f != 2:
                continue
            for sf, _, sv in _pb_fields(v):
                if sf == 1:
                    names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                             6: "subresource", 7: "name"}
                    spec["resourceAttributes"] = {names[k]: val.decode() for k, _, val in _pb_fields(sv)
                                                  if k in names}
                elif sf == 2:
                    spec["nonResourceAttributes"] = {{1: "path", 2: "verb"}[k]: val.decode()
                                                     for k, _, val in _pb_fields(sv) if k in (1, 2)}
        obj["spec"] = spec
        return obj
    # What kubectl's generators send (create deployment/role/rolebinding/service...): schema-driven.
    return protobuf.decode_object(kind, api_version, env.get(2, b""))


async def _body(request: web.Request, optional: bool = False):
    ctype = request.content_type
    if "protobuf" in ctype:
        try:
            return decode_protobuf(await request.read())
        except (ValueError, IndexError):
            pass
    if "protobuf" in ctype or "cbor" in ctype:
        # As the real server answers a format it cannot read. kubectl does not retry with JSON (seen with
        # `kubectl create deployment -v=9`), so what its typed commands send is decoded above (protobuf.py).
        raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - '
                       'accepted media types include: application/json, application/yaml', {})
    raw = await request.read()
    if not raw:
        if optional:
            return None
        raise bad_request("the body of the request was in an unknown format")
    try:
        if ctype in ("application/yaml", "application/apply-patch+yaml"):
            import yaml

            return yaml.safe_load(raw)
        return json.loads(raw)
    except ValueError as e:
        if optional:
            return None
        raise bad_request(f"the body of the request was in an unknown format: {e}") from None


_WARNINGS = web.RequestKey("warnings", list)


def _warn(request: web.Request, text: str | None) -> None:
    """Queue a `Warning: 299 - "..."` response header (the middleware adds it)."""
    if text:
        request.setdefault(_WARNINGS, []).append(text)


def _truthy_dry(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


def _method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {})


def _page_not_found() -> web.Response:
    return web.Response(status=404, body=b"404 page not found\n",
                        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip().replace("-", "")
    except OSError:
        return ""


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_ki() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 1 << 20


def _http_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _resolve_under(node_root: Path, base: Path, sub: str) -> Path | None:
    """Resolve `sub` under node_root/var/log, following symlinks as seen from inside the node.

    /var/log/containers links are absolute node paths (/var/log/pods/...): they are re-rooted at node_root.
    """
    root = node_root.resolve()
    cur = base
    for part in [p for p in sub.split("/") if p not in ("", ".")]:
        if part == "..":
            return None
        cur = cur / part
        hops = 0
        while cur.is_symlink() and hops < 10:
            target = Path(os.readlink(cur))
            if target.is_absolute():
                target_s = str(target)
                cur = target if target_s.startswith(str(root)) else root / target_s.lstrip("/")
            else:
                cur = cur.parent / target
            hops += 1
    try:
        resolved = cur.resolve()
    except OSError:
        return None
    if not str(resolved).startswith(str(root)):
        return None
    return resolved


def _go_content_type(name: str, data: bytes) -> str:
    """What Go's http.ServeContent would say: by extension first, else sniffed."""
    ext = os.path.splitext(name)[1]
    if ext == ".log":
        return "text/x-log; charset=utf-8"
    if ext == ".gz":
        return "application/gzip"
    if ext:
        guessed = mimetypes.types_map.get(ext)
        if guessed:
            return guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")
    head = data[:512]
    if not head or b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            pass
    return "application/octet-stream"


def _container_status(pod: dict | None, container: str) -> dict | None:
    if pod is None:
        return None
    st = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for s in st.get(key) or []:
            if s.get("name") == container:
                return s
    return None


def _since_filter(since_seconds: str | None, since_time: str | None):
    if since_seconds and since_seconds.isdigit():
        limit = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(since_seconds))
    elif since_time:
        try:
            limit = dt.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return limit


def _parse_ts(ts: bytes) -> dt.datetime | None:
    s = ts.decode(errors="replace")
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return dt.datetime.fromisoformat(m.group(1) + frac + tz)
    except ValueError:
        return None


def render_cri(records: list[bytes], timestamps: bool, since: dt.datetime | None) -> bytes:
    """CRI records (`TS STREAM P|F CONTENT`) -> the pods/log body: P parts joined, F ends a line.

    With timestamps each output line starts with the timestamp of its first record, verbatim from the file.
    """
    out = []
    at_line_start = True
    for rec in records:
        if rec.startswith(b"{"):  # Docker's json-file line (dockermode.py), read as the kubelet does
            rec = dockermode.to_cri(rec)
        parts = rec.split(b" ", 3)
        if len(parts) < 3:
            continue
        ts, tag = parts[0], parts[2]
        content = parts[3] if len(parts) > 3 else b""
        if since is not None:
            t = _parse_ts(ts)
            if t is not None and t < since:
                continue
        if timestamps and at_line_start:
            out.append(ts + b" ")
        out.append(content)
        if tag == b"P":
            at_line_start = False
        else:
            out.append(b"\n")
            at_line_start = True
    return b"".join(out)


def parse_label_selector(selector: str) -> Callable[[dict], bool]:
    if not selector.strip():
        return lambda o: True
    if selector.count("(") != selector.count(")"):  # recordings/20-list-pods-bad-selector
        raise bad_request("unable to parse requirement: found '', expected: ',' or ')'")
    reqs = []
    for term in _split_selector(selector):
        term = term.strip()
        m = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            reqs.append((key, op, vals))
        elif term.startswith("!"):
            reqs.append((term[1:].strip(), "!exists", None))
        elif "!=" in term:
            k, v = term.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in term:
            k, v = term.split("==", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif "=" in term:
            k, v = term.split("=", 1)
            reqs.append((k.strip(), "=", v.strip()))
        else:
            reqs.append((term, "exists", None))

    def match(o: dict) -> bool:
        labels = (o.get("metadata") or {}).get("labels") or {}
        for key, op, val in reqs:
            present, cur = key in labels, labels.get(key)
            if op == "=" and cur != val:
                return False
            if op == "!=" and cur == val:
                return False
            if op == "in" and cur not in val:
                return False
            if op == "notin" and present and cur in val:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True

    return match


def _split_selector(selector: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def parse_field_selector(selector: str) -> Callable[[dict], bool]:
    if not selector.strip():
        return lambda o: True
    reqs = []
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            op = "!="
        elif "==" in term:
            k, v = term.split("==", 1)
            op = "="
        elif "=" in term:
            k, v = term.split("=", 1)
            op = "="
        else:
            raise bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{term}\'')
        k = k.strip()
        if k not in _FIELD_LABELS:
            raise bad_request(f'field label not supported: {k}')
        reqs.append((_FIELD_LABELS[k], op, v.strip()))
    return lambda o: all((get(o) == v) == (op == "=") for get, op, v in reqs)


# ---------------------------------------------------------------------------------------------------------
# Server-side printing (meta.k8s.io/v1 Table), which kubectl asks for on `get`


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _age(ts: str | None) -> str:
    """kubectl's duration.HumanDuration."""
    if not ts:
        return "<unknown>"
    try:
        t = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return "<unknown>"
    s = int((dt.datetime.now(dt.timezone.utc) - t).total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 365 * 2 else f"{d // 365}y"


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def _pod_row(pod: dict) -> list:
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    statuses = st.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = st.get("reason") or st.get("phase") or "Pending"
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        state = c.get("state") or {}
        if state.get("terminated", {}).get("exitCode", 1) == 0:
            continue
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        break
    else:
        for c in reversed(statuses):
            state = c.get("state") or {}
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                t = state["terminated"]
                reason = t.get("reason") or (f"Signal:{t['signal']}" if t.get("signal")
                                             else f"ExitCode:{t.get('exitCode')}")
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    age = _age(pod["metadata"].get("creationTimestamp"))
    return [pod["metadata"]["name"], f"{ready}/{total}", reason, restarts, age,
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>", "<none>", "<none>"]


_TABLES = {
    "pods": ([_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts", "string"), _col("Age"),
              _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
              _col("Readiness Gates", priority=1)], _pod_row),
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")],
                   lambda o: [o["metadata"]["name"], o["status"].get("phase", ""),
                              _age(o["metadata"].get("creationTimestamp"))]),
    "nodes": ([_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
               _col("Internal-IP", priority=1), _col("External-IP", priority=1), _col("OS-Image", priority=1),
               _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)],
              lambda o: [o["metadata"]["name"], "Ready", "<none>", _age(o["metadata"].get("creationTimestamp")),
                         o["status"]["nodeInfo"].get("kubeletVersion", ""),
                         next((a["address"] for a in o["status"]["addresses"] if a["type"] == "InternalIP"),
                              "<none>"), "<none>", o["status"]["nodeInfo"].get("osImage", ""),
                         o["status"]["nodeInfo"].get("kernelVersion", ""),
                         o["status"]["nodeInfo"].get("containerRuntimeVersion", "")]),
}


def to_table(resource: str, items: list[dict], resource_version: str) -> dict:
    columns, row = _TABLES.get(resource, ([_col("Name", fmt="name"), _col("Age")],
                                          lambda o: [o["metadata"]["name"],
                                                     _age(o["metadata"].get("creationTimestamp"))]))
    rows = []
    for o in items:
        meta = {k: v for k, v in o["metadata"].items() if k != "managedFields"}
        rows.append({"cells": row(o), "object": {"kind": "PartialObjectMetadata",
                                                 "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
