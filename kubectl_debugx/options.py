"""Parsing and validation of option values shared by the commands (pure).

Durations are Go durations as kubectl takes them: a number needs its unit (`10` is refused: 10s? 10m?).
Sizes: K, M, G, T are powers of 1000 (kubectl's quantity suffixes k, M, G, T), Ki, Mi, Gi, Ti powers of 1024;
the unit's case does not matter and a trailing B is optional (10K = 10k = 10KB = 10kb = 10000 bytes,
10Ki = 10KiB = 10240 bytes)."""

from __future__ import annotations

import re
from pathlib import Path

from kubectl_debugx.errors import OutputError, UsageError

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_SIZE = re.compile(rf"^({_NUMBER})\s*([kmgt]?)(i?)b?$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# What kubectl's -o takes: here -o names a file (or directory), so these words are refused (see check_not_format).
OUTPUT_FORMATS = ("json", "yaml", "wide", "name")


def parse_duration(text: str, flag: str, bare_seconds: bool = False) -> float:
    """Go-style durations as kubectl takes them (`30s`, `5m`, `1h30m`, `500ms`). A bare number is refused
    (kubectl: missing unit), except where kubectl itself reads it as seconds (`bare_seconds`:
    --request-timeout)."""
    value = text.strip()
    if re.fullmatch(_NUMBER, value):
        if float(value) == 0:
            raise UsageError(f"{flag}: duration must be greater than zero, got {text!r}")
        if not bare_seconds:
            raise UsageError(f'{flag}: missing unit in "{value}": {value}s? {value}m?')
        return float(value)
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise UsageError(f"{flag}: invalid duration {text!r} (examples: 30s, 5m, 1h30m)")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"{flag}: duration must be greater than zero, got {text!r}")
    return seconds


def parse_size(text: str, flag: str) -> int:
    """Bytes: `500`, `10K`/`10k`/`10KB`/`10kb` (10,000), `10M` (10,000,000), `512Ki`/`512KiB` (524,288),
    `1GiB`. K, M, G, T are powers of 1000, Ki, Mi, Gi, Ti of 1024; case does not matter, B is optional."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"{flag}: invalid size {text!r} (examples: 500K, 10M, 1Gi; K=1000, Ki=1024)")
    number, unit, binary = match.groups()
    if binary and not unit:
        raise UsageError(f"{flag}: invalid size {text!r} (examples: 500K, 10M, 1Gi; K=1000, Ki=1024)")
    base = 1024 if binary else 1000
    size = int(float(number) * base ** _SIZE_POWERS[unit.lower()])
    if size <= 0:
        raise UsageError(f"{flag}: size must be greater than zero, got {text!r}")
    return size


def check_not_format(value: str, what: str) -> None:
    """`-o json` (or yaml, wide, name) is kubectl's output format, not a file name: refuse it with what to type
    instead, unless such a file or directory exists. `-o ./json` writes a file named json."""
    if value.lower() in OUTPUT_FORMATS and not Path(value).exists():
        hint = "for a JSON summary use --summary json" if value.lower() == "json" else (
            "the summary format is --summary json or --summary text")
        raise UsageError(f"-o names the output {what} here; {hint} (to write a {what} named {value}, "
                         f"say -o ./{value})")


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
