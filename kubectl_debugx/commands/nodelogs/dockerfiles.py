"""Docker nodes, copy through a node pod: each instance's live file where the node shows it, as ``N.log``.

On a Docker node ``/var/log/pods/POD_DIR/CONTAINER/N.log`` is an absolute symlink to
``/var/lib/docker/containers/ID/ID-json.log``, and Docker rotates that file itself to ``ID-json.log.1``, ``.2``
beside it (recordings 30-docker-b03, c15). The node pod's tar of the pod directory skips the links (they carry
no content) and a second tar brings Docker's files. Copied as they came, the pod's folder would hold nothing
while the node proxy's copy of the same pod holds ``N.log``: so each link's live file is moved to the link's
own path (``N.log``, the same bytes the proxy serves there), and only the rotated files stay under
``docker/containers/ID/``. The links also say which container ID was restart N, which the pod's status knows
only for its last two instances.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from kubectl_debugx.commands.nodelogs.listing import DOCKER_DIR
from kubectl_debugx.commands.nodelogs.pod import DOCKER_SUBDIR
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport

_LINK = re.compile(re.escape(DOCKER_DIR) + r"/([0-9a-f]{64})/\1-json\.log")
_LIVE = re.compile(r"(\d+)\.log")


def linked_ids(report: ExtractReport, pod_dir: str) -> dict[str, dict[str, int]]:
    """container -> {Docker container ID: restart N}, from the ``N.log`` links of the pod's folder."""
    found: dict[str, dict[str, int]] = {}
    for path, target in report.links:
        parts = path.split("/")
        link, live = _LINK.fullmatch(target), _LIVE.fullmatch(parts[-1])
        if len(parts) == 3 and parts[0] == pod_dir and link and live:
            found.setdefault(parts[1], {})[link[1]] = int(live[1])
    return found


def merged(report: ExtractReport, extra: ExtractReport) -> ExtractReport:
    return ExtractReport(report.files + extra.files, report.directories + extra.directories,
                         report.skipped + extra.skipped, report.links + extra.links)


def place_live_files(dest: Path, report: ExtractReport, pod_dir: str,
                     linked: Mapping[str, Mapping[str, int]]) -> ExtractReport:
    """Move each linked ``docker/containers/ID/ID-json.log`` under ``dest`` to ``POD_DIR/CONTAINER/N.log``;
    the link is then no longer reported as skipped, and an ID folder left empty is removed."""
    moves: dict[str, str] = {}
    for container, ids in linked.items():
        for container_id, restart in ids.items():
            moves[f"{DOCKER_SUBDIR}/containers/{container_id}/{container_id}-json.log"] = (
                f"{pod_dir}/{container}/{restart}.log")
    files, emptied = [], set()
    for f in report.files:
        new = moves.get(f.path)
        if new is not None and (dest / new).parent.is_dir() and not (dest / new).exists():
            # both paths are inside the output folder, made by our own extraction: no link can bend them
            os.replace(dest / f.path, dest / new)
            files.append(ExtractedFile(new, f.size))
            emptied.add(f.path.rpartition("/")[0])
        else:
            files.append(f)
    removed = {d for d in emptied if _remove_empty(dest / d)}
    for top in (f"{DOCKER_SUBDIR}/containers", DOCKER_SUBDIR):
        if _remove_empty(dest / top):
            removed.add(top)
    placed = {f.path for f in files}
    return ExtractReport(tuple(files), tuple(d for d in report.directories if d not in removed),
                         tuple(s for s in report.skipped if s.name not in placed),
                         tuple(link for link in report.links if link[0] not in placed))


def _remove_empty(path: Path) -> bool:
    try:
        path.rmdir()
    except OSError:
        return False
    return True
