"""Parsing and validation of option values shared by the commands (pure)."""

from __future__ import annotations

import re
from pathlib import Path

from kubectl_debugx.errors import OutputError, UsageError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKMGT]?i?)B?$")
_SIZE_FACTORS = {
    "": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "ki": 1024, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> float:
    """Go-style durations as kubectl takes them (`30s`, `5m`, `1h30m`, `500ms`); a bare number is seconds."""
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(f"{flag}: invalid duration {text!r} (examples: 30s, 5m, 1h30m)")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"{flag}: duration must be greater than zero, got {text!r}")
    return seconds


def parse_size(text: str, flag: str) -> int:
    """Sizes like `10MB`, `10M`, `512Ki`, `1GiB`, or plain bytes. k/M/G are powers of 1000, Ki/Mi/Gi of 1024."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"{flag}: invalid size {text!r} (examples: 500KB, 10MB, 1GiB)")
    number, unit = match.groups()
    size = int(float(number) * _SIZE_FACTORS[unit])
    if size <= 0:
        raise UsageError(f"{flag}: size must be greater than zero, got {text!r}")
    return size


def parse_pod_arg(text: str) -> str:
    """`POD` or `pod/POD` (also `pods/POD`, `po/POD`), as kubectl accepts it."""
    kind, sep, name = text.partition("/")
    if not sep:
        return text
    if kind not in ("pod", "pods", "po") or not name:
        raise UsageError(f"{text!r}: only pods can be targeted (POD or pod/POD)")
    return name


def check_output_file(path: str, force: bool, stdout_is_tty: bool, what: str) -> None:
    """Refuse to clobber a file, to write binary to a terminal, or to write where we cannot."""
    if path == "-":
        if stdout_is_tty and what == "pcap":
            raise OutputError("refusing to write pcap data to a terminal: redirect stdout or use -o FILE")
        return
    target = Path(path)
    if target.exists() and not force:
        raise OutputError(f"{path} already exists: use --force to overwrite it, or choose another -o")
    if target.is_dir():
        raise OutputError(f"{path} is a directory: -o takes a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
