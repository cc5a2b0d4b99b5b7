"""The one schema of every command's `--summary json` (documented in README, "Summary"): camelCase as in the
Kubernetes API, the same name for the same thing in every command.

A summary starts as `new(command)`: every key of the command, null until known, so each command always prints
the same keys (`error` is added only on failure). `Talk.record` refuses a key the schema does not have;
`check` verifies the types (the unit tests run every summary builder through it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NoneType = type(None)
_STR = (str, NoneType)
_INT = (int, NoneType)
_NUM = (int, float, NoneType)
_BOOL = (bool, NoneType)
_LIST = (list, NoneType)

# Keys of every command: what ran against what, and how it ended.
SHARED: dict[str, tuple[type, ...]] = {
    "command": (str,),
    "namespace": _STR,
    "pod": _STR,
    "container": _STR,  # the target container
    "debugContainer": _STR,  # the ephemeral container used (capture, trace)
    "profile": _STR,
    "output": _STR,  # the file, "-" (stdout) or the directory written
    "durationSeconds": _NUM,
    "stoppedBy": _STR,  # one of STOPPED_BY; null when the tool ended by itself
    "target": _STR,  # a workload or selector target as given (deploy/web, -l app=web); null for one pod
    "pods": _LIST,  # with a workload or selector target: one POD entry per pod worked on
    "exitCode": _INT,  # always set when printed
}
# Only on failure: the message of the `error:` line.
ERROR = "error"

SPECIFIC: dict[str, dict[str, tuple[type, ...]]] = {
    "capture": {
        "interface": _STR,
        "packetsWritten": _INT,
        "bytesWritten": _INT,
        "packetsCaptured": _INT,  # tcpdump's own counts (null when tcpdump did not report them)
        "packetsReceivedByFilter": _INT,
        "droppedByKernel": _INT,
        # --ring (remote/ring.py): the files kept, newest first ({file, packets, bytes}), files opened, files
        # deleted to keep the newest N and the packets they held (kept + dropped = packetsWritten)
        "ringFiles": _LIST,
        "filesWritten": _INT,
        "filesDropped": _INT,
        "packetsDropped": _INT,
    },
    "trace": {
        "pids": _LIST,  # the PIDs chosen (as seen in the target container)
        "traced": _LIST,  # those strace attached to
        "followed": _INT,  # threads and children strace followed
        "linesWritten": _INT,
        "bytesWritten": _INT,
    },
    "cp": {
        "path": _STR,  # the path copied, as the container sees it
        "runAsUser": _INT,  # the uid the debug container read as
        "filesWritten": _INT,  # regular files written (or streamed with -o -)
        "bytesWritten": _INT,
        "symlinksWritten": _INT,
        "directoriesWritten": _INT,
        "filesVerified": _INT,  # files whose sha256 matched the one computed in the container
        "skipped": _LIST,  # [{name, reason}]: devices, FIFOs, sockets
        "unreadable": _LIST,  # tar's lines for what the reading user could not read
    },
    "shell": {
        "runAsUser": _INT,  # the uid the shell ran as in the debug container
        "interactive": _BOOL,  # a terminal session (TTY), else stdin streamed and stdout/stderr apart
        "remoteCommand": _LIST,  # the command run, argv as given (["sh"] when none was)
        "commandExitCode": _INT,  # the remote command's exit status (null: it did not end by itself with one)
    },
    "gc": {
        "allNamespaces": _BOOL,
        "dryRun": _BOOL,
        # [{namespace, pod, container, kind (node-job, node-pod, debug-container, tool), status, action, process, pid,
        #   ttlSeconds}]: one per table row
        "found": _LIST,
    },
    "nodelogs": {
        "node": _STR,
        "uid": _STR,
        "static": _BOOL,
        "via": _STR,  # proxy or pod
        "nodePod": _STR,  # the node pod (--via pod), deleted
        "raw": _BOOL,
        "since": _STR,  # RFC 3339, from --since or --since-time
        "filesWritten": _INT,  # log files copied from the node
        "bytesWritten": _INT,  # their bytes
        "containers": _LIST,  # [{name, instances: [INSTANCE], skipped: [{name, reason}]}]
        "skipped": _LIST,  # [{name, reason}]: node files not copied
        "linesWritten": _INT,  # --follow: lines printed on stdout
        "reconnects": _INT,  # --follow: connections lost and found again
    },
    "doctor": {
        "checks": _LIST,  # [{check, result (ok, no, warning, info), detail}]: the table's rows
        "commands": _LIST,  # [{command, canRun, profile, detail, exitCode, missingPermissions, missingOnThisPod}]
        "missingPermissions": _LIST,  # ["patch pods/ephemeralcontainers", ...]: every one, all commands
        "role": _STR,  # the Role (and ClusterRole) YAML that grants them; null when nothing is missing
    },
}
# One decoded container instance of nodelogs' `containers[].instances`.
INSTANCE: dict[str, tuple[type, ...]] = {
    "restart": _INT,
    "containerID": _STR,
    "decoded": _STR,  # the file written (null with --raw)
    "lines": (int,),
    "stderrLines": (int,),
    "unterminatedLines": (int,),
    "malformedLines": (int,),
    "linesBeforeSince": (int,),
    "files": (list,),  # [{path, size, records, note, error}]
}
# One pod of `pods` (capture, trace and nodelogs of a workload or selector): where, what, how it ended.
POD: dict[str, tuple[type, ...]] = {
    "namespace": (str,),
    "pod": (str,),
    "node": _STR,
    "podIP": _STR,
    "container": _STR,
    "debugContainer": _STR,
    "profile": _STR,
    "error": _STR,  # why this pod failed; null when it did not
}
# --follow (capture, trace): when a pod joined (null: one of the first pods) and when it left (null: it lasted
# to the end), RFC 3339 UTC.
FOLLOW: dict[str, tuple[type, ...]] = {"joinedAt": _STR, "leftAt": _STR}
# What each command adds to a POD entry.
POD_SPECIFIC: dict[str, dict[str, tuple[type, ...]]] = {
    "capture": {"interfaceId": _INT, "packetsWritten": _INT, "packetsCaptured": _INT, "droppedByKernel": _INT,
                **FOLLOW},
    "trace": {"pids": _LIST, "traced": _LIST, "linesWritten": _INT, "output": _STR, **FOLLOW},
    "nodelogs": {"output": _STR, "filesWritten": _INT},
}
COMMANDS = tuple(SPECIFIC)
# Why a run was stopped before the tool ended by itself.
STOPPED_BY = ("SIGINT", "SIGTERM", "--duration", "--max-size", "reader-gone")


def keys(command: str) -> dict[str, tuple[type, ...]]:
    """Every key of `command`'s summary (but `error`) and its allowed types."""
    return {**SHARED, **SPECIFIC.get(command, {})}


def new(command: str) -> dict[str, Any]:
    """An empty summary: every key null, but `command`."""
    return {**dict.fromkeys(keys(command)), "command": command}


def unknown(command: str, fields: Mapping[str, Any]) -> list[str]:
    allowed = keys(command)
    return sorted(k for k in fields if k not in allowed and k != ERROR)


def check(command: str, summary: Mapping[str, Any]) -> list[str]:
    """What is wrong with a summary: missing or unknown keys, values of the wrong type. Empty when it fits."""
    problems = [f"unknown key {k!r}" for k in unknown(command, summary)]
    allowed = keys(command)
    problems += [f"missing key {k!r}" for k in allowed if k not in summary]
    for key, types in allowed.items():
        value = summary.get(key)
        # bool is an int in Python: accept it only where the schema says bool
        if key in summary and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            problems.append(f"{key}: {type(value).__name__} is not {'/'.join(t.__name__ for t in types)}")
    if ERROR in summary and not isinstance(summary[ERROR], str):
        problems.append("error: not a string")
    stopped = summary.get("stoppedBy")
    if stopped is not None and stopped not in STOPPED_BY:
        problems.append(f"stoppedBy: {stopped!r} is not one of {', '.join(STOPPED_BY)}")
    for pod in summary.get("pods") or []:
        problems += [f"pod: {p}" for p in _check_fields({**POD, **POD_SPECIFIC.get(command, {})}, pod)]
    if command == "nodelogs":
        for container in summary.get("containers") or []:
            for instance in container.get("instances", []):
                problems += [f"instance: {p}" for p in _check_fields(INSTANCE, instance)]
    return problems


def _check_fields(schema: Mapping[str, tuple[type, ...]], obj: Mapping[str, Any]) -> list[str]:
    problems = [f"unknown key {k!r}" for k in obj if k not in schema]
    problems += [f"missing key {k!r}" for k in schema if k not in obj]
    problems += [f"{k}: {type(obj[k]).__name__}" for k, types in schema.items()
                 if k in obj and (not isinstance(obj[k], types) or (isinstance(obj[k], bool) and bool not in types))]
    return problems


def stopped_by(reason: str, limit: str = "reader-gone") -> str | None:
    """The stop machinery's reason (remote.streamrun: "", duration, limit, SIGINT, SIGTERM) as `stoppedBy`;
    `limit` says which limit ("--max-size", or the reader of stdout gone)."""
    return {"": None, "duration": "--duration", "limit": limit, "SIGINT": "SIGINT", "SIGTERM": "SIGTERM"}.get(
        reason, reason or None)
