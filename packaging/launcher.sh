#!/bin/sh
# kubectl-debugx: a Python (>= 3.10) zipapp follows this launcher; Python skips it, sh never reads past exec.
# It runs the zipapp with $KUBECTL_DEBUGX_PYTHON, else with the interpreter found last time (remembered in the
# shiv cache, so a version manager's shim is not paid on every start), else with the first of python3,
# python3.20 ... python3.10 on PATH that runs and is >= 3.10: a candidate that does not run (a pyenv shim of a
# version pyenv does not enable prints its error and exits 127) or is older is skipped.
# Forget the remembered one: rm "${SHIV_ROOT:-$HOME/.shiv}/.kubectl-debugx-python"
# -S: the zipapp brings every package it needs; the interpreter's own site-packages and their .pth hooks stay out.
# Ctrl-C during the start: one `error: interrupted` line and exit 130, as any interrupted run, never Python's
# KeyboardInterrupt traceback (bench/reliability saw one while Python read the zip's __main__.py, ~80 ms): the
# trap covers this script, and Python runs $s first, which sets the same handler before the zip is read
# (cli.main puts Python's own back). $s then runs the zipapp as `python -S ZIPAPP ARGS` would, minus the ''
# (current directory) that -c puts first on sys.path.
trap 'echo "error: interrupted" >&2; exit 130' INT
s='try:
    import _signal as signals  # built in, as posix: `import signal` or `os` would take ~20 ms (enum, abc)
except ImportError:
    import signal as signals
import posix, sys
def _interrupted(signum, frame):
    posix.write(2, b"error: interrupted\n")
    posix._exit(130)
signals.signal(signals.SIGINT, _interrupted)
del sys.argv[0]
if sys.path and sys.path[0] == "":
    del sys.path[0]
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")'
if [ -n "$KUBECTL_DEBUGX_PYTHON" ]; then exec "$KUBECTL_DEBUGX_PYTHON" -S -c "$s" "$0" "$@"; fi
r="${SHIV_ROOT:-$HOME/.shiv}/.kubectl-debugx-python"
if [ -r "$r" ] && read -r p < "$r" && [ -x "$p" ]; then exec "$p" -S -c "$s" "$0" "$@"; fi
for p in python3 python3.20 python3.19 python3.18 python3.17 python3.16 python3.15 python3.14 python3.13 \
  python3.12 python3.11 python3.10; do
  if command -v "$p" >/dev/null 2>&1 &&
    "$p" -S -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
    KUBECTL_DEBUGX_REMEMBER="$r" exec "$p" -S -c "$s" "$0" "$@"
  fi
done
echo "error: kubectl-debugx needs Python >= 3.10: no python3 or python3.1X on PATH runs as one; install one or set KUBECTL_DEBUGX_PYTHON=/path/to/python3.X" >&2
exit 127
