"""The command line: kubectl's flags once, one thin module per command (cli/capture.py …), one place mapping
errors to exit codes (cli/main.py). Work is done by the command modules, imported only when their command
runs (fast --help)."""

from kubectl_debugx.cli.main import main
from kubectl_debugx.cli.workflow import PROG, app

__all__ = ["PROG", "app", "main"]
