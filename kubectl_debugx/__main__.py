"""Entry point of the zipapp and of `python -m kubectl_debugx`."""

from __future__ import annotations

import sys

MIN_PYTHON = (3, 10)


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        found = sys.version.split()[0]
        sys.stderr.write(f"error: kubectl-debugx needs Python 3.10 or newer; this is {found} ({sys.executable})\n")
        return 1
    argv = sys.argv[1:]
    if argv[:1] == ["__complete"] or argv[:1] == ["__completeNoDesc"]:
        # Shell completion (cobra protocol, see completion.py): subcommands and flags load no Kubernetes client.
        from kubectl_debugx.shell.completion import complete

        return complete(argv[1:], descriptions=argv[0] == "__complete")
    from kubectl_debugx.shell.clispec import cached_help

    code = cached_help(argv)  # in the zipapp, --help is served without importing Typer
    if code is not None:
        return code
    from kubectl_debugx.cli import main as cli_main

    code = cli_main(argv)
    # The run is over: a Ctrl-C now (bench/reliability saw one) must not turn its exit code into death by
    # SIGINT while Python shuts down.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
