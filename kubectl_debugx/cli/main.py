"""The program's entry: version and completion, kubectl's -v spellings, and the ONE place where errors become
one stderr line and an exit code."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import traceback
from typing import Annotated, Any

import typer

from kubectl_debugx import __version__
from kubectl_debugx.cli.workflow import PROG, Run, app, examples, kube_for, run_state
from kubectl_debugx.errors import DebugxError, ExitCode, UsageError
from kubectl_debugx.flags import CONNECTION, Flags, shared_flags

# The commands, in the order --help lists them: each module adds its command to the app when imported.
# isort: off
from kubectl_debugx.cli import capture, trace, cp  # noqa: F401
from kubectl_debugx.cli import shell as shell_command  # noqa: F401 - `shell` is completion's argument
from kubectl_debugx.cli import nodelogs, doctor, gc  # noqa: F401
# isort: on


@app.command(short_help="Print the client and server versions.", epilog=examples(
    "# the client's and the server's version",
    "kubectl debugx version",
    "# the client's only (no API call), as kubectl version --client -o json",
    "kubectl debugx version --client -o json",
))
@shared_flags(*CONNECTION, "quiet", "verbosity", "output_format")
def version(
    ctx: typer.Context,
    client: Annotated[bool, typer.Option("--client", help="The client version only: no API call (works without "
                                         "a cluster).")] = False,
    *,
    flags: Flags,
) -> None:
    """Print the client version, and the server version when the cluster is reachable.

    With -o json or yaml, kubectl's shape: {"clientVersion": {...}, "serverVersion": {...}} (the server's own
    /version object; left out when it cannot be reached, or with --client).
    """
    from kubectl_debugx.talk import render

    run_state(ctx).debug = run_state(ctx).debug or flags.verbosity >= 1
    server: dict[str, Any] | None = None
    problem = ""
    if not client:
        try:
            server = kube_for(flags).version()
        except DebugxError as e:
            problem = f"Server Version: unavailable ({e})"
    if flags.output_format is not None:
        sys.stdout.write(render(version_object(server), flags.output_format.value))
    else:
        print(f"Client Version: v{__version__}")
        if server is not None:
            print(f"Server Version: {server.get('gitVersion', 'unknown')}")
    if problem:
        print(problem, file=sys.stderr)


def version_object(server: dict[str, Any] | None) -> dict[str, Any]:
    """kubectl version -o json's shape: our version as a clientVersion, the server's /version as it answered."""
    import platform

    major, minor = (__version__.split(".") + ["0"])[:2]
    data: dict[str, Any] = {"clientVersion": {
        "major": major, "minor": minor, "gitVersion": f"v{__version__}",
        "platform": f"{sys.platform}/{platform.machine().lower()}",
        "pythonVersion": platform.python_version(),
    }}
    if server is not None:
        data["serverVersion"] = server
    return data


@app.command("help", short_help="Help about any command.", epilog=examples(
    "# the same as kubectl debugx capture --help",
    "kubectl debugx help capture",
))
def help_(
    ctx: typer.Context,
    command: Annotated[str | None, typer.Argument(metavar="COMMAND", help="The command to describe.")] = None,
) -> None:
    """Help about any command: help CMD is CMD --help."""
    parent = ctx.parent
    assert parent is not None  # a command of the app always has the app's context above it
    if command is None:
        print(parent.get_help())
        return
    sub = getattr(parent.command, "commands", {}).get(command)
    if sub is None:
        raise UsageError(f"unknown command {command!r} for {PROG} (see '{PROG} --help')")
    sub.make_context(command, ["--help"], parent=parent)  # prints the help, then ends the run with exit 0


@app.command(short_help="Print a shell completion script.", epilog=examples(
    "# kubectl-debugx <TAB> in this bash",
    "source <(kubectl-debugx completion bash)",
    "# kubectl debugx <TAB> (kubectl 1.26 or newer)",
    "kubectl debugx completion kubectl > ~/.krew/bin/kubectl_complete-debugx",
))
def completion(
    shell: Annotated[
        str, typer.Argument(metavar="SHELL", help="bash, zsh, fish, or kubectl (the kubectl_complete-debugx script).")
    ],
) -> None:
    """Print a shell completion script.

    For `kubectl debugx <TAB>` (kubectl 1.26 or newer), put the kubectl script on PATH next to the plugin:

    \b
      kubectl debugx completion kubectl > "$(dirname "$(command -v kubectl-debugx)")/kubectl_complete-debugx"
      chmod +x "$(dirname "$(command -v kubectl-debugx)")/kubectl_complete-debugx"

    For `kubectl-debugx <TAB>`: source <(kubectl-debugx completion bash), or zsh (after compinit), or
    kubectl-debugx completion fish | source.
    """
    from kubectl_debugx.completion_scripts import script

    sys.stdout.write(script(shell))


def _error_summary(run: Run, message: str, code: int) -> None:
    if run.talk is not None and run.talk.json_summary:
        run.talk.record(error=message)
        run.talk.emit_summary(code)


def kubectl_verbosity(argv: list[str]) -> list[str]:
    """kubectl's log level in every spelling kubectl users type -- `-v=6`, `--v=6`, `-v 6`, `--v 6` -- and ours,
    `-v` and `--debug` alone (level 1), as the one form click parses: `--v=N`. Words after `--` are left alone."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        name, eq, value = word.partition("=")
        if word == "--":
            out += argv[i - 1:]
            break
        if name in ("-v", "--v"):
            if eq:
                level = value
            elif i < len(argv) and argv[i].isdigit():
                level, i = argv[i], i + 1
            else:
                level = "1"
            if not level.isdigit():
                raise UsageError(f"{name}: the log level is a number (as kubectl's -v=6), got {level!r}")
            out.append(f"--v={int(level)}")
        elif word == "--debug":
            out.append("--v=1")
        else:
            out.append(word)
    return out


# kubectl's global flags and ours that may come before the command name, as kubectl takes them anywhere on the line
# (`kubectl debugx -n shop capture web`, `-v=6 version`); each command takes them all (flags.CONNECTION, TALK).
GLOBAL_FLAGS = ("namespace", "context", "kubeconfig", "request_timeout", "as_", "as_group", "as_uid", "token",
                "server", "user", "cluster", "insecure_skip_tls_verify", "certificate_authority",
                "client_certificate", "client_key", "tls_server_name", "quiet", "verbosity")
_SHORT_WITH_EQUALS = re.compile(r"-[A-Za-z]=.*", re.DOTALL)


def _options(command: Any) -> dict[str, bool]:
    """Every option spelling of a click command, and whether it takes a value."""
    out: dict[str, bool] = {}
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") == "option":
            for spelling in (*param.opts, *param.secondary_opts):
                out[spelling] = not (param.is_flag or param.count)
    return out


def kubectl_argv(argv: list[str], group: Any) -> list[str]:
    """The command line as kubectl's flag parser (pflag) reads it, in the one form click parses:

    - global flags before the command name move just after it (`-n shop capture web` → `capture -n shop web`);
      anything else before it is left for click to refuse;
    - `-X=VALUE` for a one-letter option that takes a value is `-X VALUE` (click would read `=VALUE`: `-n=shop`
      looked up namespace "=shop"). Words after `--` are left alone."""
    commands = getattr(group, "commands", {})
    movable: dict[str, bool] = {}
    long_of: dict[str, str] = {}  # a global flag's short spelling -> its long one
    for command in commands.values():
        for param in getattr(command, "params", ()):
            if getattr(param, "name", None) in GLOBAL_FLAGS:
                movable.update(_options(_Single(param)))
                longs = [o for o in param.opts if o.startswith("--")]
                long_of.update({o: longs[0] for o in param.opts if longs and not o.startswith("--")})
    moved: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        word = argv[i]
        name = word.partition("=")[0]
        attached = not word.startswith("--") and len(name) > 2  # -nshop
        name = name[:2] if attached else name
        if name not in movable:
            break
        takes = movable[name] and "=" not in word and not attached
        # moved in its long form: after the command a short one may be the command's own (trace's -s)
        spelled = long_of.get(name, name) + (word[len(name):] if not attached else "=" + word[2:])
        moved += [spelled, *argv[i + 1:i + 2]] if takes else [spelled]
        i += 2 if takes else 1
    if moved and i < len(argv) and argv[i] in commands:
        argv = [argv[i], *moved, *argv[i + 1:]]
    if not argv or argv[0] not in commands:
        return argv
    takes_value = _options(commands[argv[0]])
    out = argv[:1]
    is_value = False  # the word is the value of the option before it (`-f -n=x`: a filter, left alone)
    for j, word in enumerate(argv[1:], 1):
        if word == "--" and not is_value:
            return out + argv[j:]
        if not is_value and _SHORT_WITH_EQUALS.fullmatch(word) and takes_value.get(word[:2]):
            out += [word[:2], word[3:]]
            is_value = False
            continue
        out.append(word)
        is_value = not is_value and takes_value.get(word, False)
    return out


def kubectl_reflexes(argv: list[str], group: Any) -> tuple[list[str], str | None]:
    """kubectl habits read as kubectl means them, or refused with what to type (cli/reflexes.py): `-it`,
    `--stdin`, `--tty`; `--dry-run=MODE` (returned, for the command to say what `server` means here)."""
    from kubectl_debugx.cli import reflexes

    commands = getattr(group, "commands", {})
    if not argv or argv[0] not in commands:
        return argv, None
    takes_value = _options(commands[argv[0]])
    words = argv[1:]
    if argv[0] in reflexes.SELF_INTERACTIVE:
        words = reflexes.drop_interactive(words, takes_value)
    reflexes.refuse_interactive(argv[0], words, takes_value)
    words, mode = reflexes.dry_run(words, takes_value)
    return [argv[0], *words], mode


class _Single:
    """One click parameter seen as a command of its own (for _options)."""

    def __init__(self, param: Any) -> None:
        self.params = [param]


def route_logging(verbosity: int) -> None:
    """The kubernetes client and urllib3 log through the logging module (the client's `ERROR:root:exec: ...`
    on a failing credential plugin, urllib3's pool warnings): a line of theirs appears only with -v=1 or more,
    as `I logger: message`, at WARNING and above (never their DEBUG lines, which hold response bodies).
    A handler on the root logger also keeps logging's own last resort and basicConfig from printing them."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_debugx", False):
            root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbosity >= 1 else logging.NullHandler()
    handler.setFormatter(logging.Formatter("I %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler._debugx = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def _usage_line(e: Any) -> str:
    """click's usage errors as our one line: lowercase, no final period, the command's --help named."""
    lines = [line.strip() for line in e.format_message().splitlines() if line.strip()]
    message = "; ".join(lines).rstrip(".") or "invalid command line"
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    ctx = getattr(e, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
    return f"error: {message}{where}"


def main(argv: list[str]) -> int:
    """Run the CLI; every error becomes one line on stderr and its exit code."""
    # typer 0.28 vendors click (typer._click) and has its own Exit/Abort; the `click` package is not installed.
    from typer._click.exceptions import ClickException

    run = Run(debug=bool(os.environ.get("KUBECTL_DEBUGX_DEBUG")))
    try:
        # From here a Ctrl-C is a KeyboardInterrupt again (the zipapp's start exits 130 at once), so that the
        # commands' cleanups run.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        route_logging(0)
        command = typer.main.get_command(app)
        argv = kubectl_argv(kubectl_verbosity(argv), command)
        argv, run.dry_run_mode = kubectl_reflexes(argv, command)
        run.debug = run.debug or any(w.startswith("--v=") and w != "--v=0" for w in argv)
        route_logging(1 if run.debug else 0)
        # Without standalone mode click returns the code of typer.Exit instead of raising it.
        result = command.main(args=argv, prog_name=PROG, standalone_mode=False, obj=run)
        if isinstance(result, int):
            return result
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return ExitCode.INTERRUPTED
    except ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # `kubectl debugx` alone: the help
        else:
            print(_usage_line(e), file=sys.stderr)
        return ExitCode.USAGE
    except DebugxError as e:
        if run.debug and e.code == ExitCode.ERROR:  # an expected error's line says it all, even with -v=6
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        _error_summary(run, str(e), int(e.code))
        return int(e.code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last resort: one line unless -v
        if run.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(e).__name__}: {e} (run with -v for details)", file=sys.stderr)
        _error_summary(run, f"unexpected {type(e).__name__}: {e}", ExitCode.ERROR)
        return ExitCode.ERROR
    return ExitCode.OK
