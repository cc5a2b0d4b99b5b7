"""doctor: everything capture, trace, nodelogs, cp and shell would need, checked without creating anything.

One batch of SelfSubjectAccessReviews (every permission, all the missing ones at once, with the Role that grants
them), the namespace's Pod Security level, the node's runtime and images, the target's user, and for each
command the same choice and server-side dry run the command itself makes (capture.choose_profile,
session.admitted and check_access, nodelogs' node pod preflight): a command passes here exactly when its own
checks would pass. Reads and dry runs only (dryRun=All creates nothing: recording 04-*).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx.commands import asuser
from kubectl_debugx.commands import capture as cap
from kubectl_debugx.commands import cp as cpm
from kubectl_debugx.commands import trace as tr
from kubectl_debugx.commands.doctor import checks
from kubectl_debugx.commands.doctor.checks import INFO, NO, OK, WARN, Row
from kubectl_debugx.commands.nodelogs import pod as nodepod
from kubectl_debugx.commands.nodelogs.target import DEFAULT_PROFILE as NODELOGS_PROFILE
from kubectl_debugx.errors import DebugxError, ExitCode, NotReady, UsageError
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import access, ephemeral, fanout, session, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk

COMMANDS = ("capture", "trace", "nodelogs", "cp", "shell")
TTL = 3600  # the commands' default --ttl: what the dry runs send


@dataclass(frozen=True, kw_only=True)
class DoctorOptions:
    pod: str
    container: str | None = None
    commands: tuple[str, ...] = COMMANDS
    image: str = specs.DEFAULT_IMAGE
    profile: str = "auto"
    custom: Mapping[str, Any] | None = None
    pod_namespace: str | None = None  # nodelogs' node pod


def parse_for(values: list[str] | None) -> tuple[str, ...]:
    """--for, repeated or comma-separated; every command when not given."""
    if not values:
        return COMMANDS
    chosen = [v.strip() for value in values for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in COMMANDS]
    if unknown or not chosen:
        raise UsageError(f"--for: unknown command {', '.join(unknown) or '(none)'}; choose among "
                         f"{', '.join(COMMANDS)}")
    return tuple(dict.fromkeys(chosen))


def validate(opts: DoctorOptions) -> None:
    ephemeral.validate_debug_options(opts.profile, TTL, None)


@dataclass
class Verdict:
    command: str
    ok: bool
    detail: str
    code: int = ExitCode.OK
    profile: str | None = None
    lacking: list[access.Permission] = field(default_factory=list)  # on any pod of the namespace: the Role
    today: list[access.Permission] | None = None  # on this pod now, when less (a debug container to reuse)

    def row(self) -> Row:
        return Row(f"{self.command} can run", OK if self.ok else NO, self.detail)

    def as_dict(self) -> dict[str, Any]:
        today = self.lacking if self.today is None else self.today
        return {"command": self.command, "canRun": self.ok, "profile": self.profile, "detail": self.detail,
                "exitCode": int(self.code), "missingPermissions": [str(p) for p in self.lacking],
                "missingOnThisPod": [str(p) for p in today]}


def needs_of(commands: tuple[str, ...]) -> dict[str, tuple[access.Permission, ...]]:
    """Each command's permission sets (nodelogs has two routes: the node proxy or a node pod)."""
    out = {}
    for command in commands:
        keys = ([f"nodelogs --via {via}" for via in ("proxy", "pod", "pod, as a Job")] if command == "nodelogs"
                else [command])
        out.update({key: access.NEEDS[key] for key in keys})
    return out


def run(kube: KubeApi, opts: DoctorOptions, talk: Talk) -> int:
    namespace = kube.namespace
    needs = needs_of(opts.commands)
    users: dict[access.Permission, list[str]] = {}
    for key, permissions in needs.items():
        for p in permissions:
            users.setdefault(p, []).append(key)
    answers = access.review(kube, namespace, list(users))  # one batch: every permission of every command
    rows = checks.permission_rows(answers, users)

    target, pod_problem = _target(kube, opts, namespace, rows)
    if target is not None:
        rows.append(_pod_security_row(kube, namespace))
        node = (target.pod.get("spec") or {}).get("nodeName") or ""
        image_rows, runtime = (checks.node_rows(kube, node, opts.image, _pull_policy(opts)) if node
                               else ([Row("node", WARN, "the pod is not scheduled yet")], ""))
        rows += image_rows
        rows.append(checks.user_row(target.pod, target.container))
        root_fs = checks.root_fs_row(target.pod, target.container) if "cp" in opts.commands else None
        rows += [root_fs] if root_fs else []
    verdicts = [_verdict(kube, opts, command, target, pod_problem, needs, answers, runtime if target else "")
                for command in opts.commands]
    rows.append(_ephemeral_row(verdicts))
    rows += [v.row() for v in verdicts]

    lacking = access.unique(p for v in verdicts for p in v.lacking)
    role = access.role_yaml(lacking, namespace) if lacking else None
    _report(talk, rows, role, namespace)
    talk.record(pod=opts.pod, namespace=namespace, container=target.container if target else None,
                checks=[r.as_dict() for r in rows], commands=[v.as_dict() for v in verdicts],
                missingPermissions=[str(p) for p in lacking], role=role)
    failed = [v for v in verdicts if not v.ok]
    return int(failed[0].code) if failed else ExitCode.OK


def _target(kube: KubeApi, opts: DoctorOptions, namespace: str, rows: list[Row]
            ) -> tuple[Target | None, DebugxError | None]:
    """The pod (None if it cannot be read) and why the ephemeral-container commands cannot use it."""
    try:
        target = fanout.one_target(kube, namespace, opts.pod, opts.container, lambda _: None)
    except NotReady as e:  # not running: nodelogs may still read its files
        pod = kube.get_pod(namespace, opts.pod)
        rows.append(Row(f"pod {opts.pod}", NO, str(e)))
        return Target(namespace, pod, opts.container or specs.default_container(pod)), e
    except ApiError as e:
        if e.status != 403:
            raise
        rows.append(Row(f"pod {opts.pod}", NO, f"cannot get it: {e}"))
        return None, e
    node = (target.pod.get("spec") or {}).get("nodeName") or "no node"
    rows.append(Row(f"pod {opts.pod}", OK, f"Running on {node}; target container {target.container}"))
    return target, None


def _pod_security_row(kube: KubeApi, namespace: str) -> Row:
    try:
        ns: dict[str, Any] | None = kube.get_namespace(namespace)
    except ApiError as e:
        if e.status not in (403, 404):
            raise
        ns = None
    level, detail = checks.pod_security_level(ns)
    return Row(f"namespace {namespace} Pod Security", INFO if level else WARN, (level + ": " if level else "") + detail)


def _pull_policy(opts: DoctorOptions) -> str:
    return str((opts.custom or {}).get("imagePullPolicy") or specs.default_pull_policy(opts.image))


def _verdict(kube: KubeApi, opts: DoctorOptions, command: str, target: Target | None, pod_problem: Exception | None,
             needs: Mapping[str, tuple[access.Permission, ...]], answers: Mapping[access.Permission, bool | None],
             runtime: str) -> Verdict:
    """Whether `command` would run: its own choice and dry run, or the first reason it would not."""
    denied = set(access.missing(answers))
    if command == "nodelogs":
        return _nodelogs(kube, opts, target, needs, denied, runtime)
    lacking = [p for p in needs[command] if p in denied]
    if target is None or pod_problem is not None:
        reason = pod_problem or DebugxError("the pod cannot be read")
        return Verdict(command, False, str(reason), _code(reason), lacking=lacking)
    # The Role grants what the command needs on any pod: a debug container this pod happens to have (and that
    # a run would reuse) spares the patch here only; left out, the Role failed on every other pod (issue 22).
    today = None
    try:
        chosen = _candidate(kube, opts, command, target)
        if chosen.reuse and access.PATCH_EPHEMERAL in lacking:
            today = [p for p in lacking if p != access.PATCH_EPHEMERAL]
        session.check_access(kube, target, command, chosen, answers)
    except DebugxError as e:
        return Verdict(command, False, _said(e, command, target), e.code, lacking=lacking, today=today)
    how = (f"would reuse the running debug container {chosen.reuse}" if chosen.reuse
           else "the dry run admits its debug container")
    if today is not None:
        how += f" (other pods need {access.PATCH_EPHEMERAL} too: the Role below grants it)"
    notes = "".join(f"; {note}" for note in chosen.notes)
    return Verdict(command, True, f"profile {chosen.profile}: {how}{notes}", profile=chosen.profile,
                   lacking=lacking, today=today)


def _said(error: DebugxError, command: str, target: Target) -> str:
    """The command's own refusal, without its pointer to doctor (this is doctor: the Role is printed below)."""
    return str(error).replace(access.doctor_hint(command, target.namespace, target.pod_name), "")


def _candidate(kube: KubeApi, opts: DoctorOptions, command: str, target: Target) -> session.Candidate:
    """The debug container `command` would use, admitted by the same dry run (or the refusal, raised)."""
    if command == "capture":
        return cap.choose_profile(kube, target, cap.CaptureOptions(
            pod=opts.pod, image=opts.image, profile=opts.profile, custom=opts.custom, ttl=TTL))
    if command == "trace":
        profile = tr.DEFAULT_PROFILE if opts.profile == "auto" else opts.profile
        return session.admitted(kube, target, command, session.candidate(
            kube, target, profile, opts.image, opts.custom, TTL, None), tr.ADMISSION_HINT)
    if command == "shell":  # the same choice as cp's, in shell's words
        return asuser.choose_profile(kube, target, command, opts.profile, opts.image, opts.custom, TTL,
                                     lambda _said: None)[0]
    # cp: its own choice (the target's user, no capability), so that doctor says what cp would do
    return cpm.choose_profile(kube, target, opts.profile, opts.image, opts.custom, TTL, lambda _said: None)[0]


def _nodelogs(kube: KubeApi, opts: DoctorOptions, target: Target | None,
              needs: Mapping[str, tuple[access.Permission, ...]], denied: set[access.Permission],
              runtime: str) -> Verdict:
    """nodelogs reads through the node proxy when allowed, else through a node pod, run as a Job when allowed
    (checked by its own preflight: the reviews and the dry runs). When it cannot run, the Role asked for grants
    the node pod as a Job (jobs too: then a killed run leaves nothing)."""
    command = "nodelogs"
    if not [p for p in needs["nodelogs --via proxy"] if p in denied]:
        return Verdict(command, True, "through the node proxy (get nodes/proxy is allowed)", profile=None)
    via_pod = [p for p in needs["nodelogs --via pod, as a Job"] if p in denied]
    node = (target.pod.get("spec") or {}).get("nodeName") if target else None
    if not node:
        why, code = (("the pod is on no node yet", ExitCode.NOT_READY) if target
                     else ("the pod (and so its node) cannot be read", ExitCode.FORBIDDEN))
        return Verdict(command, False, why, code, lacking=via_pod)
    pod_namespace = opts.pod_namespace or kube.namespace
    profile = NODELOGS_PROFILE if opts.profile == "auto" else opts.profile
    spec = nodepod.node_pod_spec(nodepod.node_pod_name(), pod_namespace, node, opts.image, runtime == "docker",
                                 profile, opts.custom)
    try:
        route = nodepod.preflight(kube, spec, pod_namespace, opts.pod)
    except DebugxError as e:
        said = str(e).replace(access.doctor_hint(nodepod.VIA_POD, pod_namespace, opts.pod), "")
        return Verdict(command, False, f"may not get nodes/proxy, and {said}", e.code, lacking=via_pod)
    how = "a node pod run as a Job" if route.as_job else "a plain node pod"
    return Verdict(command, True, f"through {how} in namespace {pod_namespace} (profile {profile}: the dry "
                   f"run admits it); get nodes/proxy is not allowed. {route.why}", profile=profile)


def _ephemeral_row(verdicts: list[Verdict]) -> Row:
    texts = [v.detail for v in verdicts if v.command != "nodelogs"]
    if any("ephemeral containers are disabled" in t for t in texts):
        return Row("ephemeral containers", NO, "disabled: the API server has no pods/ephemeralcontainers")
    if any(v.ok or "PodSecurity" in v.detail for v in verdicts if v.command != "nodelogs"):
        return Row("ephemeral containers", OK, "available (the API server answered a dry run)")
    return Row("ephemeral containers", WARN, "unknown: no dry run could be made")


def _code(error: Exception) -> int:
    return int(error.code) if isinstance(error, DebugxError) else ExitCode.ERROR


def _report(talk: Talk, rows: list[Row], role: str | None, namespace: str) -> None:
    """The table (stdout; stderr when stdout carries the JSON summary), then the Role granting what is
    missing, ready for `kubectl apply -f -` once bound to the user."""
    text = checks.table(rows)
    if role:
        text += (f"\n# What is missing to run these commands on any pod, as a Role for namespace {namespace}"
                 + (" and a ClusterRole" if "kind: ClusterRole" in role else "")
                 + "; bind it to the user with a RoleBinding:\n" + role)
    if talk.json_summary:
        talk.say(text.rstrip("\n"))
    else:
        talk.out(text)
