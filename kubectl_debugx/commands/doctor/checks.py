"""doctor's checks: each asks the cluster read-only things (or a server-side dry run) and returns rows.

Pure helpers (image_on_node, pod_security_level, ...) have whole-object unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.commands.cp.procroot import must_run_as_non_root, target_user
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import access, profiles

OK, NO, WARN, INFO = "ok", "no", "warning", "info"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class Row:
    check: str
    result: str  # OK, NO, WARN, INFO
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "result": self.result, "detail": self.detail}


def permission_rows(answers: Mapping[access.Permission, bool | None],
                    users: Mapping[access.Permission, Sequence[str]]) -> list[Row]:
    """One row per permission asked: allowed, denied, or not answered; which commands need it."""
    rows = []
    for permission, allowed in answers.items():
        result = {True: OK, False: NO, None: WARN}[allowed]
        scope = " (cluster)" if permission.cluster else ""
        detail = "needed by " + ", ".join(users.get(permission, ()))
        if allowed is None:
            detail = "the access review could not be made; " + detail
        rows.append(Row(f"may {permission}{scope}", result, detail))
    return rows


def pod_security_level(namespace: Mapping[str, Any] | None) -> tuple[str, str]:
    """(level, detail) from the namespace's labels; the level is "" when the namespace could not be read."""
    if namespace is None:
        return "", "cannot get the namespace: the dry runs below still show what Pod Security admits"
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_ENFORCE)
    if not level:
        return "privileged", (f"no {PSA_ENFORCE} label: the cluster's default applies (privileged unless its "
                              "admission configuration says otherwise)")
    version = labels.get(f"{PSA_ENFORCE}-version")
    return level, f"{PSA_ENFORCE}={level}" + (f" (version {version})" if version else "")


def user_row(pod: Mapping[str, Any], container: str) -> Row:
    uid, non_root = target_user(pod, container)[0], must_run_as_non_root(pod, container)
    who = "the image's USER (not in the pod spec)" if uid is None else f"uid {uid}"
    rule = "; runAsNonRoot" if non_root else ""
    note = ("; capture and trace run their debug container as root (runAsUser: 0) for its capabilities to be "
            "effective" if non_root or (uid not in (None, 0)) else "")
    return Row(f"container {container} runs as", INFO, who + rule + note)


def root_fs_row(pod: Mapping[str, Any], container: str) -> Row | None:
    """For cp into the container: a read-only root filesystem takes writes only in its volumes (EROFS
    elsewhere), which cp would refuse in one line; None when the root is writable."""
    spec = pod.get("spec") or {}
    ctr: Mapping[str, Any] = next((c for c in spec.get("containers") or [] if c.get("name") == container), {})
    if not (ctr.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return None
    mounts = [m.get("mountPath", "") for m in ctr.get("volumeMounts") or [] if not m.get("readOnly")]
    where = f"only in its writable volumes: {', '.join(mounts)}" if mounts else "nowhere (no writable volume)"
    return Row(f"container {container} root filesystem", WARN,
               f"read-only (readOnlyRootFilesystem): cp into the container writes {where}")


def _repository(image: str) -> tuple[str, str]:
    """(repository, tag or digest) with Docker Hub's defaults filled in: `nginx:1.27` ->
    (`docker.io/library/nginx`, `1.27`), as the node's status.images names it."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = "latest"
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    return name, (digest if at else tag)


def image_on_node(image: str, node: Mapping[str, Any]) -> bool:
    """Whether the node's status.images lists `image` (any of its names, Docker Hub defaults filled in)."""
    wanted = _repository(image)
    for entry in (node.get("status") or {}).get("images") or []:
        for name in entry.get("names") or []:
            if _repository(name) == wanted:
                return True
    return False


def node_rows(kube: KubeApi, node_name: str, image: str, pull_policy: str) -> tuple[list[Row], str]:
    """The node's runtime (and whether it grants NET_RAW unasked) and whether the debug image is there;
    the runtime ("" if unknown)."""
    try:
        node = kube.get_node(node_name)
    except ApiError as e:
        if e.status not in (403, 404):
            raise
        why = "may not get nodes" if e.status == 403 else "not found"
        return [Row(f"node {node_name}", WARN, f"{why}: runtime and images unknown"),
                Row("debug image", INFO, f"{image}, imagePullPolicy {pull_policy}; on the node: unknown")], ""
    info = (node.get("status") or {}).get("nodeInfo") or {}
    version = info.get("containerRuntimeVersion", "")
    runtime = profiles.runtime_name(version)
    grants = profiles.grants_by_default(runtime, "NET_RAW")
    rows = [Row(f"node {node_name} runtime", INFO,
                f"{version or 'unknown'}: {'grants' if grants else 'does not grant'} NET_RAW by default")]
    present = image_on_node(image, node)
    if pull_policy == "Never" and not present:
        rows.append(Row("debug image", NO, f"{image} is not on the node and imagePullPolicy is Never"))
    else:
        where = "already on the node" if present else "not on the node: it will be pulled (allow for the time)"
        rows.append(Row("debug image", OK if present else INFO, f"{image}, imagePullPolicy {pull_policy}; {where}"))
    return rows, runtime


def table(rows: Sequence[Row]) -> str:
    """kubectl's plain table: upper-case headers, columns three spaces apart, no trailing blanks."""
    lines = [("CHECK", "RESULT", "DETAIL"), *[(r.check, r.result, r.detail) for r in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(2)]
    return "".join(f"{a.ljust(widths[0])}   {b.ljust(widths[1])}   {c}".rstrip() + "\n" for a, b, c in lines)
