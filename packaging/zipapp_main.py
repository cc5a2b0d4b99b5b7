# -*- coding: utf-8 -*-
# ruff: noqa: UP009, UP031, UP036  (this file must parse on Python 2.7 to print its message)
# The zipapp's __main__.py, in place of shiv's `import _bootstrap; _bootstrap.bootstrap()`.
# 1. Check the interpreter BEFORE shiv's bootstrap unpacks ~20 MB or fails on syntax it cannot parse (this part
#    must run on any Python, 2.7 included); too old: re-run with the newest python3.X >= 3.10 on PATH that runs,
#    or say so in one line.
# 2. Remember the interpreter for packaging/launcher.sh when it asks (KUBECTL_DEBUGX_REMEMBER).
# 3. Warm start: when this build is already unpacked (and no SHIV_* variable asks for anything special), set up
#    sys.path exactly as shiv's bootstrap does, without reading the zip's index with zipfile and importing the
#    bootstrap's modules (~40 ms of every start). Otherwise run shiv's bootstrap.
import signal
import sys


def _interrupted_at_start(signum, frame):
    """Ctrl-C before the CLI runs (bench/reliability saw a KeyboardInterrupt traceback and exit -2 here): nothing
    was created yet, so end as an interrupted run does; cli.main puts Python's handler back. First of all."""
    import os

    os.write(2, b"error: interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_at_start)

if sys.version_info < (3, 10):
    import os

    # macOS's /usr/bin/python3 is 3.9: run ourselves with the newest python3.X >= 3.10 on PATH that runs (a pyenv
    # shim of a version pyenv does not enable is executable but prints pyenv's error and exits 127: skip it).
    if not os.environ.get("KUBECTL_DEBUGX_REEXEC"):
        import subprocess

        os.environ["KUBECTL_DEBUGX_REEXEC"] = "1"
        _check = "import sys; sys.exit(sys.version_info < (3, 10))"
        for _minor in range(20, 9, -1):
            for _dir in os.environ.get("PATH", "").split(os.pathsep):
                _python = os.path.join(_dir or ".", "python3.%d" % _minor)
                if not (os.path.isfile(_python) and os.access(_python, os.X_OK)):
                    continue
                with open(os.devnull, "w") as _null:
                    try:
                        _works = subprocess.call([_python, "-S", "-c", _check], stdout=_null, stderr=_null) == 0
                    except OSError:
                        _works = False
                if _works:
                    os.execv(_python, [_python, "-S", sys.argv[0]] + sys.argv[1:])
    sys.stderr.write(
        "error: kubectl-debugx needs Python >= 3.10, but %s is Python %s and no python3.1X on PATH runs as one; "
        "install one or set KUBECTL_DEBUGX_PYTHON=/path/to/python3.X\n"
        % (sys.executable or "python3", sys.version.split()[0])
    )
    sys.exit(1)


def _remember_interpreter():
    """packaging/launcher.sh ran us with an interpreter it found on PATH and asks us to write down which one."""
    import os

    path = os.environ.pop("KUBECTL_DEBUGX_REMEMBER", None)
    if not path or not sys.executable or not os.access(sys.executable, os.X_OK):
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            f.write(sys.executable + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


_remember_interpreter()


BUILD_ID = "@BUILD_ID@"  # filled in by packaging/dist.py from the zip's environment.json


def _warm_site_packages():
    import os

    if any(key.startswith("SHIV_") and key != "SHIV_ROOT" for key in os.environ):
        return None
    root = os.environ.get("SHIV_ROOT") or "~/.shiv"
    if root.startswith("$"):
        return None
    name = os.path.basename(os.path.realpath(sys.argv[0]))
    site_packages = os.path.join(os.path.expanduser(root), "%s_%s" % (name, BUILD_ID), "site-packages")
    if not os.path.isdir(site_packages):
        return None
    import site

    # shiv's bootstrap: add it the way .pth files are honoured, then move it before the other site dirs.
    length = len(sys.path)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in sys.path]
    index = next((i for i, stem in enumerate(stems) if stem in ("site-packages", "dist-packages")), None) or length
    site.addsitedir(site_packages)
    sys.path = sys.path[:index] + sys.path[length:] + sys.path[index:length]
    return site_packages


_site_packages = _warm_site_packages()
if _site_packages is None:
    import _bootstrap  # shiv's bootstrap, inside the zipapp: extracts, then runs the preamble and entry point

    _bootstrap.bootstrap()
else:
    from kubectl_debugx.shell._shiv import after_bootstrap

    after_bootstrap(_site_packages)
    from kubectl_debugx.__main__ import main

    sys.exit(main())
