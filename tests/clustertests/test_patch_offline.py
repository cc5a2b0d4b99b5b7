"""The test cluster's strategic merge patch (tests/cluster/patch.py) and protobuf decoding (protobuf.py), offline:
whole objects in, whole objects out. The request bodies are what kubectl sent (`kubectl -v=9`)."""

from __future__ import annotations

import pytest

from tests.cluster import patch, protobuf
from tests.cluster.apiserver import decode_protobuf
from tests.cluster.store import ApiError

DEPLOYMENT = {
    "kind": "Deployment", "apiVersion": "apps/v1",
    "metadata": {"name": "web", "namespace": "play", "labels": {"app": "web"},
                 "annotations": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                 {"name": "nginx", "image": "nginx",
                  "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                  "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                  "command": ["nginx", "-g", "daemon off;"]},
                 {"name": "side", "image": "busybox"}]}}},
}


def _containers(obj: object) -> list[dict]:
    assert isinstance(obj, dict)
    return obj["spec"]["template"]["spec"]["containers"]


def test_offline_smp_kubectl_apply_of_a_changed_deployment() -> None:
    """What `kubectl apply` sends for a new env value, a new port and a dropped annotation: lists with a merge key
    merge element by element, $setElementOrder orders them, null deletes, other lists are replaced."""
    body = {
        "metadata": {"annotations": {"b": None, "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 2, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}],
            "containers": [{"name": "nginx", "command": ["nginx"],
                            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}, {"name": "C"}],
                            "env": [{"name": "A", "value": "9"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 8080}, {"containerPort": 443, "$patch": "delete"}]}]}}},
    }
    out = patch.strategic_merge(DEPLOYMENT, body)
    expected = {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "play", "labels": {"app": "web"}, "finalizers": ["x"],
                     "annotations": {"a": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "side", "image": "busybox"},
                     {"name": "nginx", "image": "nginx",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080}],
                      "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}, {"name": "C", "value": "3"}],
                      "command": ["nginx"]}]}}},
    }
    assert out == expected
    assert DEPLOYMENT["spec"]["replicas"] == 1  # the target is not modified


def test_offline_smp_directives() -> None:
    # $patch: replace on a list and on a map; $patch: delete on a map; $deleteFromPrimitiveList; $retainKeys;
    # finalizers (a primitive list with patchStrategy merge) take the patch's new elements.
    body = {"metadata": {"finalizers": ["y", "x"], "labels": {"$patch": "replace", "tier": "front"},
                         "annotations": {"$patch": "delete"}},
            "spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}},
                     "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = patch.strategic_merge(DEPLOYMENT, body)
    assert isinstance(out, dict)
    assert out["metadata"] == {"name": "web", "namespace": "play", "labels": {"tier": "front"},
                               "finalizers": ["x", "y"]}
    assert _containers(out) == [{"name": "only", "image": "i"}]
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = patch.strategic_merge(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert isinstance(out, dict) and out["metadata"]["finalizers"] == ["y"]


def test_offline_smp_service_ports_merge_by_port_and_rbac_lists_are_replaced() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}], "selector": {"app": "web"}}}
    assert patch.strategic_merge(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}) == {
        "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}], "selector": {"app": "web"}}}
    role = {"kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    changed = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
    assert patch.strategic_merge(role, changed) == {"kind": "Role", "metadata": {"name": "r"}, **changed}


def test_offline_patched_by_content_type_and_update_checks() -> None:
    role = {"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    merged = patch.patched(patch.MERGE, role, {"metadata": {"labels": {"a": "b"}}, "rules": []})
    assert merged == {**role, "metadata": {**role["metadata"], "labels": {"a": "b"}}, "rules": []}
    jp = patch.patched(patch.JSON_PATCH, role, [{"op": "add", "path": "/rules/0/verbs/-", "value": "list"}])
    assert jp["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    with pytest.raises(ApiError) as e:
        patch.patched("application/cbor", role, {})
    assert e.value.code == 415 and e.value.message == patch.UNSUPPORTED_PATCH
    # A PUT keeps the server's metadata and refuses a stale resourceVersion or another name.
    put = {"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
           "metadata": {"name": "r", "resourceVersion": "7", "uid": "other", "managedFields": []}, "rules": []}
    assert patch.check_update(role, put, "roles", "rbac.authorization.k8s.io", "r") == {**role, "rules": []}
    with pytest.raises(ApiError) as e:
        patch.check_update(role, {**put, "metadata": {"name": "r", "resourceVersion": "6"}}, "roles",
                           "rbac.authorization.k8s.io", "r")
    assert e.value.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Operation cannot be fulfilled on roles.rbac.authorization.k8s.io "r": the object has been '
                   "modified; please apply your changes to the latest version and try again",
        "reason": "Conflict", "details": {"name": "r", "group": "rbac.authorization.k8s.io", "kind": "roles"},
        "code": 409}
    with pytest.raises(ApiError) as e:
        patch.check_update(role, {"metadata": {"name": "s"}}, "roles", "rbac.authorization.k8s.io", "r")
    assert e.value.code == 400


# `kubectl create deployment web --image=nginx --port=80 -n play` (kubectl v1.33.1, -v=9 hexdump).
KUBECTL_CREATE_DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bc010a230a0377656212001a04706c617922002a0032003800"
    "42005a0a0a0361707012037765621286010801120c0a0a0a0361707012037765621a6c0a1c0a0012001a0022002a00320038004200"
    "5a0a0a036170701203776562124c122e0a056e67696e7812056e67696e782a00320a0a001000185022002a0042006a007200800100"
    "880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c080010001800"
    "2000280038001a002200")


def test_offline_protobuf_create_deployment_as_kubectl_sends_it() -> None:
    assert decode_protobuf(KUBECTL_CREATE_DEPLOYMENT) == {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "play", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}}},
    }


def _pb(number: int, value: bytes | int) -> bytes:
    """One protobuf field (length-delimited or varint), for bodies shaped like kubectl's."""
    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + _pb(1, _pb(1, api_version.encode()) + _pb(2, kind.encode())) + _pb(2, raw)


def test_offline_protobuf_role_rolebinding_and_refusals() -> None:
    meta = _pb(1, _pb(1, b"r1") + _pb(2, b"") + _pb(3, b"play"))
    rule = _pb(2, _pb(1, b"get") + _pb(1, b"list") + _pb(2, b"") + _pb(3, b"pods"))
    assert decode_protobuf(_envelope("rbac.authorization.k8s.io/v1", "Role", meta + rule)) == {
        "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r1", "namespace": "play"},
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}
    subject = _pb(2, _pb(1, b"ServiceAccount") + _pb(2, b"") + _pb(3, b"default") + _pb(4, b"play"))
    ref = _pb(3, _pb(1, b"rbac.authorization.k8s.io") + _pb(2, b"Role") + _pb(3, b"r1"))
    assert decode_protobuf(_envelope("rbac.authorization.k8s.io/v1", "RoleBinding", meta + subject + ref)) == {
        "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "r1", "namespace": "play"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "play"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}}
    # A pointer field keeps its zero (replicas: 0), a negative int32 is a 10-byte varint.
    spec = _pb(2, _pb(1, 0) + _pb(5, (1 << 64) - 1))
    assert protobuf.decode_message("Deployment", spec) == {"spec": {"replicas": 0, "minReadySeconds": -1}}
    # A field with a value that is not in the schema, or a kind that is not, is refused (answered 415).
    with pytest.raises(ValueError, match="field 99"):
        decode_protobuf(_envelope("rbac.authorization.k8s.io/v1", "Role", meta + _pb(99, b"x")))
    with pytest.raises(ValueError, match="not supported"):
        decode_protobuf(_envelope("v1", "ConfigMap", meta))
