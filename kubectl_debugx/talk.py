"""stdout is data, stderr is talk: the one place that writes either."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Talk:
    quiet: bool = False
    json_summary: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def say(self, message: str) -> None:
        """Progress and notes: stderr, silenced by -q."""
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """Warnings: stderr, even with -q."""
        print(f"Warning: {message}", file=sys.stderr, flush=True)

    def out(self, text: str) -> None:
        """Data for stdout."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def record(self, **fields: Any) -> None:
        """Facts for the `--output json` summary."""
        self.summary.update(fields)

    def emit_summary(self, exit_code: int) -> None:
        if self.json_summary:
            self.summary["exitCode"] = exit_code
            self.out(json.dumps(self.summary, sort_keys=True) + "\n")
