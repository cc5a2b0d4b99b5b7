"""nodelogs across pods (a workload, a service, a selector): every pod's files under DIR/POD/... exactly as one
pod's run writes them in its own folder, one pod after the other; with --merge also DIR/merged.log, every line
of every pod and container instance in CRI-timestamp order, prefixed POD/CONTAINER#RESTART
(formats/logmerge.py)."""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_debugx.errors import DebugxError, ExitCode, Interrupted, NotFound
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import TargetRef
from kubectl_debugx.remote import fanout
from kubectl_debugx.talk import Talk, plural

from .target import NodeLogsOptions, since_limit

MERGED = "merged.log"


def run(kube: KubeApi, opts: NodeLogsOptions, ref: TargetRef, max_pods: int, merge: bool, talk: Talk) -> int:
    from . import run as run_one

    resolution = fanout.resolve_pods(kube, ref, max_pods, talk.say)
    out = Path(opts.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    failed = 0
    for pod in resolution.pods:
        meta = pod["metadata"]
        name = meta["name"]
        folder = out / name
        one = dataclasses.replace(opts, pod=name, output_dir=str(folder))
        pod_talk = Talk(quiet=talk.quiet, command="nodelogs")
        kube.namespace = meta["namespace"]
        error = ""
        try:
            run_one(kube, one, _Prefixed(pod_talk, talk, name))
        except Interrupted:
            raise
        except DebugxError as e:
            error = str(e)
            failed += 1
            talk.warn(f"pod {name}: {e}; the other pods go on")
        summary = pod_talk.summary
        records.append({
            "namespace": meta["namespace"], "pod": name, "node": summary.get("node"),
            "podIP": (pod.get("status") or {}).get("podIP"), "container": summary.get("container"),
            "debugContainer": None, "profile": None, "output": str(folder),
            "filesWritten": summary.get("filesWritten"), "error": error or None,
        })
        records[-1]["_containers"] = summary.get("containers") or []
    merged_lines = None
    if merge:
        merged_lines = write_merged(out, records, since_limit(opts, datetime.now(timezone.utc)))
        talk.say(f"Merged {plural(merged_lines, 'line')} of {plural(len(records), 'pod')} in time order into "
                 f"{out / MERGED}")
    for record in records:
        record.pop("_containers", None)
    talk.record(output=str(out), pods=records,
                filesWritten=sum(r["filesWritten"] or 0 for r in records))
    if failed == len(records):
        raise NotFound(f"no log files could be copied for any pod of {ref.display}")
    return int(ExitCode.PARTIAL) if failed else 0


class _Prefixed(Talk):
    """One pod's run: its facts go to its own summary, its lines to ours with the pod's name in front."""

    def __init__(self, own: Talk, outer: Talk, pod: str) -> None:
        super().__init__(quiet=outer.quiet, json_summary=False, command="nodelogs", summary=own.summary)
        self.outer = outer
        self.pod = pod

    def say(self, message: str) -> None:
        self.outer.say(f"{self.pod}: {message}")

    def warn(self, message: str) -> None:
        self.outer.warn(f"{self.pod}: {message}")


def sources(out: Path, records: list[dict[str, Any]]) -> list[tuple[str, Iterator[bytes]]]:
    """(POD/CONTAINER#RESTART, its CRI lines in file order) for every container instance copied."""
    found = []
    for record in records:
        for container in record.get("_containers") or []:
            for instance in container.get("instances") or []:
                paths = [out / record["pod"] / f["path"] for f in instance.get("files") or [] if not f.get("error")]
                prefix = f"{record['pod']}/{container['name']}#{instance['restart']}"
                found.append((prefix, _lines(paths)))
    return found


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            yield from f


def write_merged(out: Path, records: list[dict[str, Any]], since: datetime | None) -> int:
    from kubectl_debugx.formats import logmerge

    count = 0
    with open(out / MERGED, "w", encoding="utf-8", newline="") as f:  # newline="": a \r in a line stays
        for line in logmerge.merge(sources(out, records), since):
            f.write(line)
            count += 1
    return count
