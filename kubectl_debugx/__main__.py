"""Entry point of the zipapp and of `python -m kubectl_debugx`."""

from __future__ import annotations

import sys

MIN_PYTHON = (3, 10)


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        sys.stderr.write(
            "error: kubectl-debugx needs Python %d.%d or newer; this is %s (%s)\n"
            % (MIN_PYTHON + (sys.version.split()[0], sys.executable))
        )
        return 1
    from .cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
