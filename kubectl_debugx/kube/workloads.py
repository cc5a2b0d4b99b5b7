"""Targets as kubectl spells them, resolved to pods: `POD`, `pod/NAME`, `deploy/NAME`, `sts/`, `ds/`, `rs/`, `job/`,
`svc/NAME` (the service's selector) and `-l/--selector` (in one namespace, or every one with -A); also with the API
group, as `kubectl get -o name` prints them (`deployment.apps/web`, `job.batch/x`, `deployment.v1.apps/web`).

Every command that works on pods (capture, trace, nodelogs, and what comes next) parses its target with
`parse_target` (pure: the flag errors come before any cluster call) and resolves it with `resolve`: the object's
selector, then one pod list with that selector. Pods that do not run (Pending, Succeeded, Failed, being deleted:
recordings/21-* shows a rollout's old pods Running with a deletionTimestamp, then Succeeded) are skipped and
named, so the caller can say so; `check_max_pods` bounds the set like stern's --max-log-requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx.errors import DebugxError, NotFound, NotReady, UsageError
from kubectl_debugx.kube.client import KubeApi

DEFAULT_MAX_PODS = 10

# kind -> (API path prefix, resource); every spelling kubectl accepts maps to the kind.
KINDS: dict[str, tuple[str, str]] = {
    "pod": ("/api/v1", "pods"),
    "deployment": ("/apis/apps/v1", "deployments"),
    "replicaset": ("/apis/apps/v1", "replicasets"),
    "statefulset": ("/apis/apps/v1", "statefulsets"),
    "daemonset": ("/apis/apps/v1", "daemonsets"),
    "job": ("/apis/batch/v1", "jobs"),
    "service": ("/api/v1", "services"),
}
SPELLINGS: dict[str, str] = {
    "po": "pod", "pod": "pod", "pods": "pod",
    "deploy": "deployment", "deployment": "deployment", "deployments": "deployment",
    "rs": "replicaset", "replicaset": "replicaset", "replicasets": "replicaset",
    "sts": "statefulset", "statefulset": "statefulset", "statefulsets": "statefulset",
    "ds": "daemonset", "daemonset": "daemonset", "daemonsets": "daemonset",
    "job": "job", "jobs": "job",
    "svc": "service", "service": "service", "services": "service",
}
# The API group of each kind ("" is the core group), checked when a target names one: `deployment.apps/web`.
GROUPS = {kind: prefix.split("/")[2] if prefix.startswith("/apis/") else "" for kind, (prefix, _) in KINDS.items()}
# The kinds a bare POD that does not exist may have meant (`capture web` for deploy/web), in the order offered.
MEANT_KINDS = ("deployment", "statefulset", "daemonset", "service")
# The short spelling of each kind, as completion offers it and as `kind/name` is shown back.
SHORT = {"pod": "pod", "deployment": "deploy", "replicaset": "rs", "statefulset": "sts", "daemonset": "ds",
         "job": "job", "service": "svc"}


@dataclass(frozen=True)
class TargetRef:
    """What the command line names: a kind and a name, or a label selector (kind None)."""

    kind: str | None
    name: str = ""
    selector: str = ""
    all_namespaces: bool = False

    @property
    def single_pod(self) -> bool:
        """`POD` or `pod/NAME`: the one-pod path of every command, exactly as before workloads."""
        return self.kind == "pod"

    @property
    def display(self) -> str:
        if self.kind is None:
            return f"-l {self.selector}" + (" -A" if self.all_namespaces else "")
        return self.name if self.kind == "pod" else f"{SHORT[self.kind]}/{self.name}"

    @property
    def file_stem(self) -> str:
        """A name for default output files: `web`, `deploy-web`, `selector`."""
        if self.kind is None:
            return "selector"
        return self.name if self.kind == "pod" else f"{SHORT[self.kind]}-{self.name}"


def parse_target(text: str | None, selector: str | None = None, all_namespaces: bool = False) -> TargetRef:
    """The target argument and -l/-A as one reference; errors name what to type instead."""
    if selector is not None and not selector.strip():
        raise UsageError("-l/--selector: empty selector (example: -l app=web)")
    if text and selector:
        raise UsageError(f"give either a target ({text}) or -l/--selector, not both")
    if all_namespaces and not selector:
        raise UsageError("-A/--all-namespaces needs -l/--selector (a name is looked up in one namespace)")
    if selector:
        return TargetRef(None, selector=selector.strip(), all_namespaces=all_namespaces)
    if not text:
        raise UsageError("a target is needed: POD, TYPE/NAME (deploy/, sts/, ds/, rs/, job/, svc/) or -l SELECTOR")
    word, sep, name = text.partition("/")
    if not sep:
        return TargetRef("pod", text)
    kind = kind_of(word)
    if kind is None:
        raise UsageError(f"{text!r}: cannot target {word!r}; use POD, pod/, deploy/, sts/, ds/, rs/, job/ or svc/")
    if not name or "/" in name:
        raise UsageError(f"{text!r}: the name is missing after {word}/")
    return TargetRef(kind, name)


def kind_of(word: str) -> str | None:
    """The kind a TYPE of TYPE/NAME names, None if we do not target it: a spelling (`deploy`), maybe with its
    API group as `kubectl get -o name` prints it (`deployment.apps`) or its version too (`deployment.v1.apps`).
    A group that is not the kind's is refused: `deployment.batch` names nothing we could find."""
    spelling, dot, group = word.lower().partition(".")
    kind = SPELLINGS.get(spelling)
    if kind is None or not dot:
        return kind
    version, vdot, rest = group.partition(".")
    if vdot and re.fullmatch(r"v\d+(?:(?:alpha|beta)\d+)?", version):
        group = rest  # RESOURCE.VERSION.GROUP
    elif group == "v1" and GROUPS[kind] == "":
        group = ""  # pods.v1: the core group's version alone
    if group != GROUPS[kind]:
        right = f"{spelling}.{GROUPS[kind]}" if GROUPS[kind] else spelling
        raise UsageError(f"{word!r}: {spelling} is in API group {GROUPS[kind] or 'core'!r}, not {group!r}: "
                         f"{right}/NAME")
    return kind


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector (matchLabels and matchExpressions) in the query form the API takes."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}",
                      "DoesNotExist": f"!{key}"}.get(str(op), f"{key}"))
    return ",".join(terms)


@dataclass
class Resolution:
    """The pods a target resolved to: those running (to work on) and those skipped, with why."""

    ref: TargetRef
    selector: str
    pods: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (namespace/name, why)
    service: dict[str, Any] | None = None  # the Service of svc/NAME (its cluster IP names it in captures)
    version: str = ""  # the pod list's resourceVersion: where a watch of the same pods starts (--follow)
    skipped_pods: list[dict[str, Any]] = field(default_factory=list)  # the skipped pods themselves

    def skip_lines(self) -> list[str]:
        return [f"Skipping pod {name}: {why}" for name, why in self.skipped]


def pod_state(pod: Mapping[str, Any]) -> str:
    """'' for a pod that runs, else why it is skipped."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "being deleted"
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    return "" if phase == "Running" else f"not running (phase {phase})"


def resolve(kube: KubeApi, namespace: str, ref: TargetRef, empty_ok: bool = False) -> Resolution:
    """The object's selector, then its pods (one list call); running pods sorted by namespace and name. No
    running pod is an error, unless `empty_ok` (--follow: the pods may come)."""
    service = None
    pods: list[dict[str, Any]] | None = None
    if ref.kind is None:
        selector = ref.selector
    elif ref.kind == "pod":
        selector, pods = "", [kube.get_pod(namespace, ref.name)]
    else:
        prefix, resource = KINDS[ref.kind]
        obj = kube.get_object(prefix, resource, namespace, ref.name)
        spec = obj.get("spec") or {}
        if ref.kind == "service":
            service = obj
            if not spec.get("selector"):
                raise NotFound(f'service "{ref.name}" has no selector: its endpoints are not pods we can find')
            selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"].items()))
        else:
            selector = selector_string(spec.get("selector"))
            if not selector:
                raise NotFound(f'{resource} "{ref.name}" has no pod selector')
    version = ""
    if pods is None:
        pods, version = kube.list_pods_at(None if ref.all_namespaces else namespace, selector)
    result = Resolution(ref, selector, service=service, version=version)
    _sort(result, pods)
    if not result.pods and not empty_ok:
        where = "in any namespace" if ref.all_namespaces else f"in namespace {namespace}"
        if not result.skipped:
            raise NotFound(f"no pods match {ref.display} (selector {selector}) {where}")
        if ref.single_pod:
            raise NotReady(f'pod "{ref.name}" is {result.skipped[0][1]}; nothing to debug yet')
        raise NotReady(f"none of the {len(result.skipped)} pods of {ref.display} {where} is running")
    return result


def meant(kube: KubeApi, namespace: str, name: str) -> list[str]:
    """What a POD that does not exist may have meant: the workloads and service of that name (`deploy/web`,
    `svc/web`), one get per kind, asked only once the pod was not found. A kind we may not read is left out."""
    found = []
    for kind in MEANT_KINDS:
        prefix, resource = KINDS[kind]
        try:
            kube.get_object(prefix, resource, namespace, name)
        except DebugxError:  # not found, forbidden, unreachable: no suggestion, the not-found error stands
            continue
        found.append(f"{SHORT[kind]}/{name}")
    return found


def did_you_mean(message: str, candidates: list[str]) -> str:
    """The not-found line with what was meant: `...; did you mean deploy/web or svc/web?`"""
    if not candidates:
        return message
    names = candidates[0] if len(candidates) == 1 else ", ".join(candidates[:-1]) + f" or {candidates[-1]}"
    return f"{message}; did you mean {names}?"


def _sort(result: Resolution, pods: list[dict[str, Any]]) -> None:
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        why = pod_state(pod)
        if why:
            result.skipped.append((f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}", why))
            result.skipped_pods.append(pod)
        else:
            result.pods.append(pod)


def check_max_pods(result: Resolution, max_pods: int) -> None:
    """Refuse a larger set than --max-pods, in one line that says how many matched."""
    if len(result.pods) > max_pods:
        raise UsageError(f"{result.ref.display} matches {len(result.pods)} running pods, more than --max-pods "
                         f"{max_pods}: raise --max-pods or narrow the selector")
