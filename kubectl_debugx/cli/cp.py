"""`kubectl debugx cp`: its flags; one pod (a workload's first running pod)."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_debugx.cli.workflow import Work, app, check_data_and_summary, debug_flags, examples, first_pod, workflow
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import CONNECTION, CONTAINER, LIFETIME, TALK, Flags, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.talk import Talk


CpProfileOpt = Annotated[
    str, typer.Option("--profile", help="auto (default: the target's own uid, no capability; restricted admits "
                      "it), or legacy, general, baseline, netadmin, restricted, sysadmin (reads everything).")
]


@app.command(short_help='Copy a file or folder out of a container or into it, byte-exact.', epilog=examples(
    '# a folder out of a distroless container (no shell, no tar in it)',
    'kubectl debugx cp web:/etc/nginx ./nginx-conf',
    '# NAMESPACE/POD:PATH as kubectl cp takes it, into an existing folder',
    'kubectl debugx cp -c app shop/web:/var/dumps/heap.hprof .',
    "# a workload's first running pod; the tar stream on stdout",
    'kubectl debugx cp deployment.apps/web:/tmp/state - | tar -tvf -',
    '# into the container, as its own user: /tmp/conf is the folder (or /tmp/conf/conf if /tmp/conf exists)',
    'kubectl debugx cp ./conf web:/tmp/conf',
    '# a tar stream from stdin, extracted into an existing folder; --force replaces what is there',
    'tar -cf - -C ./build . | kubectl debugx cp --force - web:/tmp/app',
))
@shared_flags(*CONTAINER, *LIFETIME, *CONNECTION, *TALK, profile=(CpProfileOpt, "auto"))
def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="POD:/path as the container sees it (also "
                                          "NAMESPACE/POD:/path, TYPE/NAME:/path) to copy out of it; or a local "
                                          "file or folder, or - (a tar stream on stdin), to copy into it.")],
    local: Annotated[str, typer.Argument(metavar="DEST", help="Copying out: the file or directory to write, or - "
                                         "for a tar stream on stdout; an existing directory receives PATH's name. "
                                         "Copying in: POD:/path; an existing folder receives SOURCE's name.")],
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    *,
    flags: Flags,
) -> None:
    """Copy a file or a directory (recursively) out of a container or into it, as it sees its filesystem,
    byte-exact.

    Works through /proc/PID/root of the container's main process from an ephemeral container running as the
    container's own user: no shell or tar needed in the image; every file's sha256 is checked. Into a container
    (`cp LOCAL POD:/path`, `cp - POD:/path`): written as the container's user, each item under a temporary name
    in the destination folder and renamed into place once checked; symlinks are created as links, never written
    through; what exists is replaced only with --force.
    """
    from kubectl_debugx.commands import cp as cpm

    upload = cpm.procroot.is_upload(source, local)
    src = cpm.procroot.parse_source(local if upload else source)
    if src.namespace is not None:  # NAMESPACE/POD:PATH, as kubectl cp takes it
        if flags.namespace not in (None, src.namespace):
            raise UsageError(f"{local if upload else source} names namespace {src.namespace}, and -n "
                             f"{flags.namespace} another")
        flags = dataclasses.replace(flags, namespace=src.namespace)

    def prepare(talk: Talk, name: str) -> Work:
        if upload:
            return _prepare_upload(talk, name, src.path, source, container, flags)
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


def _prepare_upload(talk: Talk, name: str, path: str, local: str, container: str | None, flags: Flags) -> Work:
    from kubectl_debugx.commands.cp import upload

    opts = upload.UploadOptions(pod=name, path=path, local=local, container=container, **debug_flags(flags))
    upload.validate(opts)
    upload.local_kind(local)  # LOCAL exists: checked before anything is created in the cluster
    if local == "-" and sys.stdin.isatty() and not flags.dry_run:
        raise UsageError("SOURCE - reads a tar stream from stdin: redirect stdin from a file or a pipe")
    return lambda kube, talk: upload.run(kube, opts, talk)
