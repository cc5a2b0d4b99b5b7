"""stdout is data, stderr is talk: the one place that writes either."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx import summary as schema

_LINES = threading.RLock()  # reentrant: a signal handler that talks runs in the thread it interrupts


def _line(text: str) -> None:
    """One whole line on stderr: the setup of several pods talks from several threads, and print() writes the
    text and its newline apart (the lab: "...to pod webd-2bzrzAdding ephemeral container ..." on one line)."""
    with _LINES:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


@dataclass
class Talk:
    quiet: bool = False
    json_summary: bool = False  # stdout carries the summary object after the data (tables then go to stderr)
    command: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)  # what the run leaves in the cluster, said as it ends
    # how the summary object is written: one JSON line (--summary json), or -o json (indented) / -o yaml
    data_format: str = "line"
    # clears a line refreshed in place (progress.py) before a line of talk, which would otherwise join it
    before_line: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.command and not self.summary:
            self.summary = schema.new(self.command)

    def say(self, message: str) -> None:
        """Progress and notes: stderr, silenced by -q."""
        if not self.quiet:
            if self.before_line:
                self.before_line()
            _line(message)

    def warn(self, message: str) -> None:
        """Warnings: stderr, even with -q."""
        if self.before_line:
            self.before_line()
        _line(f"Warning: {message}")

    def leave(self, what: str) -> None:
        """Note something that stays in the cluster after the run; said_left() says it on every way out."""
        self.left.append(what)

    def said_left(self) -> None:
        """Say what stays in the cluster (stderr, even with -q: the user must know), once."""
        for what in self.left:
            _line(f"Left in the cluster: {what}")
        self.left.clear()

    def out(self, text: str) -> None:
        """Data for stdout."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def record(self, **fields: Any) -> None:
        """Facts for the `--summary json` summary; only keys of the schema (kubectl_debugx/summary.py)."""
        if self.command:
            bad = schema.unknown(self.command, fields)
            if bad:
                raise ValueError(f"summary of {self.command} has no key {', '.join(bad)}")
        self.summary.update(fields)

    def emit_summary(self, exit_code: int) -> None:
        if self.json_summary:
            self.summary["exitCode"] = exit_code
            self.out(render(self.summary, self.data_format))


def render(data: Any, data_format: str = "line") -> str:
    """A data object as stdout carries it: one JSON line (--summary json, for runbooks reading lines), or as
    kubectl's -o json (indented by 4) and -o yaml (block style, keys sorted as in the JSON)."""
    if data_format == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    if data_format == "json":
        return json.dumps(data, sort_keys=True, indent=4) + "\n"
    return json.dumps(data, sort_keys=True) + "\n"


def plural(count: int, one: str, many: str = "") -> str:
    """`1 packet`, `2 packets`; `many` for irregular plurals (`process`, `processes`)."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def human_size(count: int, binary: bool = False) -> str:
    """Bytes for people: powers of 1000 (`12.6 MB`, as --max-size reads K/M/G) or, with `binary`, of 1024
    (`7.1 KiB`, as nodelogs reports file sizes)."""
    step, units = (1024, ("KiB", "MiB", "GiB")) if binary else (1000, ("kB", "MB", "GB"))
    if count < step:
        return f"{count} B"
    value = float(count)
    for unit in units:
        value /= step
        if value < step or unit == units[-1]:
            break
    return f"{value:.1f} {unit}"
