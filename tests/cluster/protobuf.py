"""Protobuf request bodies of kubectl's typed `create` commands, decoded into the JSON the same object would have.

kubectl (v1.32 and v1.33 alike) POSTs `Content-Type: application/vnd.kubernetes.protobuf` for the objects its
generators build: `kubectl create deployment`, `create role`, `create rolebinding`, `create clusterrole`,
`create clusterrolebinding`, `create service`, and it does NOT retry with JSON after a 415 (seen with `-v=9`:
`error: failed to create deployment: the body of the request was in an unknown format`). So the test cluster
decodes those kinds; apiserver.decode_protobuf keeps its hand-written Namespace/ServiceAccount/TokenRequest/
SelfSubjectAccessReview cases and comes here for the rest.

The schemas below are the field numbers of k8s.io/api's generated.proto, for the fields those generators
fill in. gogo-protobuf marshals every non-pointer field, empty or not (`12 00` = generateName ""), and a
pointer field only when it is set; so an empty string, false or 0 is dropped (the JSON `omitempty` would drop
it too) unless the field is a pointer (flag "p": `replicas: 0` and `runAsUser: 0` mean something). A field
this module does not know is ignored when empty and refused (ValueError, answered 415) when it carries a
value: better a clear refusal than an object silently missing a field.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tests.cluster.protobuf")

# A field: (json name, type, flags). Types: "s" string, "i" integer, "b" bool, "map" string->string, "qty"
# string->Quantity, "ios" IntOrString, or the name of a message in SCHEMAS. Flags: "r" repeated, "p" pointer.
Field = tuple[str, str, str]

_META: dict[int, Field] = {
    1: ("name", "s", ""), 2: ("generateName", "s", ""), 3: ("namespace", "s", ""), 4: ("selfLink", "s", ""),
    5: ("uid", "s", ""), 6: ("resourceVersion", "s", ""), 7: ("generation", "i", ""),
    8: ("creationTimestamp", "Time", ""), 11: ("labels", "map", ""), 12: ("annotations", "map", ""),
    14: ("finalizers", "s", "r"),
}
SCHEMAS: dict[str, dict[int, Field]] = {
    "ObjectMeta": _META,
    # metav1.Time is {seconds, nanos}; a typed object from kubectl has none (creationTimestamp: null).
    "Time": {1: ("seconds", "i", ""), 2: ("nanos", "i", "")},
    "LabelSelector": {1: ("matchLabels", "map", ""), 2: ("matchExpressions", "LabelSelectorRequirement", "r")},
    "LabelSelectorRequirement": {1: ("key", "s", ""), 2: ("operator", "s", ""), 3: ("values", "s", "r")},
    # apps/v1
    "Deployment": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "DeploymentSpec", ""),
                   3: ("status", "DeploymentStatus", "")},
    "DeploymentSpec": {1: ("replicas", "i", "p"), 2: ("selector", "LabelSelector", ""),
                       3: ("template", "PodTemplateSpec", ""), 4: ("strategy", "DeploymentStrategy", ""),
                       5: ("minReadySeconds", "i", ""), 6: ("revisionHistoryLimit", "i", "p"),
                       7: ("paused", "b", ""), 9: ("progressDeadlineSeconds", "i", "p")},
    "DeploymentStrategy": {1: ("type", "s", "")},
    "DeploymentStatus": {},
    # batch/v1
    "Job": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "JobSpec", ""), 3: ("status", "JobStatus", "")},
    "JobSpec": {1: ("parallelism", "i", "p"), 2: ("completions", "i", "p"), 3: ("activeDeadlineSeconds", "i", "p"),
                4: ("selector", "LabelSelector", ""), 5: ("manualSelector", "b", "p"),
                6: ("template", "PodTemplateSpec", ""), 7: ("backoffLimit", "i", "p"),
                8: ("ttlSecondsAfterFinished", "i", "p"), 10: ("suspend", "b", "p")},
    "JobStatus": {},
    # core/v1
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "PodSpec", "")},
    "PodSpec": {2: ("containers", "Container", "r"), 3: ("restartPolicy", "s", ""),
                4: ("terminationGracePeriodSeconds", "i", "p"), 6: ("dnsPolicy", "s", ""),
                7: ("nodeSelector", "map", ""), 8: ("serviceAccountName", "s", ""),
                9: ("serviceAccount", "s", ""), 10: ("nodeName", "s", ""), 11: ("hostNetwork", "b", ""),
                12: ("hostPID", "b", ""), 13: ("hostIPC", "b", ""), 14: ("securityContext", "PodSecurityContext", ""),
                16: ("hostname", "s", ""), 17: ("subdomain", "s", ""), 19: ("schedulerName", "s", ""),
                20: ("initContainers", "Container", "r"), 24: ("priorityClassName", "s", "")},
    "PodSecurityContext": {},
    "Container": {1: ("name", "s", ""), 2: ("image", "s", ""), 3: ("command", "s", "r"), 4: ("args", "s", "r"),
                  5: ("workingDir", "s", ""), 6: ("ports", "ContainerPort", "r"), 7: ("env", "EnvVar", "r"),
                  8: ("resources", "ResourceRequirements", ""), 13: ("terminationMessagePath", "s", ""),
                  14: ("imagePullPolicy", "s", ""), 16: ("stdin", "b", ""), 17: ("stdinOnce", "b", ""),
                  18: ("tty", "b", ""), 20: ("terminationMessagePolicy", "s", "")},
    "ContainerPort": {1: ("name", "s", ""), 2: ("hostPort", "i", ""), 3: ("containerPort", "i", ""),
                      4: ("protocol", "s", ""), 5: ("hostIP", "s", "")},
    "EnvVar": {1: ("name", "s", ""), 2: ("value", "s", "")},
    "ResourceRequirements": {1: ("limits", "qty", ""), 2: ("requests", "qty", "")},
    "Service": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "ServiceSpec", ""), 3: ("status", "ServiceStatus", "")},
    "ServiceSpec": {1: ("ports", "ServicePort", "r"), 2: ("selector", "map", ""), 3: ("clusterIP", "s", ""),
                    4: ("type", "s", ""), 7: ("sessionAffinity", "s", ""), 10: ("externalName", "s", ""),
                    11: ("externalTrafficPolicy", "s", "")},
    "ServicePort": {1: ("name", "s", ""), 2: ("protocol", "s", ""), 3: ("port", "i", ""),
                    4: ("targetPort", "ios", ""), 5: ("nodePort", "i", "")},
    "ServiceStatus": {1: ("loadBalancer", "LoadBalancerStatus", "")},
    "LoadBalancerStatus": {},
    # rbac.authorization.k8s.io/v1
    "Role": {1: ("metadata", "ObjectMeta", ""), 2: ("rules", "PolicyRule", "r")},
    "ClusterRole": {1: ("metadata", "ObjectMeta", ""), 2: ("rules", "PolicyRule", "r"),
                    3: ("aggregationRule", "AggregationRule", "")},
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", "r")},
    "PolicyRule": {1: ("verbs", "s", "r"), 2: ("apiGroups", "s", "r"), 3: ("resources", "s", "r"),
                   4: ("resourceNames", "s", "r"), 5: ("nonResourceURLs", "s", "r")},
    "RoleBinding": {1: ("metadata", "ObjectMeta", ""), 2: ("subjects", "Subject", "r"), 3: ("roleRef", "RoleRef", "")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta", ""), 2: ("subjects", "Subject", "r"),
                           3: ("roleRef", "RoleRef", "")},
    "Subject": {1: ("kind", "s", ""), 2: ("apiGroup", "s", ""), 3: ("name", "s", ""), 4: ("namespace", "s", "")},
    # RoleRef.apiGroup has no omitempty, but it is never empty in what kubectl sends.
    "RoleRef": {1: ("apiGroup", "s", ""), 2: ("kind", "s", ""), 3: ("name", "s", "")},
}
# The kinds decoded here (top-level messages), with the apiVersion a body must carry.
KINDS = {"Deployment": "apps/v1", "Job": "batch/v1", "Service": "v1", "Role": "rbac.authorization.k8s.io/v1",
         "ClusterRole": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
         "ClusterRoleBinding": "rbac.authorization.k8s.io/v1"}


def fields(data: bytes) -> list[tuple[int, int, object]]:
    """One protobuf message level: [(field number, wire type, value)], value an int (varint) or bytes."""
    out: list[tuple[int, int, object]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 2:
            n = varint()
            if i + n > len(data):
                raise ValueError("truncated protobuf field")
            out.append((number, wire, data[i:i + n]))
            i += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            out.append((number, wire, data[i:i + n]))
            i += n
        else:
            raise ValueError(f"protobuf wire type {wire}")
    return out


def _int(v: object) -> int:
    if not isinstance(v, int):
        raise ValueError("protobuf: expected a varint")
    # int32/int64 negatives are sent as 64-bit two's complement varints.
    return v - (1 << 64) if v >= 1 << 63 else v


def _bytes(v: object) -> bytes:
    if not isinstance(v, bytes):
        raise ValueError("protobuf: expected a length-delimited field")
    return v


def _str(v: object) -> str:
    return _bytes(v).decode()


def _entry(v: object) -> tuple[str, bytes]:
    kv = {n: val for n, _, val in fields(_bytes(v))}
    return _str(kv.get(1, b"")), _bytes(kv.get(2, b""))


def _empty(v: object) -> bool:
    return v in (0, b"")


def _value(type_: str, v: object) -> object:
    if type_ == "s":
        return _str(v)
    if type_ == "i":
        return _int(v)
    if type_ == "b":
        return bool(_int(v))
    if type_ == "ios":
        parts = {n: val for n, _, val in fields(_bytes(v))}
        return _str(parts.get(3, b"")) if _int(parts.get(1, 0)) == 1 else _int(parts.get(2, 0))
    return decode_message(type_, _bytes(v))


def decode_message(message: str, data: bytes) -> dict:
    """One message of SCHEMAS as its JSON object."""
    schema = SCHEMAS[message]
    out: dict = {}
    for number, _, v in fields(data):
        spec = schema.get(number)
        if spec is None:
            if not _empty(v):
                raise ValueError(f"protobuf {message} field {number} is not decoded by the test cluster")
            continue
        name, type_, flags = spec
        if type_ in ("map", "qty"):
            key, raw = _entry(v)
            # A Quantity is a message whose field 1 is its string form ("100m", "1Gi").
            val = _str(dict((n, x) for n, _, x in fields(raw)).get(1, b"")) if type_ == "qty" else raw.decode()
            out.setdefault(name, {})[key] = val
        elif "r" in flags:
            out.setdefault(name, []).append(_value(type_, v))
        else:
            val = _value(type_, v)
            if "p" in flags or val not in ("", 0, False, {}):
                out[name] = val
    return out


def decode_object(kind: str, api_version: str, raw: bytes) -> dict:
    """The object of a `k8s\\0` envelope (already split: its kind, apiVersion and raw bytes) as JSON."""
    if KINDS.get(kind) != api_version:
        raise ValueError(f"protobuf {api_version} {kind} is not supported by the test cluster")
    try:
        obj = decode_message(kind, raw)
    except ValueError as e:
        log.warning("%s", e)
        raise
    return {"kind": kind, "apiVersion": api_version, **obj}
