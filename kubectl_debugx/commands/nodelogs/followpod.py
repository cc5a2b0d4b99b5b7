"""nodelogs --follow --via pod on Docker nodes: a node pod that reads Docker's rotated log files.

The lines still come through the node proxy (byte ranges of the live file, follow.py); the node pod is only
asked, by exec, when Docker rotated the file being followed (formats/dockerfollow.py): the rotated files are in
/var/lib/docker/containers/ID/, outside /var/log, which the proxy serves (recordings 30-docker-c15, c17). In the
node pod ``N.log`` is an absolute symlink that resolves inside the pod's own root (30-docker-b03): it is read
with readlink and re-rooted at /host. One node pod per node, created when the first Docker container of that
node is followed, deleted (with its Job) when following ends, on every way out.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from typing import Any

from kubectl_debugx.commands.nodelogs import nodejob
from kubectl_debugx.commands.nodelogs import pod as nodepod
from kubectl_debugx.commands.nodelogs.listing import PODS_DIR
from kubectl_debugx.commands.nodelogs.target import DEFAULT_PROFILE, NodeLogsOptions
from kubectl_debugx.formats.dockerfollow import Snapshot, first_line
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.talk import Talk

TRIES = 3  # snapshots tried when Docker rotates again while one is taken

# $1 pod dir, $2 container, $3 N.log. Prints "F SIZE\n" + the bytes of each rotated file, oldest first, then
# "L\n" + the live file's first line, then OK when no file was renamed meanwhile (the inodes of the names
# before and after), else MOVED.
SNAPSHOT_SCRIPT = r"""
l=$(readlink "/host{pods}/$1/$2/$3") || exit 4
case "$l" in /var/lib/docker/containers/*-json.log) ;; *) exit 5;; esac
f="/host$l"
before=$(ls -i "$f" "$f".* 2>/dev/null)
for k in $(ls "$f".* 2>/dev/null | sed 's/.*\.//' | grep -x '[0-9]*' | sort -rn); do
  n=$(wc -c < "$f.$k") || exit 6
  echo "F $n"; cat "$f.$k"
done
echo L; head -n 1 "$f"
after=$(ls -i "$f" "$f".* 2>/dev/null)
[ "$before" = "$after" ] && echo OK || echo MOVED
""".replace("{pods}", PODS_DIR)


def parse_snapshot(out: bytes) -> Snapshot | None:
    """SNAPSHOT_SCRIPT's output; None when it is not consistent (a rename meanwhile, or cut)."""
    if not out.endswith(b"\nOK\n"):
        return None
    body, pos, rotated = out[:-len(b"OK\n")], 0, []
    while body.startswith(b"F ", pos):
        end = body.find(b"\n", pos)
        m = re.fullmatch(rb"F (\d+)", body[pos:end])
        if m is None:
            return None
        size = int(m[1])
        rotated.append(body[end + 1:end + 1 + size])
        pos = end + 1 + size
    if not body.startswith(b"L\n", pos):
        return None
    return Snapshot(rotated, first_line(body[pos + 2:]))


class DockerFiles:
    """formats.dockerfollow.RotatedSource of one container directory, through a node pod."""

    def __init__(self, source: nodepod.PodSource, pod_dir: str, container: str) -> None:
        self.source, self.pod_dir, self.container = source, pod_dir, container

    def docker_files(self, live: str) -> Snapshot | None:
        for _ in range(TRIES):
            out, _err, outcome = self.source.run(["sh", "-c", SNAPSHOT_SCRIPT, "sh", self.pod_dir, self.container,
                                                  live])
            if outcome.exit_code in (4, 5):
                return None  # the link is gone (container removed), or not Docker's
            snapshot = parse_snapshot(out) if outcome.exit_code == 0 else None
            if snapshot is not None:
                return snapshot
        return None


class NodePods:
    """The node pods of one --follow --via pod run, one per node, created on first use."""

    def __init__(self, kube: KubeApi, opts: NodeLogsOptions, talk: Talk) -> None:
        self.kube, self.opts, self.talk = kube, opts, talk
        self.stack = ExitStack()
        self.sources: dict[str, nodepod.PodSource] = {}

    def files(self, node: str, target_pod: str, pod_dir: str, container: str) -> DockerFiles:
        source = self.sources.get(node)
        if source is None:
            source = self.sources[node] = self._create(node, target_pod)
        return DockerFiles(source, pod_dir, container)

    def _create(self, node: str, target_pod: str) -> nodepod.PodSource:
        opts = self.opts
        namespace = opts.pod_namespace or self.kube.namespace
        profile = DEFAULT_PROFILE if opts.profile == "auto" else opts.profile
        spec = nodepod.node_pod_spec(nodepod.node_pod_name(), namespace, node, opts.image, True, profile,
                                     opts.custom)
        route = nodepod.preflight(self.kube, spec, namespace, target_pod)
        self.talk.say(route.why)
        session: Any = nodejob.node_job_session if route.as_job else nodepod.node_pod_session
        source: nodepod.PodSource = self.stack.enter_context(
            session(self.kube, spec, opts.start_timeout, self.talk.say, self.talk.warn))
        self.talk.say(f"Docker's rotated log files on node {node} are read through {source.where()}")
        return source

    def close(self) -> None:
        self.stack.close()
