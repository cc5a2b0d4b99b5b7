"""PATCH and PUT of stored objects: strategic merge patch, and the handler of objects kept as given (RBAC, SAs).

Why: `kubectl apply -f` of a changed Role, RoleBinding or Deployment is a GET then a PATCH with
`application/strategic-merge-patch+json` (`application/merge-patch+json` for kinds without a Go struct) whose
body carries the changed fields and `metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`;
`kubectl apply --server-side` is a PATCH with `application/apply-patch+yaml` (seen with `kubectl -v=9` against
this cluster). Before this module Roles and RoleBindings answered 405 to both.

Strategic merge (k8s.io/apimachinery/pkg/util/strategicpatch), the subset the served kinds need: maps merge
and `null` deletes a key; a list whose field has a patchMergeKey in k8s.io/api (containers and env by `name`,
container ports by `containerPort`, a Service's ports by `port`, volumeMounts by `mountPath`...) merges element
by element, `{"$patch": "delete", KEY: ...}` removes one, `{"$patch": "replace"}` replaces the list;
`$setElementOrder/FIELD` orders it; `$deleteFromPrimitiveList/FIELD` and `$retainKeys` are honoured; every other
list (a Role's `rules`, a binding's `subjects`, `command`, `tolerations`) is replaced whole, as those fields have
no patch strategy. Server-side apply is modelled as that same merge of the applied configuration, or a create
when the object does not exist yet (README "Deliberate differences": no managedFields, so a field dropped from
the configuration is not removed).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .store import ApiError, bad_request, not_found

if TYPE_CHECKING:
    from aiohttp import web

    from .apiserver import ApiServer, RequestInfo

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
# The real server's list, in its order, for a PATCH of any other type (415).
UNSUPPORTED_PATCH = ("the body of the request was in an unknown format - accepted media types include: "
                     f"{JSON_PATCH}, {MERGE}, {APPLY}, {SMP}")

# patchMergeKey of the list fields of the served kinds (k8s.io/api struct tags `patchMergeKey`).
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
               "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
               "imagePullSecrets": "name", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
               "ownerReferences": "uid", "conditions": "type", "resourceClaims": "name"}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# Lists of scalars with patchStrategy merge: the patch's elements are added (metadata.finalizers).
_PRIMITIVE_MERGE = ("finalizers",)


def _merge_key(path: tuple[str, ...]) -> str | None:
    if not path:
        return None
    if path[-1] == "ports":
        # Container ports merge by containerPort, a Service's spec.ports by port (core/v1 types.go).
        return "containerPort" if len(path) > 1 and path[-2] in _CONTAINER_LISTS else "port"
    return _MERGE_KEYS.get(path[-1])


def _clean(value: object) -> object:
    """A patch value as it is stored: directives dropped, nulls in maps removed (a new map has nothing to delete)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return copy.deepcopy(value)


_DELETE = object()  # a map patched with {"$patch": "delete"}: its key goes


def strategic_merge(target: object, patch: object, path: tuple[str, ...] = ()) -> object:
    """The strategic merge of `patch` into `target` (neither is modified); see the module docstring."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return _DELETE
        if directive == "replace" or not isinstance(target, dict):
            return _clean(patch)
        out = copy.deepcopy(target)
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if v is None:
                out.pop(k, None)
                continue
            merged = strategic_merge(out.get(k), v, (*path, k))
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        for k, v in patch.items():
            field = k.split("/", 1)[1] if "/" in k else ""
            if k.startswith("$deleteFromPrimitiveList/") and isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in (v or [])]
            elif k.startswith("$setElementOrder/") and isinstance(out.get(field), list):
                out[field] = _ordered(out[field], v or [], _merge_key((*path, field)))
        retain = patch.get("$retainKeys")
        if isinstance(retain, list):
            out = {k: v for k, v in out.items() if k in retain}
        return out
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(path)
        if key is not None:
            return _merge_list(target, patch, key, path)
        if path and path[-1] in _PRIMITIVE_MERGE:
            return copy.deepcopy(target) + [copy.deepcopy(x) for x in patch if x not in target]
    return _clean(patch)


def _merge_list(target: list, patch: list, key: str, path: tuple[str, ...]) -> list:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_clean(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    out = [copy.deepcopy(t) for t in target]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"invalid strategic merge patch: element of {path[-1]} is not an object")
        idx = next((i for i, t in enumerate(out) if isinstance(t, dict) and t.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(_clean(item))
        else:
            out[idx] = strategic_merge(out[idx], item, path)  # type: ignore[assignment]
    return out


def _ordered(items: list, order: list, key: str | None) -> list:
    """`$setElementOrder`: the listed elements in that order first, then the others as they were."""
    ident = (lambda x: x.get(key) if isinstance(x, dict) else x) if key else (lambda x: x)
    rank = {ident(o) if key else o: i for i, o in enumerate(order)}
    return sorted(items, key=lambda x: rank.get(ident(x), len(rank)))


def patched(content_type: str, obj: dict, body: object) -> dict:
    """What a PATCH of `content_type` makes of `obj`."""
    from . import admission

    if content_type in (SMP, APPLY):
        new = strategic_merge(obj, body)
    elif content_type == MERGE:
        new = admission.merge_patch(obj, body)
    elif content_type == JSON_PATCH:
        new = admission.json_patch(obj, body)  # type: ignore[arg-type]
    else:
        raise ApiError(415, "UnsupportedMediaType", UNSUPPORTED_PATCH, {})
    if not isinstance(new, dict):
        raise bad_request("the body of the request was in an unknown format")
    return new


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def check_update(old: dict, new: dict, resource: str, group: str, name: str) -> dict:
    """A PUT or PATCH result made storable: the server's own metadata kept, a stale resourceVersion refused."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    if meta.get("name", name) != name:
        # k8s.io/apiserver/pkg/endpoints/handlers/rest.go (checkName): 400 BadRequest.
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    rv = meta.get("resourceVersion")
    if rv and rv != old["metadata"]["resourceVersion"]:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": '
                       "the object has been modified; please apply your changes to the latest version and try again",
                       {"name": name, "group": group, "kind": resource} if group else {"name": name, "kind": resource})
    out = copy.deepcopy(new)
    out["kind"], out["apiVersion"] = old["kind"], old["apiVersion"]
    kept = {k: old["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in old["metadata"]}
    out["metadata"] = {**{k: v for k, v in meta.items() if k != "managedFields"}, **kept}
    return out


async def change_simple(server: ApiServer, request: web.Request, info: RequestInfo, kind: str, api_version: str,
                        ns: str | None) -> web.Response:
    """PATCH (every type above) and PUT of an object stored as given (apiserver._SIMPLE_KINDS)."""
    from . import apiserver as api

    name = info.name or ""
    body = await api._body(request)
    old = server.store.get(info.resource, ns, name)
    if old is None:
        if info.verb == "patch" and request.content_type == APPLY and isinstance(body, dict):
            # Server-side apply of an object that does not exist creates it (201), as the real server does.
            return await _create_applied(server, request, info, ns, body)
        raise not_found(info.resource, name, info.group)
    if info.verb == "update":
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        new = body
    else:
        new = patched(request.content_type, old, body)
    new = check_update(old, new, info.resource, info.group, name)
    if new == old or api._truthy_dry(request):
        return api._json(new)
    return api._json(server.store.update(info.resource, ns, new))


async def _create_applied(server: ApiServer, request: web.Request, info: RequestInfo, ns: str | None,
                          body: dict) -> web.Response:
    from . import apiserver as api

    name = info.name or ""
    meta = body.get("metadata") or {}
    if meta.get("name", name) != name:
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    if ns is not None and server.store.get("namespaces", None, ns) is None:
        raise not_found("namespaces", ns)
    obj = {**body, "metadata": {k: v for k, v in meta.items()
                                if k not in ("uid", "resourceVersion", "creationTimestamp", "managedFields")}}
    obj["metadata"]["name"] = name
    if ns is not None:
        obj["metadata"]["namespace"] = ns
    if api._truthy_dry(request):
        return api._json(obj, 201)
    return api._json(server.store.create(info.resource, ns, obj), 201)


async def apply_creates_workload(server: ApiServer, request: web.Request, info: RequestInfo) -> web.Response | None:
    """Server-side apply of a workload (Deployment...) that does not exist: its create, with the controller
    acting as for a POST. None when the object exists (the workloads' own PATCH handler merges it)."""
    from . import apiserver as api

    if info.verb != "patch" or request.content_type != APPLY or info.subresource:
        return None
    if server.store.get(info.resource, info.namespace, info.name or "") is not None:
        return None
    body = await api._body(request)
    if not isinstance(body, dict):
        raise bad_request("the body of the request was in an unknown format")
    meta = body.setdefault("metadata", {})
    if meta.get("name", info.name) != info.name:
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                          f"({info.name})")
    meta["name"] = info.name
    if server.store.get("namespaces", None, info.namespace or "") is None:
        raise not_found("namespaces", info.namespace or "")
    return api._json(server.workloads.create(info.resource, info.namespace or "", body, api._truthy_dry(request)), 201)
