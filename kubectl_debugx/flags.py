"""The shared flags, declared once: kubectl's connection flags, our talk flags and the debug container's
flags. Each command picks the ones it takes with @shared_flags and receives them as one Flags object."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_debugx.kube.config import Auth

PodArg = Annotated[str, typer.Argument(metavar="POD", help="POD or pod/POD")]
# A command that works on workloads too (kube/workloads.py): optional, since -l can name the pods instead.
TargetArg = Annotated[
    str | None, typer.Argument(metavar="TARGET", show_default=False,
                               help="POD, pod/NAME, or TYPE/NAME: deploy/, sts/, ds/, rs/, job/, svc/")
]
# kubectl's connection flags, our talk flags and the debug container's flags: declared once, each command
# picks the ones it takes with @shared_flags.
NamespaceOpt = Annotated[str | None, typer.Option("-n", "--namespace", help="Namespace of the pod.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG).")
]
TimeoutOpt = Annotated[
    str | None, typer.Option("--request-timeout", help="How long an API request may go unanswered, each access "
                             "review and their batch too (default 30s; a bare number is seconds, as in kubectl; "
                             "0 = none); then exit 7.")
]
# kubectl's authentication and cluster flags, with kubectl's meanings: each overrides what the kubeconfig's
# context gives (kube/config.py).
AsOpt = Annotated[str | None, typer.Option("--as", metavar="USER", help="Username to impersonate (a user or "
                                           "system:serviceaccount:NS:NAME).")]
AsGroupOpt = Annotated[list[str] | None, typer.Option("--as-group", metavar="GROUP", help="Group to impersonate "
                                                      "(repeat for several; needs --as).")]
AsUidOpt = Annotated[str | None, typer.Option("--as-uid", metavar="UID", help="UID to impersonate (needs --as).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Bearer token for authentication to the API "
                                              "server (instead of the kubeconfig user's credentials).")]
ServerOpt = Annotated[str | None, typer.Option("-s", "--server", metavar="URL", help="The address and port of the "
                                               "API server.")]
# trace: -s is strace's string size (documented first, as strace spells it); --server there has no short form
ServerLongOpt = Annotated[str | None, typer.Option("--server", metavar="URL", help="The address and port of the "
                                                   "API server.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="The name of the kubeconfig user to use.")]
ClusterOpt = Annotated[str | None, typer.Option("--cluster", help="The name of the kubeconfig cluster to use.")]
InsecureOpt = Annotated[bool, typer.Option("--insecure-skip-tls-verify", help="Do not check the server's "
                                           "certificate (insecure).")]
CaOpt = Annotated[str | None, typer.Option("--certificate-authority", metavar="FILE", help="Path to a cert file "
                                           "for the certificate authority.")]
ClientCertOpt = Annotated[str | None, typer.Option("--client-certificate", metavar="FILE", help="Path to a client "
                                                   "certificate file for TLS.")]
ClientKeyOpt = Annotated[str | None, typer.Option("--client-key", metavar="FILE", help="Path to a client key file "
                                                  "for TLS.")]
TlsServerNameOpt = Annotated[str | None, typer.Option("--tls-server-name", metavar="NAME", help="Server name to "
                                                      "check the server's certificate against (and send as SNI).")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors and warnings on stderr.")]
VerbosityOpt = Annotated[
    int, typer.Option("-v", "--v", metavar="N", help="Log level, as kubectl's -v=N: 1 or more shows tracebacks of "
                      "unexpected errors and the API requests (-v or --debug alone: 1).")
]
class SummaryFormat(str, Enum):
    text = "text"
    json = "json"


SummaryOpt = Annotated[
    SummaryFormat, typer.Option("--summary", help="text (on stderr), or json: also one JSON object on stdout "
                                "after the data.")
]
class OutputFormat(str, Enum):
    json = "json"
    yaml = "yaml"


# doctor, gc and version: kubectl's -o json|yaml, the command's data object on stdout (the table on stderr)
OutputFormatOpt = Annotated[
    OutputFormat | None, typer.Option("-o", "--output", show_default=False,
                                      help="json or yaml: the data object on stdout, as kubectl's -o (indented "
                                      "JSON; YAML); the table goes to stderr.")
]
ImageOpt = Annotated[
    str | None, typer.Option("--image", help="Debug image (default: $KUBECTL_DEBUGX_IMAGE or built-in).")
]
ProfileOpt = Annotated[
    str, typer.Option("--profile", help="auto, legacy, general, baseline, netadmin, restricted or sysadmin.")
]
CustomOpt = Annotated[
    Path | None, typer.Option("--custom", help="JSON or YAML partial container merged over the profile: a file, or "
                                            "inline ('{\"securityContext\": ...}').")
]
DurationOpt = Annotated[
    str | None, typer.Option("--duration", help="Stop after this long: 30s, 5m, 1h30m (the unit is needed).")
]
TtlOpt = Annotated[str, typer.Option("--ttl", help="Lifetime of the debug container (its bounded sleep), e.g. "
                                     "30m, 2h.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Overwrite what is there: the output file or folder; for cp into a container, the files at PATH.")]
SelectorOpt = Annotated[
    str | None, typer.Option("-l", "--selector", help="Label selector (e.g. app=web) instead of a TARGET.")
]
AllNamespacesOpt = Annotated[
    bool, typer.Option("-A", "--all-namespaces", help="With -l: the matching pods of every namespace.")
]
MaxPodsOpt = Annotated[
    int, typer.Option("--max-pods", help="Refuse a target that resolves to more running pods than this.")
]
FollowOpt = Annotated[
    bool, typer.Option("--follow", help="With a workload or -l: pods that start running meanwhile (a rollout, a "
                       "scale-up) join, pods that go away leave; until stopped.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Check everything and print the ephemeral container that would be added; "
                       "change nothing. kubectl's --dry-run=client and =server do the same (the API server's dry "
                       "run of the container is always made); =none is no dry run.")
]


@dataclass(frozen=True)
class Flags(Auth):
    """The shared flags of one command line (those a command does not take keep their default); kubectl's
    authentication flags are its Auth fields."""

    image: str | None = None
    profile: str = "auto"
    custom: Path | None = None
    ttl: str = "1h"
    force: bool = False
    dry_run: bool = False
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    request_timeout: str | None = None
    quiet: bool = False
    verbosity: int = 0
    summary: SummaryFormat = SummaryFormat.text
    output_format: OutputFormat | None = None
    selector: str | None = None
    all_namespaces: bool = False
    max_pods: int = 10


# Each shared flag once: its declaration and default, in the order --help lists them.
SHARED: dict[str, tuple[Any, Any]] = {
    "image": (ImageOpt, None),
    "profile": (ProfileOpt, "auto"),
    "custom": (CustomOpt, None),
    "ttl": (TtlOpt, "1h"),
    "force": (ForceOpt, False),
    "dry_run": (DryRunOpt, False),
    "namespace": (NamespaceOpt, None),
    "context": (ContextOpt, None),
    "kubeconfig": (KubeconfigOpt, None),
    "request_timeout": (TimeoutOpt, None),
    "as_": (AsOpt, None),
    "as_group": (AsGroupOpt, None),
    "as_uid": (AsUidOpt, None),
    "token": (TokenOpt, None),
    "server": (ServerOpt, None),
    "user": (UserOpt, None),
    "cluster": (ClusterOpt, None),
    "insecure_skip_tls_verify": (InsecureOpt, False),
    "certificate_authority": (CaOpt, None),
    "client_certificate": (ClientCertOpt, None),
    "client_key": (ClientKeyOpt, None),
    "tls_server_name": (TlsServerNameOpt, None),
    "quiet": (QuietOpt, False),
    "verbosity": (VerbosityOpt, 0),
    "summary": (SummaryOpt, SummaryFormat.text),
    "output_format": (OutputFormatOpt, None),
    "selector": (SelectorOpt, None),
    "all_namespaces": (AllNamespacesOpt, False),
    "max_pods": (MaxPodsOpt, 10),
}
CONTAINER = ("image", "profile", "custom")
LIFETIME = ("ttl", "force", "dry_run")
# kubectl's global flags: every command that talks to the cluster takes all of them, and they may also come before
# the command's name (cli/main.py moves them after it).
AUTH = tuple(f.name for f in fields(Auth))
CONNECTION = ("namespace", "context", "kubeconfig", "request_timeout", *AUTH)
TALK = ("quiet", "verbosity", "summary")
TARGETS = ("selector", "all_namespaces", "max_pods")
# capture and trace: a tool beside the pods of any target
BESIDE_PODS = (*CONTAINER, *LIFETIME, *CONNECTION, *TALK, *TARGETS)


def shared_flags(
    *names: str, **overrides: tuple[Any, Any]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Add the named shared flags (after the command's own, in SHARED's order) to a command, which receives
    them as one `flags: Flags` argument. `overrides` give a flag another declaration and default."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        added = []
        for name in sorted(names, key=list(SHARED).index):
            declaration, default = overrides.get(name, SHARED[name])
            added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=declaration))

        @functools.wraps(command)
        def with_flags(*args: Any, **kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in names}
            if "as_group" in given:  # a repeatable option arrives as a list (or None when not given)
                given["as_group"] = tuple(given["as_group"] or ())
            command(*args, flags=Flags(**given), **kwargs)

        parameters = own + added
        with_flags.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_flags.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_flags

    return decorate
