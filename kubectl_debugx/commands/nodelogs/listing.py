"""The node's /var/log/pods as entries: the listings of the node proxy (HTML) and of the node pod (``ls``).

The kubelet's ``/logs/`` handler is Go's http.FileServer over /var/log (docs/kubernetes-facts.md;
tests/cluster/recordings/10-nodeproxy-*, logs/4*-nodeproxy-*): directories come back as an HTML listing of
relative hrefs. The node pod lists with ``ls -1Ap``. Anything that is not one plain name is refused.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

from kubectl_debugx.errors import UnsafeMemberError
from kubectl_debugx.formats import logtree

PODS_DIR = "/var/log/pods"
DOCKER_DIR = "/var/lib/docker/containers"


@dataclass(frozen=True)
class Entry:
    """One entry of a node directory listing."""

    name: str
    is_dir: bool


_HREF = re.compile(r'<a href="([^"]*)"')


def parse_listing(text: str) -> tuple[list[Entry], list[str]]:
    """Entries of a Go http.FileServer directory listing, and the hrefs refused.

    Go writes ``<a href="URL">NAME</a>`` with the name percent-encoded (``./`` first when it holds a colon)
    and HTML-escaped; a directory's href ends with ``/``. Anything that is not one plain name in this
    directory (``..``, a slash inside, an absolute URL, NUL or backslash) is refused, never followed.
    """
    entries: list[Entry] = []
    refused: list[str] = []
    for match in _HREF.finditer(text):
        href = html.unescape(match.group(1))
        name = unquote(href)
        name = name[2:] if name.startswith("./") else name
        is_dir = name.endswith("/")
        name = name[:-1] if is_dir else name
        if not _plain_name(name) or "?" in href or "#" in href:
            refused.append(href)
            continue
        entries.append(Entry(name, is_dir))
    return entries, refused


def parse_ls(text: str) -> tuple[list[Entry], list[str]]:
    """Entries of ``ls -1Ap`` output (directories end with ``/``), and the lines refused."""
    entries: list[Entry] = []
    refused: list[str] = []
    for line in text.splitlines():
        if not line:
            continue
        is_dir = line.endswith("/")
        name = line[:-1] if is_dir else line
        if _plain_name(name):
            entries.append(Entry(name, is_dir))
        else:
            refused.append(line)
    return entries, refused


def _plain_name(name: str) -> bool:
    if not name or name in (".", ".."):
        return False
    try:
        return len(logtree.member_parts(name)) == 1
    except UnsafeMemberError:
        return False
