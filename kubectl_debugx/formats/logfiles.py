"""The names of container log files on the node, and the order in which to read them.

CRI (containerd, CRI-O): ``N.log`` is restart N's live file, rotated to ``N.log.YYYYMMDD-HHMMSS`` (the
kubelet's local clock) and gzipped to ``.gz`` only at the next rotation. Docker json-file: ``ID-json.log``,
rotated to ``ID-json.log.1``, ``.2``, ... (docs/kubernetes-facts.md, "Pod log files"). The decoding of what
is in them is formats/crilog.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubectl_debugx.formats.crilog import LogFormat


@dataclass(frozen=True)
class LogFileName:
    """What a file name in a container log directory says about the file."""

    name: str
    format: LogFormat
    restart: int | None  # N of N.log; for Docker, from the container ID → restart map when known
    container_id: str | None  # Docker only
    rotation: str  # "" for the live file; CRI: YYYYMMDD-HHMMSS (kubelet local time); Docker: "1", "2", ...
    compressed: bool  # by name (.gz); the content decides when reading


_CRI_NAME = re.compile(r"(\d+)\.log(?:\.(\d{8}-\d{6})(\.gz)?)?")
_DOCKER_NAME = re.compile(r"(.+)-json\.log(?:\.(\d+))?(\.gz)?")


def classify_name(name: str, docker_restarts: Mapping[str, int] | None = None) -> LogFileName | None:
    """Recognise N.log, N.log.TS, N.log.TS.gz and Docker's ID-json.log, .1, .2, (.gz); None otherwise."""
    match = _CRI_NAME.fullmatch(name)
    if match:
        return LogFileName(name, "cri", int(match[1]), None, match[2] or "", bool(match[3]))
    match = _DOCKER_NAME.fullmatch(name)
    if match:
        restart = (docker_restarts or {}).get(match[1])
        return LogFileName(name, "docker", restart, match[1], match[2] or "", bool(match[3]))
    return None


@dataclass(frozen=True)
class Instance:
    """The files of one container instance (one restart), oldest first, the live file last."""

    restart: int | None
    container_id: str | None
    files: tuple[str, ...]

    @property
    def label(self) -> str:
        """A name for the instance's decoded file: the restart number, else the Docker container ID."""
        return str(self.restart) if self.restart is not None else str(self.container_id)


@dataclass(frozen=True)
class Skipped:
    """A file or tar member left out, and why (log plans, tar extraction, proxy listings)."""

    name: str
    reason: str


@dataclass(frozen=True)
class LogPlan:
    """The order in which to read one container's log files."""

    instances: tuple[Instance, ...]
    skipped: tuple[Skipped, ...] = field(default=())


def plan_container_logs(names: Iterable[str], docker_restarts: Mapping[str, int] | None = None) -> LogPlan:
    """Group one container's base file names by instance, each group in reading order.

    Instances come in restart order (Docker instances whose restart is unknown last, by ID). One restart's
    files are one instance whatever their naming: on Docker nodes its live file is ``N.log`` (the symlink's
    content, as the proxy and a node pod copy it) and its rotated files Docker's ``ID-json.log.K``. Within one,
    rotated CRI files sort by their YYYYMMDD-HHMMSS suffix (the kubelet's own order), Docker's by descending
    number (.2 is older than .1), then the live file. Skipped, so that no line appears twice: ``.tmp`` files
    (the kubelet's gzip output being written), a ``.gz`` whose plain file is still there (caught between the
    kubelet's rename and unlink, both hold the same lines) and Docker's live ``ID-json.log`` beside the
    ``N.log`` that links to it.
    """
    groups: dict[tuple[int | None, str | None], list[LogFileName]] = {}
    skipped: list[Skipped] = []
    for name in sorted(set(names)):
        info = None if name.endswith(".tmp") else classify_name(name, docker_restarts)
        if info is None:
            reason = "kubelet's temporary gzip output" if name.endswith(".tmp") else "not a log file name"
            skipped.append(Skipped(name, reason))
            continue
        key: tuple[int | None, str | None] = (
            (info.restart, None) if info.restart is not None else (None, info.container_id))
        groups.setdefault(key, []).append(info)
    instances = []
    for key in sorted(groups, key=_instance_order):
        files, dupes = _drop_compressed_duplicates(groups[key])
        files, twins = _drop_docker_live_twin(files)
        skipped.extend(dupes + twins)
        container_id = next((f.container_id for f in files if f.container_id), None)
        instances.append(Instance(key[0], container_id, tuple(f.name for f in sorted(files, key=_file_order))))
    return LogPlan(tuple(instances), tuple(sorted(skipped, key=lambda s: s.name)))


def _instance_order(key: tuple[int | None, str | None]) -> tuple[bool, int, str]:
    restart, container_id = key
    return (restart is None, restart or 0, container_id or "")


def _file_order(info: LogFileName) -> tuple[bool, int, str]:
    live = info.rotation == ""
    if info.format == "docker":
        return (live, -int(info.rotation or 0), "")
    return (live, 0, info.rotation)


def _drop_docker_live_twin(files: list[LogFileName]) -> tuple[list[LogFileName], list[Skipped]]:
    """Docker's live ``ID-json.log`` when the instance's ``N.log`` (a symlink to it) came too."""
    link = next((f.name for f in files if f.format == "cri" and not f.rotation), None)
    if link is None:
        return files, []
    twins = [f for f in files if f.format == "docker" and not f.rotation]
    return ([f for f in files if f not in twins],
            [Skipped(f.name, f"same content as {link}, a symbolic link to it") for f in twins])


def _drop_compressed_duplicates(files: list[LogFileName]) -> tuple[list[LogFileName], list[Skipped]]:
    names = {f.name for f in files}
    kept, dupes = [], []
    for info in files:
        if info.compressed and info.name.removesuffix(".gz") in names:
            dupes.append(Skipped(info.name, f"same content as {info.name.removesuffix('.gz')}"))
        else:
            kept.append(info)
    return kept, dupes
