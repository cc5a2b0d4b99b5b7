"""The command line's shared part: the Typer app, kubectl's flags turned into a connection and the talk, and
the one workflow every command runs (target → the command's own checks → the cluster → its exit code)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from kubectl_debugx.errors import NotFound, UsageError
from kubectl_debugx.flags import Flags, SummaryFormat

if TYPE_CHECKING:
    from kubectl_debugx.kube.client import KubeApi
    from kubectl_debugx.kube.workloads import TargetRef
    from kubectl_debugx.talk import Talk


PROG = "kubectl debugx"
app = typer.Typer(
    name=PROG,
    help="Capture packets, strace processes and pull node log files of a pod, leaving nothing behind.\n\n"
         "kubectl's global flags (-n, --context, --kubeconfig, --as, --token, -s, -v=N, ...) go before or after "
         "COMMAND; see 'kubectl debugx COMMAND --help'.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # never render locals: they may hold kubeconfig tokens
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

def examples(*lines: str) -> str:
    """An Examples section for a command's --help, as kubectl's: `# what it does` then the command line, kept
    as written (click's \\b: not rewrapped)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" if line else "" for line in lines)


@dataclass
class Run:
    """What one run of main() knows across the command and the error handler (click's context object)."""

    debug: bool = False  # tracebacks of unexpected errors: -v (any level) or $KUBECTL_DEBUGX_DEBUG
    talk: Talk | None = None  # once set, an error still ends the JSON summary a runbook waits for
    dry_run_mode: str | None = None  # kubectl's --dry-run=MODE as given (cli/reflexes.py), None when not given


# What --dry-run=server means for each command (kubectl's reflex): what we already send the API server.
DRY_RUN_SERVER = {
    "": "--dry-run=server: as --dry-run; every debug container is also sent to the API server as a dry run "
        "(dryRun=All: Pod Security and admission answer), as every run does before creating anything",
    "gc": "--dry-run=server: as --dry-run (gc only lists and execs; it has nothing to send as a server dry run)",
}


def run_state(ctx: typer.Context) -> Run:
    return ctx.ensure_object(Run)


def connection(flags: Flags) -> Any:
    from kubectl_debugx.kube.config import DEFAULT_REQUEST_TIMEOUT, KubeFlags
    from kubectl_debugx.options import parse_duration

    timeout = flags.request_timeout
    # kubectl reads a bare number here as seconds (and only here); 0 is no timeout, as in kubectl
    if timeout is None:
        seconds: float | None = DEFAULT_REQUEST_TIMEOUT
    elif timeout in ("0", ""):
        seconds = None
    else:
        seconds = parse_duration(timeout, "--request-timeout", bare_seconds=True) or None
    return KubeFlags(kubeconfig=flags.kubeconfig, context=flags.context, namespace=flags.namespace,
                     request_timeout=seconds, verbosity=flags.verbosity, **vars(flags.auth()))


def kube_for(flags: Flags) -> KubeApi:
    from kubectl_debugx.kube.client import Kube

    return Kube(connection(flags))


def talk_for(run: Run, flags: Flags, command: str) -> Talk:
    from kubectl_debugx.talk import Talk

    run.debug = run.debug or flags.verbosity >= 1
    if flags.output_format is not None and flags.summary is SummaryFormat.json:
        raise UsageError(f"-o {flags.output_format.value} and --summary json both print the data object on stdout: "
                         "give one")
    run.talk = Talk(quiet=flags.quiet, json_summary=flags.summary is SummaryFormat.json or bool(flags.output_format),
                    command=command, data_format=flags.output_format.value if flags.output_format else "line")
    if run.dry_run_mode == "server":
        run.talk.say(DRY_RUN_SERVER.get(command, DRY_RUN_SERVER[""]))
    return run.talk


def check_data_and_summary(talk: Talk, path: str) -> None:
    if talk.json_summary and path == "-":
        raise UsageError("--summary json needs -o FILE: with -o - stdout carries the data")


def profile_flags(flags: Flags) -> dict[str, Any]:
    """--image, --profile and --custom, resolved the same way for every command that creates a container."""
    from kubectl_debugx.remote.profiles import load_custom
    from kubectl_debugx.remote.specs import DEFAULT_IMAGE

    return {
        "image": flags.image or os.environ.get("KUBECTL_DEBUGX_IMAGE") or DEFAULT_IMAGE,
        "profile": flags.profile,
        "custom": load_custom(flags.custom) if flags.custom else None,
    }


def debug_flags(flags: Flags) -> dict[str, Any]:
    """Every field of remote.session.DebugOptions, from the flags that set the debug container."""
    from kubectl_debugx.options import parse_duration

    return {"ttl": int(parse_duration(flags.ttl, "--ttl")), "force": flags.force, "dry_run": flags.dry_run,
            **profile_flags(flags)}


Work = Callable[["KubeApi", "Talk"], int]


def no_follow(follow: bool, pod: str) -> None:
    """--follow follows the pods of a workload: one pod has no successor to follow (a pod is never replaced by
    the same pod), so it is refused rather than silently ignored."""
    if follow:
        raise UsageError(f"--follow needs a workload or -l: {pod} is one pod, which nothing replaces; follow its "
                         "workload (deploy/NAME, sts/NAME, ...) or -l SELECTOR")


def workflow(ctx: typer.Context, flags: Flags, target: str | None, prepare: Callable[[Talk, TargetRef], Work]
             ) -> None:
    """The one body of every command: talk flags, the target (a bare POD is a target of one pod, as a workload
    or -l is of its pods), the command's own checks (which return the work), then the cluster and the work;
    its code ends the summary and is the exit code."""
    from kubectl_debugx.kube.workloads import parse_target

    talk = talk_for(run_state(ctx), flags, ctx.command.name or "")
    if not target and flags.selector is None:
        raise UsageError(f"missing argument 'TARGET': POD, TYPE/NAME or -l SELECTOR (see '{ctx.command_path} "
                         "--help')")
    ref = parse_target(target, flags.selector, flags.all_namespaces)
    if flags.max_pods < 1:
        raise UsageError(f"--max-pods: must be at least 1, got {flags.max_pods}")
    if ref.single_pod:
        talk.record(pod=ref.name)
    else:
        talk.record(target=ref.display)
    work = prepare(talk, ref)
    kube = kube_for(flags)
    talk.record(namespace=kube.namespace)
    try:
        code = int(work(kube, talk))
    except NotFound as e:
        raise _with_meant(e, kube, ref) from None
    finally:
        talk.said_left()  # on every way out, before the error line if there is one
    talk.emit_summary(code)
    raise typer.Exit(code)


def _with_meant(error: NotFound, kube: KubeApi, ref: TargetRef) -> NotFound:
    """A POD that does not exist may be a workload's or a service's name (`capture web` for deploy/web): the
    not-found line then says so. Only on this path, one get per kind; any other not-found stands as it is."""
    from kubectl_debugx.kube.workloads import did_you_mean, meant

    if not ref.single_pod or not str(error).startswith(f'pods "{ref.name}" not found'):
        return error
    return NotFound(did_you_mean(str(error), meant(kube, kube.namespace, ref.name)))


def first_pod(prepare: Callable[[Talk, str], Work]) -> Callable[[Talk, TargetRef], Work]:
    """cp and doctor work on one pod: a workload target means its first running pod (by name), as
    `kubectl exec deploy/web` takes one, and we say which."""

    def prepare_ref(talk: Talk, ref: TargetRef) -> Work:
        if ref.single_pod:
            return prepare(talk, ref.name)
        if ref.kind is None:
            raise UsageError(f"{talk.command} works on one pod: name it, or TYPE/NAME for one of a workload's pods")

        def work(kube: KubeApi, talk: Talk) -> int:
            from kubectl_debugx.remote.fanout import resolve_pods
            from kubectl_debugx.talk import plural

            # the one resolution of every command: the pods left out said, as for capture and trace; any
            # number of running pods is fine here (one is used), so --max-pods does not apply
            resolution = resolve_pods(kube, ref, max_pods=1 << 30, say=talk.say)
            pods = [p["metadata"]["name"] for p in resolution.pods]
            talk.say(f"Using pod {pods[0]} of {ref.display} ({plural(len(pods), 'running pod')})")
            talk.record(pod=pods[0])
            return prepare(talk, pods[0])(kube, talk)

        return work

    return prepare_ref


def pod_ref(name: str) -> TargetRef:
    from kubectl_debugx.kube.workloads import TargetRef

    return TargetRef("pod", name)


def check_output_file_flag(talk: Talk, path: str, flags: Flags, what: str) -> None:
    """Where -o names a file: refuse kubectl's -o json (a format, not a file), what would mix data and summary,
    or clobber or cannot be written."""
    from kubectl_debugx.options import check_not_format, check_output_file

    check_not_format(path, "file")
    talk.record(output=path)
    check_data_and_summary(talk, path)
    if not flags.dry_run:
        check_output_file(path, flags.force, sys.stdout.isatty(), what)
