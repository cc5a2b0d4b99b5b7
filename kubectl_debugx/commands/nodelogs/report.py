"""After the copy: which files make up each container instance, their decoding, and the summary."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubectl_debugx.commands.nodelogs.pod import DOCKER_SUBDIR
from kubectl_debugx.commands.nodelogs.target import DEFAULT_PROFILE, LogTarget, NodeLogsOptions, docker_ids_of
from kubectl_debugx.formats import crilog, logfiles
from kubectl_debugx.formats.logtree import ExtractReport
from kubectl_debugx.talk import Talk, plural
from kubectl_debugx.talk import human_size as talk_human_size

# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class InstancePlan:
    container: str
    instance: logfiles.Instance
    paths: tuple[str, ...]  # relative to the output directory, reading order
    decoded: str  # file name in the output directory


@dataclass(frozen=True)
class ContainerPlan:
    container: str
    instances: tuple[InstancePlan, ...]
    skipped: tuple[logfiles.Skipped, ...] = ()


def plan_container(
    node: str, pod_dir: str, container: str, files: Sequence[str], docker_ids: Mapping[str, int]
) -> ContainerPlan:
    """Which copied files (paths relative to the node folder) make which decoded file, in reading order.

    ``files`` are every copied file; those of ``container`` are its directory's and, on Docker nodes, the
    ``ID-json.log*`` of its container IDs (``docker_ids``: ID -> restart)."""
    by_name: dict[str, str] = {}
    prefix = f"{pod_dir}/{container}/"
    for rel in files:
        if rel.startswith(prefix) and "/" not in rel[len(prefix):]:
            by_name[rel[len(prefix):]] = rel
        parts = rel.split("/")
        if len(parts) == 4 and parts[:2] == [DOCKER_SUBDIR, "containers"] and parts[2] in docker_ids:
            by_name[parts[3]] = rel
    plan = logfiles.plan_container_logs(by_name, docker_ids)
    instances = tuple(
        InstancePlan(
            container,
            instance,
            tuple(f"{node}/{by_name[name]}" for name in instance.files),
            f"{container}_{instance.label[:12]}.txt",
        )
        for instance in plan.instances
    )
    return ContainerPlan(container, instances, plan.skipped)


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class InstanceResult:
    plan: InstancePlan
    report: crilog.DecodeReport
    written: bool  # False with --raw: counted, not written


def decode_all(
    out: Path,
    target: LogTarget,
    pod_dir: str,
    containers: Sequence[str],
    report: ExtractReport,
    since: datetime | None,
    raw: bool,
    linked: Mapping[str, Mapping[str, int]] | None = None,
) -> list[tuple[ContainerPlan, list[InstanceResult]]]:
    """``linked``: container -> {Docker container ID: restart}, read from the N.log links, beside the status's."""
    files = [f.path for f in report.files]
    results = []
    for container in containers:
        ids = {**docker_ids_of(target, [container]), **(linked or {}).get(container, {})}
        plan = plan_container(target.node, pod_dir, container, files, ids)
        done = []
        for instance in plan.instances:
            paths = [out / p for p in instance.paths]
            with _decoded_file(out, instance.decoded, raw) as text:
                decoded = crilog.decode_instance(paths, text, since)
            done.append(InstanceResult(instance, decoded, not raw))
        results.append((plan, done))
    return results


@contextmanager
def _decoded_file(out: Path, name: str, raw: bool) -> Iterator[Any]:
    if raw:
        with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
            yield sink
        return
    with (out / name).open("x", encoding="utf-8", newline="") as text:
        yield text


# ---------------------------------------------------------------------------------------------- summary


def human_size(n: int) -> str:
    return talk_human_size(n, binary=True)


def summary(
    talk: Talk,
    opts: NodeLogsOptions,
    target: LogTarget,
    uid: str,
    via: str,
    node_pod: str,
    report: ExtractReport,
    results: list[tuple[ContainerPlan, list[InstanceResult]]],
    notes: list[str],
    since: datetime | None,
    elapsed: float | None = None,
) -> None:
    total = sum(f.size for f in report.files)
    sizes = {f"{target.node}/{f.path}": f.size for f in report.files}
    how = "the node proxy" if via == "proxy" else f"node pod {node_pod} (deleted)"
    talk.say(f"Copied {plural(len(report.files), 'file')} ({human_size(total)}) of pod {target.namespace}/{target.pod} "
             f"(uid {uid}) from node {target.node} through {how} into {opts.output_dir}")
    containers_json = []
    for plan, done in results:
        instances_json = []
        for result in done:
            r = result.report
            restart = result.plan.instance.restart
            label = f"restart {restart}" if restart is not None else f"id {result.plan.instance.label[:12]}"
            extras = [f"{r.stderr_lines} stderr"]
            if r.unterminated:
                extras.append(f"{r.unterminated} unterminated")
            if r.malformed:
                extras.append(f"{r.malformed} malformed")
            if since is not None:
                extras.append(f"{r.before_since} before --since")
            size = sum(sizes.get(p, 0) for p in result.plan.paths)
            into = f" -> {result.plan.decoded}" if result.written else ""
            talk.say(f"  {plan.container} {label}: {plural(len(result.plan.paths), 'file')}, {human_size(size)}, "
                     f"{plural(r.lines, 'line')} ({', '.join(extras)}){into}")
            for path, file_report in zip(result.plan.paths, r.files, strict=False):
                line = f"      {path}  {human_size(file_report.size)}  {plural(file_report.records, 'record')}"
                for extra in (file_report.note, file_report.error):
                    if extra:
                        line += f"  ({extra})"
                if file_report.malformed:
                    shown = ", ".join(str(n) for n in file_report.malformed[:5])
                    line += f"  (malformed lines: {shown}{', ...' if len(file_report.malformed) > 5 else ''})"
                talk.say(line)
            instances_json.append({
                "restart": restart,
                "containerID": None if restart is not None else result.plan.instance.container_id,
                "decoded": result.plan.decoded if result.written else None,
                "lines": r.lines, "stderrLines": r.stderr_lines, "unterminatedLines": r.unterminated,
                "malformedLines": r.malformed, "linesBeforeSince": r.before_since,
                "files": [{"path": p, "size": f.size, "records": f.records, "note": f.note, "error": f.error}
                          for p, f in zip(result.plan.paths, r.files, strict=False)],
            })
        if not done:
            talk.say(f"  {plan.container}: no log files")
        for skipped in plan.skipped:
            talk.say(f"  {plan.container}: skipped {skipped.name} ({skipped.reason})")
        containers_json.append({"name": plan.container, "instances": instances_json,
                                "skipped": [{"name": s.name, "reason": s.reason} for s in plan.skipped]})
    for member in report.skipped:
        talk.say(f"  skipped {member.name}: {member.reason}")
    for note in notes:
        talk.say(f"Note: {note}")
    talk.record(**summary_record(target, uid, via, node_pod, opts, since, len(report.files), total, containers_json,
                                 [{"name": s.name, "reason": s.reason} for s in report.skipped], elapsed))


def summary_record(target: LogTarget, uid: str, via: str, node_pod: str, opts: NodeLogsOptions,
                   since: datetime | None, files: int, total: int, containers: list[dict[str, Any]],
                   skipped: list[dict[str, str]], elapsed: float | None = None) -> dict[str, Any]:
    """nodelogs' part of the JSON summary (kubectl_debugx/summary.py): `container` is the one container read
    (null when several were), each in `containers` with its instances."""
    names = [c["name"] for c in containers]
    return {
        "pod": target.pod, "namespace": target.namespace, "container": names[0] if len(names) == 1 else None,
        "profile": None if via == "proxy" else DEFAULT_PROFILE if opts.profile == "auto" else opts.profile,
        "output": opts.output_dir, "durationSeconds": None if elapsed is None else round(elapsed, 3),
        "node": target.node,
        "uid": uid, "static": target.static, "via": via, "nodePod": node_pod or None, "raw": opts.raw,
        "since": since.isoformat() if since else None, "filesWritten": files, "bytesWritten": total,
        "containers": containers, "skipped": skipped,
    }
