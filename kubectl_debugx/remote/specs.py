"""Pure builders for what we send to the API: ephemeral containers, their patch, node pods."""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-debugx"
NAME_PREFIX = "debugx-"
# One debug image for every command, overridable by --image or $KUBECTL_DEBUGX_IMAGE: a widely used public
# image holding sh, ps, tcpdump, strace, curl and tar.
DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"
# apimachinery's rand.String alphabet: no vowels, so generated names never spell words.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_ALPHABET) for _ in range(length))


def container_names(pod: Mapping[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {
        c["name"]
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    }


def debug_container_name(pod: Mapping[str, Any], suffix: Callable[[], str] = random_suffix) -> str:
    """`debugx-xxxxx`, unique among every container of the pod (like kubectl's computeDebugContainerName)."""
    taken = container_names(pod)
    while True:
        name = NAME_PREFIX + suffix()
        if name not in taken:
            return name


def as_written(argv: Iterable[str]) -> list[str]:
    """A container's `command`/`args` that run exactly as written: Kubernetes expands `$(NAME)` in them from
    the container's env and reads `$$` as a literal `$` (k8s.io/kubernetes third_party/forked/golang/expansion),
    so every `$` is doubled. Seen on a real v1.33 (recordings 30-*): `echo $$` in a node pod's command wrote
    `$`, not its PID, and the lease never ended the pod. The exec API does not expand (tethers need nothing)."""
    return [str(a).replace("$", "$$") for a in argv]


def ephemeral_container(
    name: str, image: str, target: str, ttl_seconds: int, pull_policy: str | None = None
) -> dict[str, Any]:
    """An ephemeral container whose own process is a bounded sleep: tools run in it by exec, and it ends by
    itself because ephemeral containers can never be removed."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": as_written(["sleep", str(ttl_seconds)]),
        "targetContainerName": target,
        "terminationMessagePolicy": "File",
        "stdin": False,
        "tty": False,
    }
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def ephemeral_patch(container: Mapping[str, Any]) -> dict[str, Any]:
    """Strategic merge patch body adding one ephemeral container (the list merges by name)."""
    return {"spec": {"ephemeralContainers": [dict(container)]}}


def default_container(pod: Mapping[str, Any]) -> str:
    """The container `kubectl exec` picks: the default-container annotation, else the first one."""
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if annotated and annotated in names:
        return annotated
    return names[0]


def default_pull_policy(image: str) -> str:
    """The imagePullPolicy the API server fills in when none is given: Always for `:latest` or no tag."""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "IfNotPresent" if tag and tag != "latest" else "Always"


def _comparable(container: Mapping[str, Any]) -> tuple[Any, ...]:
    image = str(container.get("image") or "")
    return (
        image,
        container.get("targetContainerName"),
        container.get("securityContext") or {},
        container.get("imagePullPolicy") or default_pull_policy(image),
    )


def reusable_container(
    pod: Mapping[str, Any], wanted: Mapping[str, Any], min_seconds_left: float, now: float
) -> str | None:
    """Name of a running debugx ephemeral container matching `wanted` (image, target, security settings)
    that will live at least `min_seconds_left` more, or None."""
    statuses = {
        s["name"]: s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
    }
    for container in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        name = container.get("name", "")
        if not name.startswith(NAME_PREFIX) or _comparable(container) != _comparable(wanted):
            continue
        running = ((statuses.get(name) or {}).get("state") or {}).get("running")
        if not running:
            continue
        if seconds_left(container, running.get("startedAt"), now) >= min_seconds_left:
            return name
    return None


def is_debug_container(container: Mapping[str, Any]) -> bool:
    """One of our ephemeral containers: our name prefix and our bounded sleep (ephemeral_container)."""
    command = container.get("command") or []
    return (str(container.get("name", "")).startswith(NAME_PREFIX) and len(command) == 2
            and command[0] == "sleep" and str(command[1]).isdigit())


def seconds_left(container: Mapping[str, Any], started_at: str | None, now: float) -> float:
    from datetime import datetime

    if not is_debug_container(container) or not started_at:
        return 0.0
    started = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    return started + int(container["command"][1]) - now


# The records of the tools we start: /tmp/debugx-RUNID.pid in the container, one line "PID STARTTIME TOOL"
# written by the tool's own process before it execs the tool. PID and start time (field 22 of
# /proc/PID/stat, clock ticks since boot) name one process for the whole boot: a PID reused by the user's
# application after our tool ended has another start time, so `gc` never signals it. Why not an env var or an
# argv marker: /proc/PID/environ is unreadable without SYS_PTRACE once tcpdump drops to its own user, and argv
# is the user's (filters, expressions); /proc/PID/stat is readable by anyone.
PID_GLOB = "/tmp/debugx-*.pid"
RUN_ID = re.compile(r"[a-z0-9]{1,32}")
# `st PID`: the start time of PID (empty when it is gone); only sh builtins. comm may hold spaces or ")", so
# the fields are counted after the last ") ": starttime is the 20th from there; a zombie (Z) counts as gone.
START_TIME_FN = ('_t() { [ "$1" = Z ] && return; shift 19; echo "$1"; }; '
          'st() { s=; read -r s 2>/dev/null < /proc/$1/stat || return 0; _t ${s##*") "}; }; ')


NO_TMP = 125  # the exit code of a tethered command whose records cannot be written (/tmp not writable)


def pid_file(run_id: str) -> str:
    return f"/tmp/debugx-{run_id}.pid"


def writable_check(path: str, fd: int) -> str:
    """sh that makes `path` (a record of ours in /tmp) or says on `fd` why it cannot and exits NO_TMP, before
    anything starts: /tmp not writable by the debug container's user (an image whose /tmp is root's 0755, or
    none). Without it a tethered command hung for good (lab, an image of busybox alone with /tmp 0755, cp as uid
    65532: the tether's `cat` waited for the client, the client for the sh), and the shell said only sh's own
    words. `true`, not `:`: a failed redirection of a special builtin ends a POSIX sh at once (dash: exit 2,
    nothing said)."""
    return (f'true 2>/dev/null > {path} || {{ echo "debugx: cannot write {path} in the debug container: its '
            f'image\'s /tmp must be writable by this user (as in busybox, alpine, debian: mode 1777)" >&{fd}; '
            f'exit {NO_TMP}; }}; ')


def tethered_command(run_id: str, tool: str, argv: Iterable[str], eof_signal: str = "TERM") -> list[str]:
    """`sh -c` that starts the tether, then runs argv in a child that records its PID and start time (see
    PID_GLOB) and execs the tool (so the PID file names the tool, and its stdout/stderr are the exec's, byte for
    byte); then ends the tether and exits with the tool's status. argv follows as positional parameters, so no
    shell ever interprets user input (filters, expressions, names).

    The tether ends the tool when the exec's stdin reaches EOF; the exec must be opened with stdin and the
    client keeps stdin open, never writing to it, until the end. Why (tests/cluster/recordings/README.md,
    round 2, "Exec, stdin tether, orphans"): the client's death (kill -9, a TCP RST, a close frame) reaches
    the remote side ONLY as EOF on the exec's stdin, 2-17 ms later on v5, v4 and kubectl alike (23-tether-*);
    nothing is signalled, so without it an orphaned tcpdump runs on until the debug container's TTL and
    blocks in write(2) after ~140 KB (24-orphan-*). How:

    - `exec 3<&0` first: in a non-interactive sh an `&` job gets /dev/null as stdin, so a background `cat`
      would see EOF at once (23-tether-pitfall-bg-stdin-is-devnull); it reads the saved fd 3 instead;
    - the tether (a background subshell) waits for its `cat` of stdin to end, then sends `eof_signal` to the
      PID the tool recorded (waiting up to 5 s for the record: a client may die before the tool wrote it), but
      only while that PID has the recorded start time (a PID reused after the tool's end is left alone; the sh
      that wrote the record and is about to exec the tool is the same process, and is stopped before it does);
      24-tether-design-* recorded the tool killed 40-45 ms after the client's death. TERM lets
      strace detach from its tracees; KILL suits a tool whose output nobody reads any more (tcpdump, tar): a
      real kubelet stops reading a dead client's exec, so the tool may be blocked in write(2)
      (24-orphan-*-tcpdump), and what a caught TERM does there was not recorded; KILL ends it for sure;
    - the tether's stdout and stderr are /dev/null: an exec session ends only when the last process holding
      its stdout/stderr exits (23-tether-v4-stdinclose-ignored), so the session ends as soon as the tool and
      this sh do (tcpdump -c N); this sh then ends the tether's cat (its PID in /tmp/debugx-RUNID.tether) and
      reaps the tether. This sh stays the parent of everything it starts until all of it ended: the debug
      container shares the target's PID namespace, whose PID 1 (the target's main process) inherits whatever
      outlives its parent and may never reap it (a zombie `sh` per run when the tool was exec'd in this sh's
      place: issue 22);
    - the tool runs in the foreground, not as an `&` job, so SIGINT is not ignored by it and the stop by
      signal_command works as before; its stdin is /dev/null and it holds neither fd 3 nor this sh's stderr
      copy (fd 4: the exec's stderr is the tool's alone; this sh's own words, `Killed`, go to /dev/null).

    Only sh builtins, `cat` and `sleep`, as in any image with a POSIX shell.
    """
    record, watcher = pid_file(run_id), f"/tmp/debugx-{run_id}.tether"
    # the tether: cat (its PID in `watcher`) up to EOF, then the tool by its record (waited for: the tool may
    # not have written it yet when a client dies at once), only while that PID has the recorded start time (the
    # same process, whether it is still the sh that wrote the record or already the tool it exec'd into: when
    # the client died as the exec opened, the tether read the record in that instant, found comm still `sh`,
    # and left strace running for good: CI, bench/reliability `kill -9 trace deploy/webd` at 0.45 s)
    tether = (f'{{ cat <&3 3<&- & echo $! > {watcher}; wait $!; i=0; while [ ! -s {record} ] && [ $i -lt 50 ]; '
              f'do sleep 0.1; i=$((i+1)); done; p=; s=; read -r p s _ 2>/dev/null < {record}; [ -n "$p" ] && '
              f'[ -n "$s" ] && [ "$(st "$p")" = "$s" ] && kill -{eof_signal} "$p"; }}'
              ' </dev/null >/dev/null 2>&1 4>&- & t=$!; ')
    tool_sh = shlex.quote(f'{START_TIME_FN}echo "$$ $(st $$)" {shlex.quote(tool)} > {record} || exit; exec "$@"')
    # the end, however the tool ended: the tether's cat (and so the tether) ended and both reaped, so that
    # nothing of ours is left for the target's PID 1, which may never reap (issue 22: a zombie sh per run)
    end = (f'r=$?; i=0; while [ ! -s {watcher} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
           f'c=; read -r c < {watcher}; [ -n "$c" ] && kill "$c" 2>/dev/null && wait $t; rm -f {watcher}; exit $r')
    # fd 4: the exec's stderr, for the tool alone; this sh's own words (`Killed` after a SIGKILL of the tool)
    # go nowhere, as when the tool was exec'd in its place
    script = (f'{START_TIME_FN}exec 3<&0 4>&2 2>/dev/null; {writable_check(watcher, 4)}{tether}'
              f'(exec sh -c {tool_sh} sh "$@" </dev/null 3<&- 2>&4 4>&-); {end}')
    return ["sh", "-c", script, "sh", *argv]


def signal_command(run_id: str, tool: str, signal: str = "INT", remove: bool = False) -> list[str]:
    """Signal the process recorded by tethered_command, only while that PID has the recorded start time: in a
    shared PID namespace a recycled PID may belong to the user's application. It may still be the sh that wrote
    the record, about to exec the tool (a stop in the first instant of a run): it is signalled all the same,
    and the tool never starts; a check of /proc/PID/comm against the tool skipped it, and removed the record
    that the tether needed (issue 21's reliability slice). `tool` names the tool in the command's argv only."""
    path = pid_file(run_id)
    script = (
        f'{START_TIME_FN}p=; s=; read -r p s _ 2>/dev/null < {path}; '
        f'if [ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ]; '
        f'then kill -{signal} "$p"; fi'
    )
    if remove:
        script += f"; rm -f {path}"
    return ["sh", "-c", script + "; true", "sh", tool]


def list_tools_command() -> list[str]:
    """Print "RUNID PID TOOL" for each tool recorded by tethered_command that still runs (same PID, same start
    time); records of tools gone are left alone."""
    script = (f'{START_TIME_FN}for f in {PID_GLOB}; do [ -f "$f" ] || continue; p=; s=; t=; '
              'read -r p s t 2>/dev/null < "$f"; r=${f#/tmp/debugx-}; r=${r%.pid}; '
              '[ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ] && echo "$r $p $t"; done; true')
    return ["sh", "-c", script]


def stop_tools_command(run_ids: Iterable[str]) -> list[str]:
    """Stop the tools of these runs, each only while its record still names it (PID and start time): TERM
    (strace detaches from its tracees), KILL after 2 s; then remove the records. Prints "RUNID stopped"
    or "RUNID gone" per run."""
    ids = [r for r in run_ids if RUN_ID.fullmatch(r)]
    script = (f'{START_TIME_FN}for r; do f=/tmp/debugx-$r.pid; p=; s=; read -r p s _ 2>/dev/null < "$f"; '
              'if [ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ]; then kill -TERM "$p"; i=0; '
              'while [ $i -lt 20 ] && [ "$(st "$p")" = "$s" ]; do sleep 0.1; i=$((i+1)); done; '
              '[ "$(st "$p")" = "$s" ] && kill -KILL "$p"; echo "$r stopped"; else echo "$r gone"; fi; '
              'rm -f "$f"; done; true')
    return ["sh", "-c", script, "sh", *ids]


def end_sleep_command() -> list[str]:
    """End the bounded sleep of the debug container this runs in (gc --stop-idle), so that it shows Terminated
    now rather than at its TTL. Which process: a `sleep` in our own mount namespace (the container's) whose
    parent is outside the PID namespace (PPID 0: the runtime started it as the container's main process; a
    process of an exec also has PPID 0, but none of ours is a sleep). The target's processes share the PID
    namespace, never the mount namespace. Prints "ended PID". Only sh builtins, cat and readlink."""
    script = ('me=$(readlink /proc/self/ns/mnt) || exit 3; for d in /proc/[0-9]*; do '
              '[ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$me" ] || continue; '
              '[ "$(cat "$d/comm" 2>/dev/null)" = sleep ] || continue; s=; read -r s 2>/dev/null < "$d/stat" '
              '|| continue; set -- ${s##*") "}; [ "$2" = 0 ] || continue; '
              'kill -TERM "${d#/proc/}" && echo "ended ${d#/proc/}"; done; true')
    return ["sh", "-c", script]


# The node pod's lease: its main process lives only while a client holds the lease exec open. A kill -9 of
# the client closes the exec's stdin within 2-17 ms (23-tether-*), the lease then ends the main process, so
# nothing of ours runs on the node any more. The finished pod object is deleted by nobody (only the client, a
# controller or a token in the pod could, and the first is gone) unless it runs as a Job (node_job): the
# TTL-after-finished controller deletes a finished Job, and the garbage collector its pod; else `gc` does.
NODE_PID = "/tmp/debugx-node.pid"
NODE_LEASE = "/tmp/debugx-node.lease"
LEASED = "leased"  # the lease's word once it holds the lease: only then is it taken (nodelogs/pod.take_lease)


def node_pod_main(ttl: int, lease_window: int) -> list[str]:
    """The node pod's main process: ends by itself `lease_window` seconds after it started unless a lease was
    taken (node_pod_lease), `ttl` seconds at the latest, and at once (exit 0) on TERM. The sleeps run as jobs
    so that the trap runs at once; the trap kills the sleep too (with hostPID nothing else would)."""
    script = (f"echo $$ > {NODE_PID} || exit; trap 'kill $! 2>/dev/null; exit 0' TERM; "
              f"sleep {int(lease_window)} & wait $!; [ -e {NODE_LEASE} ] || exit 0; sleep {int(ttl)} & wait $!")
    return ["sh", "-c", script]


def node_pod_lease() -> list[str]:
    """The lease, exec'd with stdin open and never written: it marks the lease taken and says LEASED, then at
    stdin's EOF (we closed it or died) it sends TERM to the main process, whose PID it reads from NODE_PID (not
    PID 1: with hostPID that is the node's init). `cat` in the foreground reads the exec's own stdin
    (23-tether-pitfall-bg-stdin-is-devnull)."""
    script = (f': > {NODE_LEASE} || exit; echo {LEASED}; cat >/dev/null; p=; read -r p < {NODE_PID}; '
              '[ -n "$p" ] && kill -TERM "$p"')
    return ["sh", "-c", script]


def node_pod(
    name: str,
    namespace: str,
    node: str,
    image: str,
    host_paths: Mapping[str, str],
    deadline_seconds: int,
    command: list[str],
) -> dict[str, Any]:
    """A short-lived pod pinned to `node` (no scheduler), tolerating every taint, that never restarts and is
    killed by `deadline_seconds` at the latest, mounting each host path read-only at the same path under
    /host, and nothing else (no service account token)."""
    volumes = []
    mounts = []
    for volume_name, host_path in sorted(host_paths.items()):
        volumes.append({"name": volume_name, "hostPath": {"path": host_path, "type": "Directory"}})
        mounts.append({"name": volume_name, "mountPath": "/host" + host_path, "readOnly": True})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_seconds,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            # It reads files; it has no business with the API server or the namespace's services.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "debugger",
                    "image": image,
                    "command": as_written(command),
                    "volumeMounts": mounts,
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": volumes,
        },
    }


JOBS = ("/apis/batch/v1", "jobs")  # where Jobs live (KubeApi.create_object's prefix and resource)
JOB_TTL_AFTER_FINISHED = 0  # seconds: the finished Job (and, through the garbage collector, its pod) goes at once


def node_job(pod: Mapping[str, Any], start_deadline: int | None = None) -> dict[str, Any]:
    """The node pod (node_pod) run as a batch/v1 Job of one pod, so that a controller deletes it once its main
    process ends, even when we are gone: one completion, never retried (backoffLimit 0: a second pod would
    hold no lease and only wait out its lease window), deleted `JOB_TTL_AFTER_FINISHED` seconds after it
    finished. The pod's own activeDeadlineSeconds bounds the Job too; `start_deadline`, when given, is the Job's
    until the client raises it to the pod's (job_deadline_patch) once it holds the lease: a pod whose container
    never starts (an image that cannot be pulled, a slow pull when the client is killed) is not ended by the
    lease, and the Job controller deletes it at the Job's deadline (recordings 30-job-deadline-*). Our label on
    the Job and on its pods (so `gc` finds both); the Job's name is the pod's, the pod's is the Job
    controller's (NAME-xxxxx)."""
    meta, spec = pod["metadata"], pod["spec"]
    labels = dict(meta.get("labels") or {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": start_deadline or spec["activeDeadlineSeconds"],
            "ttlSecondsAfterFinished": JOB_TTL_AFTER_FINISHED,
            "template": {"metadata": {"labels": dict(labels)}, "spec": dict(spec)},
        },
    }


def job_deadline_patch(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that gives a node_job its pod's full deadline (a Job's activeDeadlineSeconds may change
    while it runs)."""
    return {"spec": {"activeDeadlineSeconds": pod["spec"]["activeDeadlineSeconds"]}}
