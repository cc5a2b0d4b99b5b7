#!/bin/sh
# kubectl-debugx: a Python (>= 3.10) zipapp follows this launcher; Python skips it, sh never reads past exec.
# It runs the zipapp with $KUBECTL_DEBUGX_PYTHON, else with the interpreter that `python3` resolved to last time
# (remembered in the shiv cache, so a version manager's shim is not paid on every start), else with python3.
# Forget the remembered one: rm "${SHIV_ROOT:-$HOME/.shiv}/.kubectl-debugx-python"
# -S: the zipapp brings every package it needs; the interpreter's own site-packages and their .pth hooks stay out.
if [ -n "$KUBECTL_DEBUGX_PYTHON" ]; then exec "$KUBECTL_DEBUGX_PYTHON" -S "$0" "$@"; fi
r="${SHIV_ROOT:-$HOME/.shiv}/.kubectl-debugx-python"
if [ -r "$r" ] && read -r p < "$r" && [ -x "$p" ]; then exec "$p" -S "$0" "$@"; fi
KUBECTL_DEBUGX_REMEMBER="$r" exec python3 -S "$0" "$@"
