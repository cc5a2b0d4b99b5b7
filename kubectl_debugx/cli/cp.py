"""`kubectl debugx cp`: its flags; one pod (a workload's first running pod)."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_debugx.cli.workflow import Work, app, check_data_and_summary, debug_flags, first_pod, workflow
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import CONNECTION, CONTAINER, LIFETIME, TALK, Flags, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.talk import Talk


CpProfileOpt = Annotated[
    str, typer.Option("--profile", help="auto (default: the target's own uid, no capability; restricted admits "
                      "it), or legacy, general, baseline, netadmin, restricted, sysadmin (reads everything).")
]


@app.command()
@shared_flags(*CONTAINER, *LIFETIME, *CONNECTION, *TALK, profile=(CpProfileOpt, "auto"))
def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="POD:PATH", help="POD:/path as the container sees it (also "
                                          "NAMESPACE/POD:/path, TYPE/NAME:/path).")],
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="File or directory to write, or - for a tar "
                                         "stream on stdout; an existing directory receives PATH's name.")],
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    *,
    flags: Flags,
) -> None:
    """Copy a file or a directory (recursively) out of a container, as it sees its filesystem, byte-exact.

    Reads through /proc/PID/root of the container's main process from an ephemeral container running as the
    container's own user: works without shell or tar in the image; every file's sha256 is checked.
    """
    from kubectl_debugx.commands import cp as cpm

    src = cpm.procroot.parse_source(source, local)
    if src.namespace is not None:  # NAMESPACE/POD:PATH, as kubectl cp takes it
        if flags.namespace not in (None, src.namespace):
            raise UsageError(f"{source} names namespace {src.namespace}, and -n {flags.namespace} another")
        flags = dataclasses.replace(flags, namespace=src.namespace)

    def prepare(talk: Talk, name: str) -> Work:
        opts = cpm.CpOptions(pod=name, path=src.path, local=local, container=container, **debug_flags(flags))
        cpm.validate(opts)
        if not flags.dry_run:
            cpm.check_local(opts)  # before anything is created in the cluster
        talk.record(output=local)
        check_data_and_summary(talk, local)
        if local == "-" and sys.stdout.isatty() and not flags.dry_run:
            raise UsageError("LOCAL - writes a tar stream: redirect stdout to a file or a pipe")
        return lambda kube, talk: cpm.run(kube, opts, talk)

    workflow(ctx, flags, src.target, first_pod(prepare))
