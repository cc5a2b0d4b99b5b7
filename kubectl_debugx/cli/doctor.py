"""`kubectl debugx doctor`: its flags; one pod (a workload's first running pod)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_debugx.cli.workflow import Work, app, examples, first_pod, profile_flags, workflow
from kubectl_debugx.flags import CONNECTION, CONTAINER, TALK, Flags, PodArg, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.talk import Talk


@app.command(short_help='Check what the commands need on a pod; create nothing.', epilog=examples(
    '# would capture, trace, nodelogs, cp and shell work on pod web?',
    'kubectl debugx doctor web -n shop',
    '# capture only, the checks as JSON (the table on stderr)',
    'kubectl debugx doctor web -n shop --for capture -o json',
))
@shared_flags(*CONTAINER, *CONNECTION, *TALK, "output_format")
def doctor(
    ctx: typer.Context,
    pod: PodArg,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    for_: Annotated[
        list[str] | None, typer.Option("--for", metavar="COMMAND", help="capture, trace, nodelogs, cp or shell "
                                       "(repeat or separate with commas; default: all four).")
    ] = None,
    pod_namespace: Annotated[
        str | None, typer.Option("--pod-namespace", help="Namespace of nodelogs' node pod (default: the pod's).")
    ] = None,
    *,
    flags: Flags,
) -> None:
    """Check, creating nothing, whether capture, trace, nodelogs, cp and shell would work on the pod, and why not.

    Every permission they need (one batch of access reviews; the missing ones as a Role), the namespace's Pod
    Security level and a server-side dry run of the debug container each would add, the node's runtime and
    images, the target's user. Exit 0 when every command checked would work, else the code of the first refusal.
    """

    def prepare(talk: Talk, name: str) -> Work:
        from kubectl_debugx.commands import doctor as dr

        opts = dr.DoctorOptions(pod=name, container=container, commands=dr.parse_for(for_),
                                pod_namespace=pod_namespace, **profile_flags(flags))
        dr.validate(opts)
        return lambda kube, talk: dr.run(kube, opts, talk)

    workflow(ctx, flags, pod, first_pod(prepare))
