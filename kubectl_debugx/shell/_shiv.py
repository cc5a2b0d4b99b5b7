"""Housekeeping of the zipapp's extraction, run on every start before the CLI (from packaging/zipapp_main.py
on a warm start, from shiv's preamble after the first extraction).

shiv unpacks each build to ``~/.shiv/<file name>_<build id>/`` (or ``$SHIV_ROOT``) and never removes older
builds, so every upgrade would leave ~20 MB behind. Here we:

- hold a shared flock on ``.debugx-in-use`` in our own extraction for the life of the process, so that no other
  build removes it while we run;
- let imports from the extraction write their .pyc even when PYTHONDONTWRITEBYTECODE is set (otherwise every
  start would recompile typer, and every command the Kubernetes client);
- remove extractions of *other* builds of *this* program, carefully: only directories named exactly
  ``<our file name>_<64 hex>`` that hold ``site-packages/kubectl_debugx/``, extracted more than 10 minutes ago,
  whose in-use lock we can take exclusively (no process of that build is running). Abandoned unfinished
  extractions (``…tmp``) older than an hour go too.

Any error leaves everything as it is. KUBECTL_DEBUGX_KEEP_OLD=1 turns the removal off.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

IN_USE = ".debugx-in-use"
MIN_AGE = 600.0  # seconds since an extraction appeared before it may be removed
STALE_TMP = 3600.0  # an unfinished extraction older than this was abandoned
_held: list[int] = []  # file descriptors kept open (and locked) until the process ends


def hold_in_use(extraction: Path) -> None:
    import fcntl

    fd = os.open(str(extraction / IN_USE), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)


def _claim(candidate: Path) -> bool:
    """True if no process of that build runs; we then hold its lock exclusively until we exit."""
    import fcntl

    try:
        fd = os.open(str(candidate / IN_USE), os.O_RDWR)
    except FileNotFoundError:
        return True  # extracted by a build without this housekeeping, and old enough (checked by the caller)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def remove_old_builds(extraction: Path, now: float | None = None) -> list[Path]:
    """Remove other builds' extractions next to ours; return what was removed."""
    import shutil

    root = extraction.parent
    name, sep, build_id = extraction.name.rpartition("_")
    if not sep or not re.fullmatch(r"[0-9a-f]{64}", build_id):
        return []  # not a default build id: we cannot tell our builds apart safely
    now = time.time() if now is None else now
    pattern = re.compile(re.escape(name) + r"_[0-9a-f]{64}(\.tmp)?")
    removed = []
    for entry in os.scandir(root):
        match = pattern.fullmatch(entry.name)
        if not match or entry.name == extraction.name or entry.is_symlink() or not entry.is_dir():
            continue
        candidate = Path(entry.path)
        age = now - entry.stat().st_mtime
        if match.group(1):  # shiv extracts into `…tmp` and renames it when done
            if age > STALE_TMP:
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
            continue
        if age < MIN_AGE or not (candidate / "site-packages" / "kubectl_debugx" / "__init__.py").is_file():
            continue
        if not _claim(candidate):
            continue
        doomed = root / f".{entry.name}.removing-{os.getpid()}"
        os.rename(candidate, doomed)  # atomic: a start of that build now re-extracts instead of half-reading
        shutil.rmtree(doomed, ignore_errors=True)
        with_lock = root / f".{entry.name}_lock"  # shiv's extraction lock file
        if with_lock.is_file():
            with_lock.unlink()
        removed.append(candidate)
    return removed


def cache_bytecode_in(site_packages: Path) -> bool:
    """Let imports from site_packages (our extraction) write their .pyc even under PYTHONDONTWRITEBYTECODE.

    That variable keeps source trees clean; without .pyc every start would recompile typer (~60 ms) and every
    command the Kubernetes client. Only modules under site_packages are affected: a path hook gives their
    directories a loader that lifts the flag while it compiles one module (not while the module runs)."""
    if not sys.dont_write_bytecode or not os.access(site_packages, os.W_OK):
        return False
    import importlib.machinery as machinery

    class CachingLoader(machinery.SourceFileLoader):
        def get_code(self, fullname: str) -> Any:
            saved = sys.dont_write_bytecode
            sys.dont_write_bytecode = False
            try:
                return super().get_code(fullname)
            finally:
                sys.dont_write_bytecode = saved

    prefix = str(site_packages)
    loaders: list[Any] = [
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (CachingLoader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES),
    ]

    def hook(path: str) -> Any:
        if path == prefix or path.startswith(prefix + os.sep):
            return machinery.FileFinder(path, *loaders)
        raise ImportError("not in the extraction")

    sys.path_hooks.insert(0, hook)
    for path in [p for p in sys.path_importer_cache if p == prefix or p.startswith(prefix + os.sep)]:
        del sys.path_importer_cache[path]
    return True


def after_bootstrap(site_packages: Path | str) -> None:
    try:
        extraction = Path(site_packages).parent
        hold_in_use(extraction)
        cache_bytecode_in(Path(site_packages))
        if not os.environ.get("KUBECTL_DEBUGX_KEEP_OLD"):
            remove_old_builds(extraction)
    except Exception:  # noqa: BLE001 - housekeeping must never stop the command
        pass
