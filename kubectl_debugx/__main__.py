"""Entry point of the zipapp and of `python -m kubectl_debugx`."""

from __future__ import annotations

import sys

MIN_PYTHON = (3, 10)


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        found = sys.version.split()[0]
        sys.stderr.write(f"error: kubectl-debugx needs Python 3.10 or newer; this is {found} ({sys.executable})\n")
        return 1
    from .cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
