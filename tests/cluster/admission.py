"""Defaulting, validation and Pod Security admission for pods, as the real API server does them.

The messages are the real ones (k8s.io/apimachinery field errors, pkg/apis/core/validation, and
k8s.io/pod-security-admission policy checks at "latest"), because the product parses and shows them.
"""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import dataclass

from .store import ApiError

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def random_suffix(n: int = 5) -> str:
    # The apiserver's generateName alphabet (no vowels, no ambiguous characters).
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


# ---------------------------------------------------------------------------------------------------
# field errors


@dataclass(frozen=True)
class FieldError:
    type: str  # Duplicate, Forbidden, NotFound, Required, Invalid, NotSupported
    field: str
    value: object = None
    detail: str = ""

    _REASONS = {
        "Duplicate": "FieldValueDuplicate", "Forbidden": "FieldValueForbidden",
        "NotFound": "FieldValueNotFound", "Required": "FieldValueRequired",
        "Invalid": "FieldValueInvalid", "NotSupported": "FieldValueNotSupported",
    }

    def body(self) -> str:
        v = json.dumps(self.value) if isinstance(self.value, str) else str(self.value)
        if self.type == "Duplicate":
            return f"Duplicate value: {v}"
        if self.type == "NotFound":
            return f"Not found: {v}"
        if self.type == "Forbidden":
            return f"Forbidden: {self.detail}" if self.detail else "Forbidden"
        if self.type == "Required":
            return f"Required value: {self.detail}" if self.detail else "Required value"
        if self.type == "NotSupported":
            return f"Unsupported value: {v}: {self.detail}"
        return f"Invalid value: {v}: {self.detail}" if self.detail else f"Invalid value: {v}"

    def cause(self) -> dict:
        return {"reason": self._REASONS[self.type], "message": self.body(), "field": self.field}


def invalid(kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per error, message joined like utilerrors.NewAggregate."""
    parts = [f"{e.field}: {e.body()}" for e in errors]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {joined}',
        {"name": name, "kind": kind, "causes": [e.cause() for e in errors]},
    )


# ---------------------------------------------------------------------------------------------------
# defaulting


def _default_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


_FALSE_OMITTED = ("stdin", "stdinOnce", "tty")


def default_container(c: dict, ephemeral: bool = False) -> dict:
    for k in _FALSE_OMITTED:  # Go's omitempty drops false booleans from the stored object
        if c.get(k) is False:
            del c[k]
    for k in [k for k, v in c.items() if v is None]:
        del c[k]
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        field_ref = (e.get("valueFrom") or {}).get("fieldRef")
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
                c[probe].setdefault(k, v)
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if c.get("image"):
        c.setdefault("imagePullPolicy", _default_pull_policy(c["image"]))
    return c


def default_pod(pod: dict, namespace: str) -> dict:
    """Fill what the apiserver's defaulting + ServiceAccount/DefaultTolerationSeconds admission fill."""
    meta = pod.setdefault("metadata", {})
    meta["namespace"] = namespace
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + random_suffix()
    meta["generation"] = 1
    for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "managedFields"):
        meta.pop(k, None)
    spec = pod.setdefault("spec", {})
    for c in spec.get("containers") or []:
        default_container(c)
    for c in spec.get("initContainers") or []:
        default_container(c)
    for c in spec.get("ephemeralContainers") or []:
        default_container(c, ephemeral=True)
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            v["hostPath"].setdefault("type", "")
        if "emptyDir" in v and v["emptyDir"] is None:
            v["emptyDir"] = {}
        for kind in ("configMap", "secret", "projected", "downwardAPI"):
            if isinstance(v.get(kind), dict):
                v[kind].setdefault("defaultMode", 420)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    if spec.get("automountServiceAccountToken", True) is not False:
        _add_service_account_volume(spec)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(_tolerates(t, key) for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    return pod


def _tolerates(t: dict, key: str) -> bool:
    if t.get("operator") == "Exists" and not t.get("key"):
        return True
    return t.get("key") == key and t.get("effect") in (None, "", "NoExecute")


def _add_service_account_volume(spec: dict) -> None:
    # The ServiceAccount admission plugin's projected token volume. It is part of the real pod shape; the
    # test kubelet may leave it empty (no tokens are served to pods).
    if any(vm.get("mountPath") == SA_MOUNT_PATH
           for c in spec.get("containers") or [] for vm in c.get("volumeMounts") or []):
        return
    name = "kube-api-access-" + random_suffix()
    spec.setdefault("volumes", []).append({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    })
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        c.setdefault("volumeMounts", []).append({"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH})


def qos_class(spec: dict) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    reqs = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in reqs):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get("cpu") and (r.get("limits") or {}).get("memory")
        and all((r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k)) == (r.get("limits") or {})[k]
                for k in ("cpu", "memory"))
        for r in reqs
    )
    return "Guaranteed" if guaranteed else "Burstable"


# ---------------------------------------------------------------------------------------------------
# validation


def _name_errors(value: str, path: str) -> list[FieldError]:
    if not value:
        return [FieldError("Required", path)]
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return [FieldError(
            "Invalid", path, value,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
            "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )]
    return []


def validate_pod_create(pod: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    meta = pod.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        errs.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        errs.append(FieldError(
            "Invalid", "metadata.name", name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ))
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        errs.append(FieldError("Required", "spec.containers"))
    seen: set[str] = set()
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            path = f"spec.{group}[{i}]"
            n = c.get("name") or ""
            errs += _name_errors(n, f"{path}.name")
            if n and n in seen:
                errs.append(FieldError("Duplicate", f"{path}.name", n))
            seen.add(n)
            if not c.get("image"):
                errs.append(FieldError("Required", f"{path}.image"))
            for j, vm in enumerate(c.get("volumeMounts") or []):
                if vm.get("name") not in volumes:
                    errs.append(FieldError("NotFound", f"{path}.volumeMounts[{j}].name", vm.get("name")))
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        errs.append(FieldError("NotSupported", "spec.restartPolicy", spec.get("restartPolicy"),
                               'supported values: "Always", "Never", "OnFailure"'))
    if spec.get("ephemeralContainers"):
        errs.append(FieldError("Forbidden", "spec.ephemeralContainers",
                               detail="cannot be set on create"))
    return errs


# Fields of an ephemeral container that the API rejects (EphemeralContainerCommon minus the allowed ones).
_EC_FORBIDDEN = ("ports", "resources", "resizePolicy", "lifecycle", "livenessProbe", "readinessProbe",
                 "startupProbe", "restartPolicy")


def validate_ephemeral_update(old: dict, new_ecs: list[dict]) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate: the new list alone, then old vs new."""
    spec = old["spec"]
    errs: list[FieldError] = []
    others = {c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    seen: set[str] = set(others)
    for i, ec in enumerate(new_ecs):
        path = f"spec.ephemeralContainers[{i}]"
        n = ec.get("name") or ""
        name_errs = _name_errors(n, f"{path}.name")
        errs += name_errs
        if n and not name_errs:
            if n in seen:
                errs.append(FieldError("Duplicate", f"{path}.name", n))
            seen.add(n)
        if not ec.get("image"):
            errs.append(FieldError("Required", f"{path}.image"))
        for f in _EC_FORBIDDEN:
            v = ec.get(f)
            if v not in (None, {}, []):
                errs.append(FieldError("Forbidden", f"{path}.{f}", detail="cannot be set for an Ephemeral Container"))
        for j, vm in enumerate(ec.get("volumeMounts") or []):
            if vm.get("name") not in volumes:
                errs.append(FieldError("NotFound", f"{path}.volumeMounts[{j}].name", vm.get("name")))
            if vm.get("subPath"):
                errs.append(FieldError("Forbidden", f"{path}.volumeMounts[{j}].subPath",
                                       detail="cannot be set for an Ephemeral Container"))
        t = ec.get("targetContainerName")
        if t and t not in others:
            errs.append(FieldError("NotFound", f"{path}.targetContainerName", t))
    # Existing ephemeral containers may neither disappear nor change (the last one of a name wins, as in Go).
    by_name = {ec.get("name"): ec for ec in new_ecs}
    for old_ec in spec.get("ephemeralContainers") or []:
        name = old_ec["name"]
        cur = by_name.get(name)
        if cur is None:
            errs.append(FieldError("Forbidden", "spec.ephemeralContainers",
                                   detail=f'existing ephemeral containers "{name}" may not be removed\n'))
        elif _canon(cur) != _canon(old_ec):
            errs.append(FieldError(
                "Forbidden", "spec.ephemeralContainers",
                detail=f'existing ephemeral containers "{name}" may not be changed\n' + _diff(old_ec, cur),
            ))
    return errs


def _canon(ec: dict) -> str:
    return json.dumps(default_container(copy.deepcopy(ec), ephemeral=True), sort_keys=True)


def _diff(old: dict, new: dict) -> str:
    """A go-cmp-like diff. The real one is not stable (random NBSP/space choice), so only its shape matters."""
    old_d = default_container(copy.deepcopy(old), ephemeral=True)
    new_d = default_container(copy.deepcopy(new), ephemeral=True)
    lines = ["\u00a0\u00a0core.EphemeralContainer{"]
    for k in sorted(set(old_d) | set(new_d)):
        if old_d.get(k) != new_d.get(k):
            lines.append(f"-\u00a0\t{k}: {json.dumps(old_d.get(k))},")
            lines.append(f"+\u00a0\t{k}: {json.dumps(new_d.get(k))},")
    lines.append("\u00a0\u00a0}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# patches applied to the ephemeral containers list


def smp_ephemeral(current: list[dict], patch_spec: dict) -> list[dict]:
    """Strategic merge of `spec.ephemeralContainers` (patchMergeKey name, patchStrategy merge).

    Without a $setElementOrder directive the new elements come FIRST, as recorded from the real server.
    """
    result = [copy.deepcopy(c) for c in current]
    items = patch_spec.get("ephemeralContainers")
    if items is None and "ephemeralContainers" in patch_spec:
        result = []
        items = []
    new_items: list[dict] = []
    for item in items or []:
        if not isinstance(item, dict):
            raise ApiError(400, "BadRequest", "invalid strategic merge patch: list element is not an object")
        directive = item.get("$patch")
        name = item.get("name")
        if directive == "delete":
            result = [c for c in result if c.get("name") != name]
            continue
        if directive == "replace":
            result, new_items = [], []
            continue
        existing = next((c for c in result if c.get("name") == name), None)
        if existing is not None:
            _merge_map(existing, item)
        else:
            fresh: dict = {}
            _merge_map(fresh, item)
            new_items.append(fresh)
    merged = new_items + result
    order = patch_spec.get("$setElementOrder/ephemeralContainers")
    if order:
        rank = {o.get("name"): i for i, o in enumerate(order)}
        merged.sort(key=lambda c: rank.get(c.get("name"), len(rank)))
    return merged


def _merge_map(target: dict, patch: dict) -> None:
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_map(target[k], v)
        elif isinstance(v, dict):
            target[k] = {}
            _merge_map(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def strategic_merge(target: object, patch: object) -> object:
    """Strategic merge patch (patch.py: merge keys by field, $patch, $setElementOrder, $retainKeys)."""
    from .patch import strategic_merge as smp

    return smp(target, patch)


_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_pod_update(old: dict, new: dict) -> list[FieldError]:
    """What may change in a pod's spec after creation (ValidatePodUpdate, without in-place resize)."""
    o, n = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
    for spec in (o, n):
        for group in ("containers", "initContainers"):
            for c in spec.get(group) or []:
                default_container(c)
                c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("terminationGracePeriodSeconds", None)
    old_tol = o.pop("tolerations", None) or []
    new_tol = n.pop("tolerations", None) or []
    errs = []
    if any(t not in new_tol for t in old_tol):
        errs.append(FieldError("Forbidden", "spec.tolerations", detail="existing toleration can not be modified "
                                                                        "except its tolerationSeconds"))
    if o != n:
        errs.append(FieldError("Forbidden", "spec", detail=_POD_UPDATE_FORBIDDEN + "\n" + _spec_diff(o, n)))
    return errs


def _spec_diff(old: dict, new: dict) -> str:
    lines = ["\u00a0\u00a0core.PodSpec{"]
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            lines.append(f"-\u00a0\t{k}: {json.dumps(old.get(k))},")
            lines.append(f"+\u00a0\t{k}: {json.dumps(new.get(k))},")
    lines.append("\u00a0\u00a0}")
    return "\n".join(lines) + "\n"


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch (lists are replaced whole)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(500, "InternalError", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: object, parts: list[str]) -> tuple[object, str]:
    cur = doc
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    return cur, parts[-1]


def json_patch(doc: dict, ops: list[dict]) -> dict:
    """RFC 6902 JSON patch on a copy of doc."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in ops:
        kind = op.get("op")
        try:
            parts = _pointer(op.get("path", ""))
            if kind in ("move", "copy"):
                src_parent, src_key = _parent(doc, _pointer(op["from"]))
                value = (src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key])
                value = copy.deepcopy(value)
                if kind == "move":
                    _remove(src_parent, src_key)
                _add(doc, parts, value)
            elif kind == "add":
                _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                parent, key = _parent(doc, parts)
                _remove(parent, key)
            elif kind == "replace":
                parent, key = _parent(doc, parts)
                if isinstance(parent, list):
                    parent[int(key)] = copy.deepcopy(op.get("value"))
                else:
                    if key not in parent:
                        raise KeyError(key)
                    parent[key] = copy.deepcopy(op.get("value"))
            elif kind == "test":
                parent, key = _parent(doc, parts)
                cur = parent[int(key)] if isinstance(parent, list) else parent[key]
                if cur != op.get("value"):
                    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
            else:
                raise ApiError(500, "InternalError", f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(
                500, "InternalError",
                f"the server rejected our request due to an error in our request: {kind} operation does not "
                f"apply: doc is missing path: \"{op.get('path')}\": missing value ({e})",
            ) from None
    return doc


def _add(doc: object, parts: list[str], value: object) -> None:
    parent, key = _parent(doc, parts)
    if isinstance(parent, list):
        if key == "-":
            parent.append(value)
        else:
            idx = int(key)
            if idx > len(parent):
                raise IndexError(key)
            parent.insert(idx, value)
    else:
        parent[key] = value


def _remove(parent: object, key: str) -> None:
    if isinstance(parent, list):
        del parent[int(key)]
    else:
        del parent[key]


# ---------------------------------------------------------------------------------------------------
# Pod Security Admission (k8s.io/pod-security-admission, policy version "latest")

_BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
_VOLUME_TYPES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                 "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                 "vsphereVolume", "quobyte", "azureDisk", "portworxVolume", "photonPersistentDisk",
                 "scaleIO", "storageos", "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                 "persistentVolumeClaim", "projected", "secret", "image")


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _quote(items: list[str]) -> str:
    return ", ".join(json.dumps(i) for i in items)


def _all_containers(spec: dict) -> list[dict]:
    return ((spec.get("initContainers") or []) + (spec.get("containers") or [])
            + (spec.get("ephemeralContainers") or []))


def _sc(c: dict) -> dict:
    return c.get("securityContext") or {}


def _check_host_namespaces(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", ", ".join(bad)) if bad else None


def _check_privileged(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = [c["name"] for c in _all_containers(spec) if _sc(c).get("privileged")]
    if not bad:
        return None
    return ("privileged", f"{_plural(len(bad), 'container', 'containers')} {_quote(bad)} must not set "
                          "securityContext.privileged=true")


def _check_capabilities_baseline(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad, caps = [], set()
    for c in _all_containers(spec):
        added = set((_sc(c).get("capabilities") or {}).get("add") or []) - _BASELINE_CAPS
        if added:
            bad.append(c["name"])
            caps |= added
    if not bad:
        return None
    return ("non-default capabilities", f"{_plural(len(bad), 'container', 'containers')} {_quote(bad)} must "
            f"not include {_quote(sorted(caps))} in securityContext.capabilities.add")


def _check_capabilities_restricted(spec: dict, restricted: bool) -> tuple[str, str] | None:
    no_drop, adding, caps = [], [], set()
    for c in _all_containers(spec):
        capabilities = _sc(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            no_drop.append(c["name"])
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            adding.append(c["name"])
            caps |= added
    details = []
    if no_drop:
        details.append(f"{_plural(len(no_drop), 'container', 'containers')} {_quote(no_drop)} must set "
                       'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural(len(adding), 'container', 'containers')} {_quote(adding)} must not include "
                       f"{_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _check_host_path(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if not bad:
        return None
    return ("hostPath volumes", f"{_plural(len(bad), 'volume', 'volumes')} {_quote(bad)}")


def _check_host_ports(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad, ports = [], set()
    for c in _all_containers(spec):
        hp = {str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")}
        if hp:
            bad.append(c["name"])
            ports |= hp
    if not bad:
        return None
    return ("hostPort", f"{_plural(len(bad), 'container', 'containers')} {_quote(bad)} "
            f"{_plural(len(bad), 'uses', 'use')} {_plural(len(ports), 'hostPort', 'hostPorts')} "
            + ", ".join(sorted(ports)))


def _check_restricted_volumes(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = []
    for v in spec.get("volumes") or []:
        vtype = next((t for t in _VOLUME_TYPES if t in v), None)
        if vtype and vtype not in _RESTRICTED_VOLUMES:
            bad.append((v["name"], vtype))
    if not bad:
        return None
    if len(bad) == 1:
        return ("restricted volume types",
                f'volume "{bad[0][0]}" uses restricted volume type "{bad[0][1]}"')
    types = sorted({t for _, t in bad})
    return ("restricted volume types", f"volumes {_quote([n for n, _ in bad])} use restricted volume "
            f"{_plural(len(types), 'type', 'types')} {_quote(types)}")


def _check_privilege_escalation(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = [c["name"] for c in _all_containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return ("allowPrivilegeEscalation != false", f"{_plural(len(bad), 'container', 'containers')} "
            f"{_quote(bad)} must set securityContext.allowPrivilegeEscalation=false")


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(f"{_plural(len(containers), 'container', 'containers')} {_quote(containers)}")
    return out


def _check_run_as_non_root(spec: dict, restricted: bool) -> tuple[str, str] | None:
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    explicit_bad, implicit_bad = [], []
    for c in _all_containers(spec):
        v = _sc(c).get("runAsNonRoot")
        if v is not None:
            if not v:
                explicit_bad.append(c["name"])
        elif pod_value is not True:
            implicit_bad.append(c["name"])
    setters = _setters(pod_value is False, explicit_bad)
    if setters:
        return ("runAsNonRoot != true",
                f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit_bad:
        return ("runAsNonRoot != true", f"pod or {_plural(len(implicit_bad), 'container', 'containers')} "
                f"{_quote(implicit_bad)} must set securityContext.runAsNonRoot=true")
    return None


def _check_run_as_user(spec: dict, restricted: bool) -> tuple[str, str] | None:
    bad = [c["name"] for c in _all_containers(spec) if _sc(c).get("runAsUser") == 0]
    setters = _setters((spec.get("securityContext") or {}).get("runAsUser") == 0, bad)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def _check_seccomp_baseline(spec: dict, restricted: bool) -> tuple[str, str] | None:
    pod_bad = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type") == "Unconfined"
    bad = [c["name"] for c in _all_containers(spec)
           if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    setters = _setters(pod_bad, bad)
    if not setters:
        return None
    return ("seccompProfile", f'{" and ".join(setters)} must not set securityContext.seccompProfile.type to '
                              '"Unconfined"')


def _check_seccomp_restricted(spec: dict, restricted: bool) -> tuple[str, str] | None:
    ok = ("RuntimeDefault", "Localhost")
    pod_profile = (spec.get("securityContext") or {}).get("seccompProfile")
    bad_values: set[str] = set()
    pod_bad = pod_set = False
    if pod_profile is not None:
        if pod_profile.get("type") in ok:
            pod_set = True
        else:
            pod_bad = True
            bad_values.add(pod_profile.get("type") or "")
    explicit_bad, implicit_bad = [], []
    for c in _all_containers(spec):
        profile = _sc(c).get("seccompProfile")
        if profile is not None:
            if profile.get("type") not in ok:
                explicit_bad.append(c["name"])
                bad_values.add(profile.get("type") or "")
        elif not pod_set:
            implicit_bad.append(c["name"])
    setters = _setters(pod_bad, explicit_bad)
    if setters:
        return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                f"{_quote(sorted(bad_values))}")
    if implicit_bad:
        return ("seccompProfile", f"pod or {_plural(len(implicit_bad), 'container', 'containers')} "
                f'{_quote(implicit_bad)} must set securityContext.seccompProfile.type to "RuntimeDefault" or '
                '"Localhost"')
    return None


# (check ID, level, function, IDs it overrides). The real registry reports baseline checks first, then
# restricted ones, each group sorted by check ID (policy/registry.go, "to maintain consistent error messages").
_CHECKS = [
    ("capabilities_baseline", "baseline", _check_capabilities_baseline, ()),
    ("hostNamespaces", "baseline", _check_host_namespaces, ()),
    ("hostPathVolumes", "baseline", _check_host_path, ()),
    ("hostPorts", "baseline", _check_host_ports, ()),
    ("privileged", "baseline", _check_privileged, ()),
    ("seccompProfile_baseline", "baseline", _check_seccomp_baseline, ()),
    ("allowPrivilegeEscalation", "restricted", _check_privilege_escalation, ()),
    ("capabilities_restricted", "restricted", _check_capabilities_restricted, ("capabilities_baseline",)),
    ("restrictedVolumes", "restricted", _check_restricted_volumes, ("hostPathVolumes",)),
    ("runAsNonRoot", "restricted", _check_run_as_non_root, ()),
    ("runAsUser", "restricted", _check_run_as_user, ()),
    ("seccompProfile_restricted", "restricted", _check_seccomp_restricted, ("seccompProfile_baseline",)),
]


def pod_security_violation(pod: dict, labels: dict, mode: str = "enforce") -> str | None:
    """None if admitted, else the message of the 403 (without the `pods "x" is forbidden: ` prefix).

    mode "warn" evaluates the pod-security.kubernetes.io/warn label instead (for Warning headers)."""
    level = labels.get(f"pod-security.kubernetes.io/{mode}", "privileged")
    version = labels.get(f"pod-security.kubernetes.io/{mode}-version", "latest")
    if level not in ("baseline", "restricted"):
        return None
    active = [c for c in _CHECKS if level == "restricted" or c[1] == "baseline"]
    overridden = {o for c in active for o in c[3]}
    spec = pod.get("spec") or {}
    results = []
    for check_id, _, fn, _ in active:
        if check_id in overridden:
            continue
        r = fn(spec, level == "restricted")
        if r:
            results.append(f"{r[0]} ({r[1]})" if r[1] else r[0])
    if not results:
        return None
    return f'violates PodSecurity "{level}:{version}": ' + ", ".join(results)


def psa_warning(pod: dict, labels: dict) -> str | None:
    """The Warning the real server adds when the namespace's warn level is violated (the pod is admitted)."""
    msg = pod_security_violation(pod, labels, mode="warn")
    return "would violate" + msg[len("violates"):] if msg else None


def forbidden_by_psa(pod: dict, labels: dict) -> ApiError | None:
    msg = pod_security_violation(pod, labels)
    if msg is None:
        return None
    name = pod["metadata"]["name"]
    return ApiError(403, "Forbidden", f'pods "{name}" is forbidden: {msg}', {"name": name, "kind": "pods"})

