"""`kubectl debugx gc`: its flags."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_debugx.cli.workflow import app, examples, kube_for, run_state, talk_for
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import CONNECTION, TALK, Flags, shared_flags


@app.command(short_help='Stop and delete what earlier runs left behind.', epilog=examples(
    '# list what debugx left in namespace shop; change nothing',
    'kubectl debugx gc -n shop --dry-run',
    '# every namespace: stop our tools, delete our node pods and Jobs',
    'kubectl debugx gc -A',
    '# also end our idle debug containers now; what was found as YAML',
    'kubectl debugx gc -n shop --stop-idle -o yaml',
))
@shared_flags("dry_run", *CONNECTION, *TALK, "output_format", dry_run=(
    Annotated[bool, typer.Option("--dry-run", help="List what would be stopped or deleted; change "
                                        "nothing. Also kubectl's --dry-run=client|server (the same), =none.")], False))
def gc(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="Look in every namespace.")
    ] = False,
    stop_idle: Annotated[
        bool, typer.Option("--stop-idle", help="Also end our idle debug containers now (their bounded sleep): "
                           "they show Terminated instead of idling until their TTL.")
    ] = False,
    *,
    flags: Flags,
) -> None:
    """Find what earlier runs left: stop our tools still running, delete our node pods, and list our debug
    containers with the TTL they have left (ephemeral containers cannot be removed; --stop-idle ends them now).
    Touches nothing else."""
    from kubectl_debugx.commands import gc as gc_command

    talk = talk_for(run_state(ctx), flags, "gc")
    if all_namespaces and flags.namespace:
        raise UsageError("-A and -n exclude each other")
    kube = kube_for(flags)
    talk.record(namespace=None if all_namespaces else kube.namespace)
    code = gc_command.run(kube, gc_command.GcOptions(all_namespaces, flags.dry_run, stop_idle), talk)
    talk.emit_summary(code)
    raise typer.Exit(code)
