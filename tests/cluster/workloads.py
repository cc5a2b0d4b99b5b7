"""Workload objects of the test cluster and the small controller behind them.

Served: apps/v1 Deployments, ReplicaSets, StatefulSets, DaemonSets; batch/v1 Jobs; v1 Services and Endpoints;
discovery.k8s.io/v1 EndpointSlices -- create, get, list (label/field selectors), watch, delete -- in the shapes
of recordings/20-* and 21-*. Creating a Deployment creates its ReplicaSet (`NAME-HASH`, owner: the
Deployment), which creates its pods (`RS-xxxxx`, label pod-template-hash, owner: the ReplicaSet); a
StatefulSet creates `NAME-0..N-1`, a DaemonSet one pod on the node, a Job one pod (label job-name). Deleting a
workload deletes what it owns (the Background propagation kubectl asks for).

Deployments and ReplicaSets are reconciled continuously (section "Deployments and ReplicaSets" below): a
change of a Deployment's spec.template (kubectl rollout restart's `kubectl.kubernetes.io/restartedAt`
annotation, a new image) rolls its pods over to a new ReplicaSet one at a time with surge 1 and unavailable 0,
as recordings/21-* show; a change of spec.replicas scales; a deleted pod of a ReplicaSet is replaced. Jobs have
their own controller pass (sync_job): it keeps their status, replaces a failed pod within backoffLimit, applies
activeDeadlineSeconds and ttlSecondsAfterFinished; deleting a Job without a propagationPolicy orphans its pods,
as batch/v1 does.

Deliberate differences (tests/cluster/README.md): StatefulSets and DaemonSets act once, at creation (a deleted
pod is not replaced); the rollout is always surge 1 / unavailable 0 (what the default 25%/25% gives for 1-4
replicas); workload `status` (Jobs excepted) and Endpoints/EndpointSlices are computed from the pods when read.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
from typing import TYPE_CHECKING

from .store import ApiError, already_exists, not_found, now_rfc3339

if TYPE_CHECKING:
    from aiohttp import web

    from .apiserver import ApiServer, RequestInfo

# Resources with a scale subresource here (kubectl scale): the ones the controller reconciles.
SCALABLE = ("deployments", "replicasets")
# "patch" is listed so that kubectl's field-validation probe finds them (answered 405, as apiserver.py does).
_VERBS = ["create", "delete", "get", "list", "patch", "watch"]
# (group, resource) -> (kind, apiVersion, shortNames)
KINDS = {
    ("apps", "deployments"): ("Deployment", "apps/v1", ["deploy"]),
    ("apps", "replicasets"): ("ReplicaSet", "apps/v1", ["rs"]),
    ("apps", "statefulsets"): ("StatefulSet", "apps/v1", ["sts"]),
    ("apps", "daemonsets"): ("DaemonSet", "apps/v1", ["ds"]),
    ("batch", "jobs"): ("Job", "batch/v1", None),
    ("", "services"): ("Service", "v1", ["svc"]),
    ("", "endpoints"): ("Endpoints", "v1", ["ep"]),
    ("discovery.k8s.io", "endpointslices"): ("EndpointSlice", "discovery.k8s.io/v1", None),
}
# Discovery entries: (name, kind, namespaced, verbs, shortNames), as apiserver.py lists resources.
CORE_RESOURCES = [(r, k, True, _VERBS, s) for (g, r), (k, _, s) in KINDS.items() if g == ""]
GROUPS = {g: [(r, k, True, _VERBS, s) for (gg, r), (k, _, s) in KINDS.items() if gg == g]
          for g in ("apps", "batch", "discovery.k8s.io")}
GROUPS["apps"] += [(f"{r}/scale", "Scale", True, ["get", "patch", "update"], None) for r in ("deployments",
                                                                                              "replicasets")]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString alphabet
_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
# batch/v1 Jobs deleted through the API without a propagationPolicy orphan their pods, for compatibility, and the
# server says so (kubernetes pkg/registry/batch/job/storage: deleteOptionWarnings); kubectl sends Background.
JOB_ORPHAN_WARNING = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                      "to remove them or set propagationPolicy=Orphan to suppress this warning")
JOB_TICK = 0.2  # seconds between two passes of the Job controller (status, activeDeadlineSeconds, TTL)
# What reading an Endpoints object says in 1.33 (recordings/20-get-endpoints-web).
ENDPOINTS_WARNING = "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"


def _hash(obj: object, length: int) -> str:
    digest = hashlib.sha256(repr(obj).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def selector_string(selector: dict | None) -> str:
    """A LabelSelector (matchLabels, matchExpressions) as the query string form."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


# What the API server fills in (recordings/20-create-*).
_SPEC_DEFAULTS = {
    "deployments": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
    "replicasets": {"replicas": 1},
    "statefulsets": {"replicas": 1, "podManagementPolicy": "OrderedReady", "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}},
    "daemonsets": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                   "revisionHistoryLimit": 10},
    "jobs": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "manualSelector": False,
             "completionMode": "NonIndexed", "suspend": False, "podReplacementPolicy": "TerminatingOrFailed"},
}
_CREATED_STATUS = {
    "statefulsets": {"replicas": 0, "availableReplicas": 0},
    "daemonsets": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                   "numberReady": 0},
}


def _default_spec(resource: str, spec: dict) -> None:
    from .admission import default_container

    for key, value in _SPEC_DEFAULTS.get(resource, {}).items():
        spec.setdefault(key, copy.deepcopy(value))
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})["creationTimestamp"] = None
    pod = template.setdefault("spec", {})
    for c in pod.get("containers") or []:
        default_container(c)
    for key, value in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                       ("dnsPolicy", "ClusterFirst"), ("securityContext", {}),
                       ("schedulerName", "default-scheduler")):
        pod.setdefault(key, value)


def _owner(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: dict, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid for r in obj["metadata"].get("ownerReferences") or [])


def _ready(pod: dict) -> bool:
    """Running, Ready and not being deleted: what the Deployment controller counts as available."""
    status = pod.get("status") or {}
    return (status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []))


def _rs_annotations(desired: int, revision: int) -> dict:
    """What the Deployment controller writes on its ReplicaSets (recordings/21-list-replicasets-after-restart)."""
    return {"deployment.kubernetes.io/desired-replicas": str(desired),
            "deployment.kubernetes.io/max-replicas": str(desired + 1),
            "deployment.kubernetes.io/revision": str(revision)}


class Workloads:
    """The handlers and the controller; `server` gives the store, pod creation and deletion."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.store = server.store
        self._next_ip = 10
        self._pod_watch = None  # the controller's store watcher on pods, from the first Deployment/ReplicaSet
        self._dirty: set[str] = set()  # namespaces with a reconcile pending

    # -- REST ----------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        from . import apiserver as api

        kind, api_version, _ = KINDS[(info.group, info.resource)]
        resource, ns, verb = info.resource, info.namespace, info.verb
        if info.subresource == "scale":
            return api._json(await self._scale_subresource(request, info))
        if resource == "endpoints" and verb in ("get", "list"):
            api._warn(request, ENDPOINTS_WARNING)
        if verb == "get":
            obj = self.store.get(resource, ns, info.name or "")
            if obj is None:
                obj = self._computed(resource, ns, info.name or "")
            if obj is None:
                raise not_found(resource, info.name or "", info.group)
            return api._json(self._view(obj))
        if verb == "list":
            pred = self.server._selector(request)
            items = [self._view(o) for o in self._all(resource, ns)]
            return api._json(self.server._list_body(f"{kind}List", [o for o in items if pred(o)], api_version))
        if verb == "watch":
            return await self.server._watch(request, resource, ns)
        if verb == "delete":
            obj = self.store.get(resource, ns, info.name or "")
            if obj is None:
                raise not_found(resource, info.name or "", info.group)
            body = await api._body(request, optional=True)
            policy = request.query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
            if resource == "jobs":
                if policy is None:
                    api._warn(request, JOB_ORPHAN_WARNING)
                self.delete_job(obj, policy or "Orphan")
            else:
                self.delete(obj)
            return api._json(obj)
        if verb == "create":
            body = await api._body(request)
            if self.store.get("namespaces", None, ns or "") is None:
                raise not_found("namespaces", ns or "")
            return api._json(self.create(resource, ns or "", body, api._truthy_dry(request)), 201)
        if verb in ("patch", "update") and resource in ("deployments", "replicasets"):
            return api._json(self._view(await self._change(request, info)))
        if verb == "patch" and resource == "jobs":
            return api._json(self._view(await self._change_job(request, info)))
        raise api._method_not_allowed()

    def _all(self, resource: str, ns: str | None) -> list[dict]:
        if resource in ("endpoints", "endpointslices"):
            return [o for s in self.store.list("services", ns)
                    if (o := self._computed(resource, s["metadata"]["namespace"], s["metadata"]["name"]))]
        return self.store.list(resource, ns)

    # -- create / delete (the controller acts here) -----------------------------------------------------
    def create(self, resource: str, ns: str, body: dict, dry: bool) -> dict:
        group = next(g for (g, r) in KINDS if r == resource)
        kind, api_version, _ = KINDS[(group, resource)]
        if resource in ("endpoints", "endpointslices"):
            raise ApiError(405, "MethodNotAllowed", "the test cluster computes endpoints from the pods", {})
        obj = copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = kind, api_version
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not name:
            raise ApiError(422, "Invalid", f'{kind} "" is invalid: metadata.name: Required value',
                           {"kind": kind, "causes": [{"reason": "FieldValueRequired", "field": "metadata.name"}]})
        if self.store.get(resource, ns, name) is not None:
            raise already_exists(resource, name, group)
        meta["namespace"] = ns
        if resource != "services":
            meta["generation"] = 1
        for k in ("uid", "resourceVersion", "creationTimestamp"):
            meta.pop(k, None)
        spec = obj.setdefault("spec", {})
        if resource == "services":
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") != "None":
                spec["clusterIP"] = str(_SERVICE_CIDR[self._next_ip])
                self._next_ip += 1
            spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            spec.setdefault("sessionAffinity", "None")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            obj["status"] = {"loadBalancer": {}}
        else:
            _default_spec(resource, spec)
            if resource == "daemonsets":
                meta.setdefault("annotations", {})["deprecated.daemonset.template.generation"] = "1"
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if resource == "jobs":
                spec.setdefault("selector", {"matchLabels": {}})
            elif not spec.get("selector"):
                raise ApiError(422, "Invalid", f'{kind}.apps "{name}" is invalid: spec.selector: Required value',
                               {"name": name, "group": "apps", "kind": kind})
            elif not all(template_labels.get(k) == v
                         for k, v in (spec["selector"].get("matchLabels") or {}).items()):
                raise ApiError(422, "Invalid", f'{kind}.apps "{name}" is invalid: spec.template.metadata.labels: '
                               "Invalid value: `selector` does not match template `labels`",
                               {"name": name, "group": "apps", "kind": kind})
            obj["status"] = copy.deepcopy(_CREATED_STATUS.get(resource, {}))
        if dry:
            return obj
        obj = self.store.create(resource, ns, obj)
        if resource == "jobs":
            uid = obj["metadata"]["uid"]
            obj = copy.deepcopy(obj)
            obj["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            labels = obj["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})
            labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                           "controller-uid": uid, "job-name": name})
            obj = self.store.update(resource, ns, obj)
        self._reconcile(resource, obj)
        if resource == "jobs":
            self._start_job_controller()
        return obj

    def _reconcile(self, resource: str, obj: dict) -> None:
        name, ns, spec = obj["metadata"]["name"], obj["metadata"]["namespace"], obj["spec"]
        template = spec.get("template") or {}
        if resource in ("deployments", "replicasets"):
            self._control(ns)
        elif resource == "statefulsets":
            revision = f"{name}-{_hash(template, 9)}"
            for i in range(int(spec.get("replicas", 1))):
                labels = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                          "apps.kubernetes.io/pod-index": str(i)}
                extra = {"hostname": f"{name}-{i}"}
                if spec.get("serviceName"):
                    extra["subdomain"] = spec["serviceName"]
                self._pod(obj, f"{name}-", f"{name}-{i}", labels, extra)
        elif resource == "daemonsets":
            labels = {"controller-revision-hash": _hash(template, 10), "pod-template-generation": "1"}
            node = self.server.node_name
            # What the DaemonSet controller adds (recordings/20-list-pods-app-agent): the node, and tolerations
            # of the node conditions without tolerationSeconds, so its pods stay where they are.
            extra = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                        "values": [node]}]}]}}},
                     "tolerations": [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": e}
                                     for k, e in (("not-ready", "NoExecute"), ("unreachable", "NoExecute"),
                                                  ("disk-pressure", "NoSchedule"), ("memory-pressure", "NoSchedule"),
                                                  ("pid-pressure", "NoSchedule"), ("unschedulable", "NoSchedule"))]}
            self._pod(obj, f"{name}-", None, labels, extra)
        elif resource == "jobs":
            self._pod(obj, f"{name}-", None, {})

    def _pod(self, owner: dict, generate: str, name: str | None, labels: dict, extra_spec: dict | None = None) -> None:
        template = copy.deepcopy(owner["spec"].get("template") or {})
        meta = template.get("metadata") or {}
        meta.pop("creationTimestamp", None)
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["ownerReferences"] = [_owner(owner)]
        meta["generateName"] = generate
        if name:
            meta["name"] = name
        spec = {**template.get("spec", {}), **(extra_spec or {})}
        try:
            self.server.create_pod_object(owner["metadata"]["namespace"], {"metadata": meta, "spec": spec})
        except ApiError as e:  # a real controller reports it as an event and retries; we log it
            import logging

            logging.getLogger("tests.cluster.workloads").warning("cannot create pod of %s: %s",
                                                                 owner["metadata"]["name"], e.message)

    # -- Deployments and ReplicaSets: the controller ------------------------------------------------------
    # A reconcile of a namespace runs on the API server's loop (no locks: store.py) after every change of a
    # Deployment, a ReplicaSet or one of their pods (a store watcher on pods), coalesced into one pass. As the
    # real controllers do, it reads only the store: the Deployment sets its ReplicaSets' replicas, each
    # ReplicaSet creates or deletes pods until it has that many that are not being deleted.

    def _control(self, ns: str) -> None:
        if self._pod_watch is None:
            self._pod_watch = self.store.watch("pods", None, lambda o: True, self.store.resource_version)
            self.server._keep(asyncio.ensure_future(self._follow_pods(self._pod_watch)))
        if ns not in self._dirty:
            self._dirty.add(ns)
            asyncio.get_running_loop().call_soon(self._reconcile_namespace, ns)

    async def _follow_pods(self, watcher) -> None:
        while True:
            ev = await watcher.queue.get()
            if ev is None:  # close_watchers (the listener stopped): this watcher stays registered
                continue
            refs = ev.obj["metadata"].get("ownerReferences") or []
            if any(r.get("kind") == "ReplicaSet" for r in refs):
                self._control(ev.namespace or "")

    def _reconcile_namespace(self, ns: str) -> None:
        self._dirty.discard(ns)
        namespace = self.store.get("namespaces", None, ns)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        for deploy in self.store.list("deployments", ns):
            self._rollout(deploy)
        for grow in (False, True):  # every scale-down before any scale-up: never a surge above one pod
            for rs in self.store.list("replicasets", ns):
                self._replicate(rs, grow)
        self._write_status(ns)

    def _write_status(self, ns: str) -> None:
        """Store the status a GET computes when its counts changed, as the real controllers write theirs: a
        watcher (`kubectl rollout status`) sees a MODIFIED event when the pods become ready. Without it a watch
        that began before the pods were ready waited forever (CI: `rollout status` timed out at 180 s)."""
        def counts(status: dict | None) -> dict:
            return {k: v for k, v in (status or {}).items() if k != "conditions"}

        for resource in ("deployments", "replicasets"):
            for obj in self.store.list(resource, ns):
                status = self._view(obj)["status"]
                if counts(status) != counts(obj.get("status")):
                    self.store.update(resource, ns, {**obj, "status": status})

    def _rollout(self, deploy: dict) -> None:
        """The Deployment controller's RollingUpdate with surge 1 and unavailable 0 (recordings/21-*: a new
        pod Running and Ready, then one old pod deleted, then the next new pod): the ReplicaSet of the current
        template (`NAME-HASH`, created at the next revision) grows while the old ones shrink to 0 (kept)."""
        ns, name, spec = deploy["metadata"]["namespace"], deploy["metadata"]["name"], deploy["spec"]
        desired = int(spec.get("replicas", 1))
        owned = [rs for rs in self.store.list("replicasets", ns) if _owned_by(rs, deploy["metadata"]["uid"])]
        pod_hash = _hash(spec.get("template") or {}, 10)
        new = next((rs for rs in owned if rs["metadata"]["name"] == f"{name}-{pod_hash}"), None)
        old = [rs for rs in owned if rs is not new and rs["spec"]["replicas"] > 0]
        revision = max((int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                        for rs in owned), default=0)
        if new is None:
            new = self._new_replicaset(deploy, pod_hash, 0 if old else desired, revision + 1)
            owned.append(new)
        annotations = deploy["metadata"].setdefault("annotations", {})
        current = (new["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        if annotations.get("deployment.kubernetes.io/revision") != current:
            deploy = copy.deepcopy(deploy)
            deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = current
            self.store.update("deployments", ns, deploy)
        if not old:
            self._scale(new, desired, desired)
            return
        ready = {rs["metadata"]["uid"]: sum(1 for p in self._owned_pods(rs) if _ready(p)) for rs in owned}
        total = sum(rs["spec"]["replicas"] for rs in owned)
        # scale the old ones down as far as availability allows: every pod counted must be ready
        removable = total - desired - (new["spec"]["replicas"] - ready[new["metadata"]["uid"]])
        for rs in old:
            if removable <= 0:
                break
            step = min(removable, rs["spec"]["replicas"])
            removable -= step
            total -= step
            self._scale(rs, rs["spec"]["replicas"] - step, desired)
        # then the new one up, at most one pod above the desired count (surge 1)
        if new["spec"]["replicas"] < desired and total < desired + 1:
            self._scale(new, new["spec"]["replicas"] + min(desired + 1 - total, desired - new["spec"]["replicas"]),
                        desired)

    def _new_replicaset(self, deploy: dict, pod_hash: str, replicas: int, revision: int) -> dict:
        ns, name, spec = deploy["metadata"]["namespace"], deploy["metadata"]["name"], deploy["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        rs = {"metadata": {"name": f"{name}-{pod_hash}", "labels": template["metadata"]["labels"],
                           "annotations": _rs_annotations(int(spec.get("replicas", 1)), revision),
                           "ownerReferences": [_owner(deploy)]},
              "spec": {"replicas": replicas, "selector": selector, "template": template}}
        return self.create("replicasets", ns, rs, False)

    def _scale(self, rs: dict, replicas: int, desired: int) -> None:
        annotations = _rs_annotations(desired, int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
        if rs["spec"]["replicas"] == replicas and rs["metadata"]["annotations"] == annotations:
            return
        rs = copy.deepcopy(rs)
        if rs["spec"]["replicas"] != replicas:
            rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["annotations"] = annotations
        self.store.update("replicasets", rs["metadata"]["namespace"], rs)
        self._control(rs["metadata"]["namespace"])

    def _owned_pods(self, owner: dict) -> list[dict]:
        return [p for p in self.store.list("pods", owner["metadata"]["namespace"])
                if _owned_by(p, owner["metadata"]["uid"])]

    def _replicate(self, rs: dict, grow: bool) -> None:
        """The ReplicaSet controller: as many pods not being deleted as spec.replicas; a deleted pod is
        replaced (`grow`), extra ones go (not ready ones first, then the newest) with their grace period."""
        active = [p for p in self._owned_pods(rs) if not p["metadata"].get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas", 1))
        if grow:
            for _ in range(want - len(active)):
                self._pod(rs, f"{rs['metadata']['name']}-", None, {})
            return
        victims = sorted(active, key=lambda p: (_ready(p), -int(p["metadata"]["resourceVersion"])))
        for pod in victims[:max(0, len(active) - want)]:
            self.server._delete_pod(pod, None)

    async def _scale_subresource(self, request: web.Request, info: RequestInfo) -> dict:
        """GET/PATCH/PUT .../scale (autoscaling/v1 Scale; kubectl scale PATCHes spec.replicas here)."""
        from . import admission
        from . import apiserver as api

        ns, name = info.namespace or "", info.name or ""
        obj = self.store.get(info.resource, ns, name)
        if obj is None:
            raise not_found(info.resource, name, "apps")
        if info.verb in ("patch", "update"):
            body = await api._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format", {})
            replicas = (body.get("spec") or {}).get("replicas")
            if request.content_type == "application/json-patch+json":
                replicas = (admission.json_patch({"spec": {"replicas": obj["spec"]["replicas"]}}, body)
                            .get("spec", {}).get("replicas"))
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value',
                               {"name": name, "group": "autoscaling", "kind": "Scale"})
            if replicas != obj["spec"]["replicas"] and not api._truthy_dry(request):
                obj = copy.deepcopy(obj)
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
                obj = self.store.update(info.resource, ns, obj)
                self._control(ns)
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {"replicas": len([p for p in self._pods_of(ns, selector_string(obj["spec"]["selector"]))
                                            if not p["metadata"].get("deletionTimestamp")]),
                           "selector": selector_string(obj["spec"]["selector"])}}

    async def _change(self, request: web.Request, info: RequestInfo) -> dict:
        """PATCH (strategic merge, as kubectl rollout restart and kubectl scale send; merge; JSON patch) or
        PUT of a Deployment or ReplicaSet: spec.replicas and spec.template may change, and the controller acts."""
        from . import apiserver as api

        obj, new = await self._patched(request, info, "apps")
        ns = info.namespace or ""
        updated = copy.deepcopy(obj)
        spec = new.get("spec") or {}
        updated["spec"]["replicas"] = int(spec.get("replicas", obj["spec"].get("replicas", 1)))
        if "template" in spec:
            updated["spec"]["template"] = copy.deepcopy(spec["template"])
            _default_spec(info.resource, updated["spec"])
        for key in ("labels", "annotations"):
            if (new.get("metadata") or {}).get(key) is not None:
                updated["metadata"][key] = dict(new["metadata"][key])
        if updated == obj:
            return obj
        if updated["spec"] != obj["spec"]:
            updated["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        if api._truthy_dry(request):
            return updated
        updated = self.store.update(info.resource, ns, updated)
        self._control(ns)
        return updated

    async def _patched(self, request: web.Request, info: RequestInfo, group: str) -> tuple[dict, dict]:
        """The stored object and what the PUT body or the PATCH (JSON, merge or strategic merge) makes of it."""
        from . import admission
        from . import apiserver as api

        ns, name = info.namespace or "", info.name or ""
        obj = self.store.get(info.resource, ns, name)
        if obj is None:
            raise not_found(info.resource, name, group)
        body = await api._body(request)
        if info.verb == "update":
            new = body
        elif request.content_type == "application/json-patch+json":
            new = admission.json_patch(obj, body)
        elif request.content_type == "application/merge-patch+json":
            new = admission.merge_patch(obj, body)
        else:
            new = admission.strategic_merge(obj, body)
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format", {})
        return obj, new

    async def _change_job(self, request: web.Request, info: RequestInfo) -> dict:
        """PATCH of a Job: activeDeadlineSeconds, labels and annotations may change while it runs (the Job
        controller then applies the new deadline, recordings 30-job-deadline-*); other spec changes are refused
        as the real validation words them for the template."""
        from . import apiserver as api

        obj, new = await self._patched(request, info, "batch")
        ns, name = info.namespace or "", info.name or ""
        updated = copy.deepcopy(obj)
        deadline = (new.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
            raise ApiError(422, "Invalid", f'Job.batch "{name}" is invalid: spec.activeDeadlineSeconds: Invalid '
                           f"value: {deadline}: must be greater than or equal to 1",
                           {"name": name, "group": "batch", "kind": "Job"})
        updated["spec"]["activeDeadlineSeconds"] = deadline
        if deadline is None:
            updated["spec"].pop("activeDeadlineSeconds")
        if (new.get("spec") or {}).get("template") != obj["spec"].get("template"):
            raise ApiError(422, "Invalid", f'Job.batch "{name}" is invalid: spec.template: Invalid value: '
                           "field is immutable", {"name": name, "group": "batch", "kind": "Job"})
        for key in ("labels", "annotations"):
            if (new.get("metadata") or {}).get(key) is not None:
                updated["metadata"][key] = dict(new["metadata"][key])
        if updated == obj or api._truthy_dry(request):
            return updated
        updated["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        return self.store.update("jobs", ns, updated)

    def delete(self, obj: dict) -> None:
        """Delete the object and, like the garbage collector with Background propagation, what it owns."""
        kind = obj["kind"]
        resource = next(r for (_, r), (k, _, _) in KINDS.items() if k == kind)
        ns, uid = obj["metadata"]["namespace"], obj["metadata"]["uid"]
        self.store.delete(resource, ns, obj["metadata"]["name"])
        for child_resource in ("replicasets",):
            for child in self.store.list(child_resource, ns):
                if _owned_by(child, uid):
                    self.delete(child)
        for pod in self.store.list("pods", ns):
            if _owned_by(pod, uid):
                self.server._delete_pod(pod, None)

    def delete_namespace(self, ns: str) -> None:
        """What namespace deletion removes of ours (the pods are deleted by the caller)."""
        for resource in ("deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "services"):
            for o in self.store.list(resource, ns):
                self.store.delete(resource, ns, o["metadata"]["name"])

    # -- the Job controller and the TTL-after-finished controller ---------------------------------------------
    def _start_job_controller(self) -> None:
        """A pass over every Job each JOB_TICK while any exists (started by the first Job's creation)."""
        if getattr(self, "_job_timer", None) is None:
            self._job_timer = self.server._loop.call_later(JOB_TICK, self._job_pass)

    def _job_pass(self) -> None:
        self._job_timer = None
        jobs = self.store.list("jobs")
        for job in jobs:
            try:
                self.sync_job(job)
            except Exception:  # noqa: BLE001 - a controller logs and goes on
                import logging

                logging.getLogger("tests.cluster.workloads").exception("job %s", job["metadata"]["name"])
        if jobs:
            self._start_job_controller()

    def sync_job(self, job: dict) -> dict:
        """The Job's status from its pods, as the Job controller keeps it (recordings/20-get-job-once-complete):
        active (pods neither finished nor being deleted), succeeded, failed; Complete (with completionTime)
        once `completions` pods succeeded; Failed when more pods failed than backoffLimit allows (a failed pod
        is replaced at once: no back-off delay) or activeDeadlineSeconds passed (its active pods are deleted).
        A finished Job with ttlSecondsAfterFinished is deleted that many seconds after it finished, with its
        pods (the TTL-after-finished controller deletes with Foreground propagation). Stored when changed."""
        import time
        from datetime import datetime

        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        spec, old = job["spec"], job.get("status") or {}
        pods = self._pods_of(ns, selector_string(spec.get("selector")))
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        active = [p for p, ph in zip(pods, phases, strict=True)
                  if ph not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        status = {"startTime": old.get("startTime") or job["metadata"]["creationTimestamp"], "terminating": 0,
                  "uncountedTerminatedPods": {}, "ready": 0}
        finished = next((c for c in old.get("conditions") or [] if c["type"] in ("Complete", "Failed")), None)
        now = now_rfc3339()

        def since(stamp: str) -> float:
            return time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

        if finished is not None:
            status.update({k: old[k] for k in ("conditions", "completionTime") if k in old})
        elif succeeded >= int(spec.get("completions") or 1):
            done = {"status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                    "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
            status.update({"conditions": [{"type": "SuccessCriteriaMet", **done}, {"type": "Complete", **done}],
                           "completionTime": now})
        else:
            deadline = spec.get("activeDeadlineSeconds")
            why = (("DeadlineExceeded", "Job was active longer than specified deadline")
                   if deadline is not None and since(status["startTime"]) >= int(deadline) else
                   ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                   if failed > int(spec.get("backoffLimit", 6)) else None)
            if why is not None:
                cond = {"status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": why[0],
                        "message": why[1]}
                status["conditions"] = [{"type": "FailureTarget", **cond}, {"type": "Failed", **cond}]
                for p in active:
                    self.server._delete_pod(p, None)
                active = []
            elif failed and not active:
                self._pod(job, f"{name}-", None, {})
        if active:
            status["active"] = len(active)
        status.update({k: v for k, v in (("succeeded", succeeded), ("failed", failed)) if v})
        if status != old:
            job = copy.deepcopy(job)
            job["status"] = status
            job = self.store.update("jobs", ns, job)
        ttl = spec.get("ttlSecondsAfterFinished")
        ended = next((c for c in status.get("conditions") or [] if c["type"] in ("Complete", "Failed")), None)
        if ttl is not None and ended is not None and since(ended["lastTransitionTime"]) >= int(ttl):
            self.delete_job(job, "Foreground")
        return job

    def delete_job(self, job: dict, policy: str) -> None:
        """Delete a Job: Background and Foreground delete its pods (Foreground before the Job, which a real
        server shows meanwhile with a deletionTimestamp: not modelled), Orphan keeps them without their owner."""
        if policy == "Orphan":
            uid = job["metadata"]["uid"]
            for pod in self.store.list("pods", job["metadata"]["namespace"]):
                if _owned_by(pod, uid):
                    pod = copy.deepcopy(pod)
                    pod["metadata"]["ownerReferences"] = [r for r in pod["metadata"]["ownerReferences"]
                                                          if r.get("uid") != uid]
                    if not pod["metadata"]["ownerReferences"]:
                        del pod["metadata"]["ownerReferences"]
                    self.store.update("pods", pod["metadata"]["namespace"], pod)
            self.store.delete("jobs", job["metadata"]["namespace"], job["metadata"]["name"])
            return
        self.delete(job)

    # -- computed views ------------------------------------------------------------------------------------
    def _pods_of(self, ns: str, selector: str) -> list[dict]:
        from .apiserver import parse_label_selector

        match = parse_label_selector(selector) if selector else (lambda o: False)
        return [p for p in self.store.list("pods", ns) if match(p)]

    def _view(self, obj: dict) -> dict:
        """A workload with its status computed from its pods (a real controller keeps it up to date)."""
        kind = obj.get("kind")
        if kind not in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
            return obj
        obj = copy.deepcopy(obj)
        pods = self._pods_of(obj["metadata"]["namespace"], selector_string(obj["spec"].get("selector")))
        running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        if kind == "Job":
            return self.sync_job(obj)
        if kind == "DaemonSet":
            obj["status"] = {"currentNumberScheduled": len(pods), "numberMisscheduled": 0,
                             "desiredNumberScheduled": 1, "numberReady": running, "observedGeneration": 1,
                             "updatedNumberScheduled": len(pods), "numberAvailable": running}
            return obj
        if kind in ("Deployment", "ReplicaSet"):
            obj["status"] = self._replica_status(obj, pods)
            return obj
        obj["status"] = {"observedGeneration": 1, "replicas": len(pods), "readyReplicas": running,
                         "availableReplicas": running}
        if kind == "StatefulSet":
            obj["status"]["updatedReplicas"] = len(pods)
            revision = f"{obj['metadata']['name']}-{_hash(obj['spec'].get('template'), 9)}"
            obj["status"].update({"currentReplicas": len(pods), "currentRevision": revision,
                                  "updateRevision": revision, "collisionCount": 0})
        return obj

    def _replica_status(self, obj: dict, pods: list[dict]) -> dict:
        """A Deployment's or ReplicaSet's status from its pods that are not being deleted; zero counts left
        out as Go's omitempty does (recordings/21-list-replicasets-after-restart: the old RS has only
        `replicas: 0, observedGeneration`)."""
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in active if _ready(p))
        status: dict = {"replicas": len(active)}
        if obj["kind"] == "ReplicaSet":
            status["fullyLabeledReplicas"] = len(active)
        else:
            status = {"observedGeneration": obj["metadata"].get("generation", 1), **status}
            pod_hash = _hash(obj["spec"].get("template"), 10)
            status["updatedReplicas"] = sum(1 for p in active
                                            if p["metadata"].get("labels", {}).get("pod-template-hash") == pod_hash)
        status.update({"readyReplicas": ready, "availableReplicas": ready})
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if obj["kind"] == "ReplicaSet":
            status["observedGeneration"] = obj["metadata"].get("generation", 1)
            return status
        now = now_rfc3339()
        rs = f"{obj['metadata']['name']}-{_hash(obj['spec'].get('template'), 10)}"
        cond = {"status": "True", "lastUpdateTime": now, "lastTransitionTime": now}
        status["conditions"] = [
            {"type": "Available", **cond, "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", **cond, "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{rs}" has successfully progressed.'}]
        return status

    def _computed(self, resource: str, ns: str | None, name: str) -> dict | None:
        """Endpoints and the EndpointSlice of a service, from the pods its selector matches."""
        if resource not in ("endpoints", "endpointslices"):
            return None
        svc = self.store.get("services", ns, name)
        if svc is None or not svc["spec"].get("selector"):
            return None
        ns = svc["metadata"]["namespace"]
        pods = [p for p in self._pods_of(ns, ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items()))
                if (p.get("status") or {}).get("podIP")]
        ports = [{k: v for k, v in (("name", p.get("name")), ("protocol", p.get("protocol", "TCP")),
                                    ("port", p.get("targetPort", p.get("port")))) if v is not None}
                 for p in svc["spec"].get("ports") or []]

        def ref(p: dict) -> dict:
            return {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}

        meta = {"namespace": ns, "uid": svc["metadata"]["uid"], "resourceVersion": svc["metadata"]["resourceVersion"],
                "creationTimestamp": svc["metadata"]["creationTimestamp"]}
        headless = svc["spec"].get("clusterIP") == "None"

        def address(p: dict) -> dict:
            out = {"ip": p["status"]["podIP"]}
            if headless and p["spec"].get("hostname") and p["spec"].get("subdomain") == name:
                out["hostname"] = p["spec"]["hostname"]  # a StatefulSet's pods behind their headless service
            return {**out, "nodeName": p["spec"].get("nodeName"), "targetRef": ref(p)}

        if resource == "endpoints":
            labels = {**(svc["metadata"].get("labels") or {}),
                      "endpoints.kubernetes.io/managed-by": "endpoint-controller"}
            if headless:
                labels["service.kubernetes.io/headless"] = ""
            subsets = [{"addresses": [address(p) for p in pods], "ports": ports}] if pods else []
            return {"kind": "Endpoints", "apiVersion": "v1", "metadata": {"name": name, **meta, "labels": labels},
                    "subsets": subsets}
        labels = {**(svc["metadata"].get("labels") or {}),
                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                  "kubernetes.io/service-name": name}
        ready = {"ready": True, "serving": True, "terminating": False}
        return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {**meta, "name": f"{name}-{_hash(name, 5)}", "generateName": f"{name}-", "generation": 1,
                             "labels": labels, "ownerReferences": [_owner(svc)]},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": ready, "targetRef": ref(p),
                               "nodeName": p["spec"].get("nodeName")} for p in pods],
                "ports": ports}
