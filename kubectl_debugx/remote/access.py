"""What each command may need to be allowed (RBAC), asked all at once, and the Role that would grant it.

A refusal of the API server names one permission (the first check that failed: pods/ephemeralcontainers on a
fresh pod, pods/exec on a pod whose debug container is reused), so a user asking an admin for access would need
several round trips. Here every permission a command uses is asked in one batch of SelfSubjectAccessReviews
(recordings 07-rbac-ssar-*, 22-ssar-*: allowed true/false, a denied answer carries no reason), and the
refusal lists all that are missing.

A WebSocket exec is a GET authorized as `get pods/exec`; since Kubernetes 1.31 (feature
AuthorizePodWebsocketUpgradeCreatePermission) it must also be allowed `create pods/exec`: both are needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import Forbidden
from kubectl_debugx.kube.client import KubeApi


@dataclass(frozen=True, order=True)
class Permission:
    verb: str
    resource: str
    subresource: str = ""
    cluster: bool = False  # cluster-scoped (nodes): granted by a ClusterRole, asked without a namespace
    group: str = ""

    @property
    def full(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        return f"{self.verb} {self.full}"


GET_PODS = Permission("get", "pods")
PATCH_EPHEMERAL = Permission("patch", "pods", "ephemeralcontainers")
EXEC = (Permission("get", "pods", "exec"), Permission("create", "pods", "exec"))
NODES_PROXY = Permission("get", "nodes", "proxy", cluster=True)

# What a tool run in an ephemeral container needs (remote/session.py): read the pod, add the container, exec
# the tool (and the second exec that stops it). Watching is not needed: without it the wait polls
# (kube/pods.py wait_for_pod).
EPHEMERAL_RUN = (GET_PODS, PATCH_EPHEMERAL, *EXEC)
# nodelogs --via pod: the node pod is created, read until it runs, exec'd into and deleted.
NODE_POD_RUN = (GET_PODS, Permission("create", "pods"), *EXEC, Permission("delete", "pods"))
# ... and what running it as a Job adds (commands/nodelogs/nodejob.py): create and delete the Job, and find its
# pod, whose name the Job controller chooses, by listing; patch it to raise its deadline once the lease is held
# (a short one until then ends a pod whose image never arrives after a kill -9). The pod is still dry-run first
# (create pods): Pod Security enforces on pods only, so a Job's dry run passes where its pod would be refused.
NODE_JOB_EXTRA = (Permission("list", "pods"), Permission("create", "jobs", group="batch"),
                  Permission("patch", "jobs", group="batch"), Permission("delete", "jobs", group="batch"))

NEEDS: dict[str, tuple[Permission, ...]] = {
    "capture": EPHEMERAL_RUN,
    "trace": EPHEMERAL_RUN,
    "cp": EPHEMERAL_RUN,
    "shell": EPHEMERAL_RUN,
    "nodelogs --via proxy": (GET_PODS, NODES_PROXY),
    "nodelogs --via pod": NODE_POD_RUN,
    "nodelogs --via pod, as a Job": NODE_POD_RUN + NODE_JOB_EXTRA,
}


def unique(permissions: Iterable[Permission]) -> list[Permission]:
    """In first-seen order, once each."""
    return list(dict.fromkeys(permissions))


def review(kube: KubeApi, namespace: str, permissions: Sequence[Permission]) -> dict[Permission, bool | None]:
    """One batch of SelfSubjectAccessReviews: each permission -> allowed (None: the review could not be made)."""
    asked = unique(permissions)
    answers = kube.can_i_all([(p.verb, p.resource, "" if p.cluster else namespace, p.subresource)
                              + ((p.group,) if p.group else ()) for p in asked])
    return dict(zip(asked, answers, strict=True))


def missing(answers: Mapping[Permission, bool | None]) -> list[Permission]:
    """The permissions the reviews denied (an unanswered review is not counted as missing)."""
    return [p for p, allowed in answers.items() if allowed is False]


def listed(permissions: Iterable[Permission]) -> str:
    """`patch pods/ephemeralcontainers, get and create pods/exec`: one resource's verbs together."""
    verbs: dict[str, list[str]] = {}
    for p in permissions:
        verbs.setdefault(p.full, []).append(p.verb)
    return ", ".join(f"{_and(v)} {resource}" for resource, v in verbs.items())


def _and(words: Sequence[str]) -> str:
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def lacking_error(command: str, namespace: str, pod: str, lacking: Sequence[Permission],
                  created: str = "nothing was created", said: str = "") -> Forbidden:
    """One line naming every permission `command` lacks (after what the server `said`, if it refused), and
    where to get the Role that grants them."""
    where = f"in namespace {namespace}" if any(not p.cluster for p in lacking) else "in the cluster"
    return Forbidden(f"{said + '; ' if said else ''}{command} needs {listed(lacking)} {where}, which you may "
                     f"not; {created}{doctor_hint(command, namespace, pod)}")


def doctor_hint(command: str, namespace: str, pod: str) -> str:
    return f". `kubectl debugx doctor {pod} -n {namespace} --for {command.split()[0]}` prints a Role that grants them"


def refusal(kube: KubeApi, namespace: str, command: str, pod: str, needs: Sequence[Permission],
            server_message: str, created: str = "nothing was created") -> Forbidden:
    """An RBAC refusal of the server, completed with everything else `command` lacks (one batch of reviews)."""
    try:
        lacking = missing(review(kube, namespace, needs))
    except Exception:  # noqa: BLE001 - the reviews are a courtesy; the server's refusal is the error
        lacking = []
    if not lacking:
        return Forbidden(f"{server_message}; {created}")
    return lacking_error(command, namespace, pod, lacking, created, said=server_message)


ROLE_NAME = "debugx-user"


def role_objects(lacking: Sequence[Permission], namespace: str, name: str = ROLE_NAME) -> list[dict[str, Any]]:
    """The Role (namespaced permissions) and ClusterRole (cluster-scoped ones, e.g. nodes/proxy) that grant
    `lacking`; one rule per resource, verbs sorted. Binding them to a user is the admin's choice."""
    objects = []
    for cluster, kind in ((False, "Role"), (True, "ClusterRole")):
        rules: dict[tuple[str, str], set[str]] = {}
        for p in lacking:
            if p.cluster == cluster:
                rules.setdefault((p.group, p.full), set()).add(p.verb)
        if not rules:
            continue
        metadata: dict[str, Any] = {"name": name}
        if not cluster:
            metadata["namespace"] = namespace
        objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": metadata,
            "rules": [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
                      for (group, resource), verbs in rules.items()],
        })
    return objects


def role_yaml(lacking: Sequence[Permission], namespace: str) -> str:
    """role_objects as one YAML stream for `kubectl apply -f -`."""
    import yaml

    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in role_objects(lacking, namespace))
