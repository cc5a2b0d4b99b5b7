"""Which cluster, as whom, in which namespace: kubeconfig (and in-cluster) resolution the way kubectl does it,
with errors that name what was looked at and never show a credential."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, fields
from typing import Any

from kubectl_debugx.errors import Unauthorized, UsageError

# A service account's files in a pod (in-cluster configuration, as kubectl finds it).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


# --request-timeout when not given: every API request (its connection at most CONNECT_TIMEOUT of it, each access
# review and their batch, the wait for a watch's or a stream's first answer) gets an answer within this, or the
# run ends with exit 7. kubectl has none by default; a hung API server then hangs it.
DEFAULT_REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Auth:
    """kubectl's authentication and cluster flags, as given on the command line: each overrides what the context
    gives (see _override). cli's Flags holds them under the same names (it is an Auth)."""

    as_: str | None = None
    as_group: tuple[str, ...] = ()
    as_uid: str | None = None
    token: str | None = field(default=None, repr=False)  # never shown, not even in a traceback's repr
    server: str | None = None
    user: str | None = None
    cluster: str | None = None
    insecure_skip_tls_verify: bool = False
    certificate_authority: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None

    def auth(self) -> Auth:
        """Only the authentication flags (of a subclass that holds more)."""
        return Auth(**{f.name: getattr(self, f.name) for f in fields(Auth)})


@dataclass(frozen=True)
class KubeFlags(Auth):
    """kubectl's connection flags, as given on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float | None = None
    verbosity: int = 0


@dataclass(frozen=True)
class Impersonation:
    """Who the API server is asked to act as (kubectl's --as, --as-group, --as-uid, or the kubeconfig user's
    `as`, `as-groups`, `as-uid`): the Impersonate-* headers of every request."""

    user: str | None = None
    groups: tuple[str, ...] = ()
    uid: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        """The headers, one per group (the API server reads each Impersonate-Group line as one group: a
        comma-joined line would be one group named "a,b")."""
        out = [("Impersonate-User", self.user)] if self.user else []
        out += [("Impersonate-Group", g) for g in self.groups]
        return out + ([("Impersonate-Uid", self.uid)] if self.uid else [])


@dataclass(frozen=True)
class Resolved:
    """What load_config decided besides the client configuration it filled."""

    namespace: str
    impersonation: Impersonation = Impersonation()


def kubeconfig_paths(explicit: str | None = None) -> list[str]:
    """The kubeconfig files kubectl reads: --kubeconfig alone, else KUBECONFIG's list, else ~/.kube/config."""
    if explicit:
        return [os.path.expanduser(explicit)]
    listed = [os.path.expanduser(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [os.path.expanduser(os.path.join("~", ".kube", "config"))]


def _read_kubeconfig(paths: list[str]) -> Any:
    """The merged kubeconfig (a ConfigNode whose .value is the dict) of the files that exist, in order.

    Errors name the file and never quote its content (a YAML error's snippet could show a token)."""
    import yaml
    from kubernetes.config.kube_config import KubeConfigMerger

    where = ", ".join(paths)
    try:
        merged = KubeConfigMerger(os.pathsep.join(paths)).config
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        name = getattr(mark, "name", "") or where
        raise UsageError(f"invalid kubeconfig {name}: not valid YAML ({getattr(e, 'problem', '') or 'syntax'}{at})"
                         ) from None
    except OSError as e:
        raise UsageError(f"cannot read kubeconfig {e.filename or where}: {e.strerror or e}") from None
    except (AttributeError, TypeError, KeyError):
        raise UsageError(f"invalid kubeconfig {where}: not a kubeconfig (a mapping with clusters, contexts, "
                         "users)") from None
    except Exception as e:  # noqa: BLE001 - the client's ConfigException: its first line names what is wrong
        raise UsageError(f"invalid kubeconfig {where}: {str(e).splitlines()[0]}") from None
    if merged is None or not isinstance(merged.value, dict):
        raise UsageError(f"invalid kubeconfig {where}: no configuration in it")
    return merged


def _entries(items: Any) -> list[Mapping[str, Any]]:
    """The named entries of a merged kubeconfig list (the merger wraps each in a ConfigNode)."""
    values = (getattr(item, "value", item) for item in items or [])
    return [v for v in values if isinstance(v, Mapping)]


def load_config(flags: KubeFlags, configuration: Any) -> Resolved:
    """Fill the client configuration the way kubectl resolves it; returns the namespace and impersonation to use.

    --kubeconfig names the one file; else KUBECONFIG's files, else ~/.kube/config; with none of them, in a
    pod with a service account, the in-cluster configuration, and with -s/--server the flags alone. --cluster
    and --user pick other entries than the context's; -s, --token, --certificate-authority, ... override
    fields of them (kubectl's precedence: flag, then kubeconfig). Errors say which files were looked at and
    never show a credential."""
    if flags.kubeconfig and not os.path.exists(os.path.expanduser(flags.kubeconfig)):
        raise UsageError(f"--kubeconfig: {flags.kubeconfig}: no such file")
    _check_flags(flags)
    looked = kubeconfig_paths(flags.kubeconfig)
    found = [p for p in looked if os.path.exists(p)]
    if not found:
        if flags.server:  # as `kubectl --server URL --token T` works with no kubeconfig at all
            return _load_flags_only(flags, configuration)
        if not flags.context and in_cluster_possible():
            return _load_in_cluster(flags, configuration)
        raise UsageError(f"no kubeconfig found (looked at {', '.join(looked)}); set KUBECONFIG or use --kubeconfig")
    merged = _read_kubeconfig(found)
    where = ", ".join(found)
    contexts = {str(c.get("name")): c for c in _entries(merged.value.get("contexts"))}
    current = merged.value.get("current-context") or ""
    chosen = flags.context or current
    if not chosen:
        if flags.server:
            return _load_flags_only(flags, configuration)
        raise UsageError(f"no current context in kubeconfig {where}; use --context NAME "
                         "(or kubectl config use-context NAME)")
    if chosen not in contexts:
        extra = "" if flags.context else f" (the current context of {where})"
        raise UsageError(f'context "{chosen}" does not exist{extra}')
    for kind, name in (("clusters", flags.cluster), ("users", flags.user)):
        if name and name not in {str(e.get("name")) for e in _entries(merged.value.get(kind))}:
            raise UsageError(f'{kind[:-1]} "{name}" does not exist in kubeconfig {where}')
    loader = _loader_class()(config_dict=merged, active_context=chosen, config_base_path=None, flags=flags)
    try:
        loader.load_and_set(configuration)
    except OSError as e:
        raise UsageError(f"cannot read {e.filename or 'a file named in kubeconfig'}: {e.strerror or e}") from None
    except Unauthorized:
        raise
    except Exception as e:  # noqa: BLE001 - ConfigException; its first line names the key, never its value
        raise UsageError(f"invalid kubeconfig {where}: {str(e).splitlines()[0]}") from None
    context_ns = (contexts[chosen].get("context") or {}).get("namespace")
    return Resolved(flags.namespace or context_ns or "default", _impersonation(flags, loader.user_entry()))


def _check_flags(flags: KubeFlags) -> None:
    """kubectl's own refusals of flag combinations, before anything is read."""
    if (flags.as_group or flags.as_uid) and not flags.as_:
        raise UsageError("--as-group and --as-uid need --as: impersonating groups or a uid without a user is "
                         "refused by the API server")
    if flags.insecure_skip_tls_verify and flags.certificate_authority:
        raise UsageError("--certificate-authority and --insecure-skip-tls-verify exclude each other (kubectl: "
                         "specifying a root certificates file with the insecure flag is not allowed)")
    if flags.server and "://" not in flags.server:
        raise UsageError(f"-s/--server: {flags.server!r} is not a URL (https://HOST:PORT)")


def _cluster_overrides(flags: KubeFlags) -> dict[str, Any]:
    """The cluster fields the flags set (paths as given on the command line: relative to the working folder)."""
    out: dict[str, Any] = {}
    if flags.server:
        out["server"] = flags.server
    if flags.certificate_authority:
        out["certificate-authority"] = os.path.abspath(os.path.expanduser(flags.certificate_authority))
    if flags.insecure_skip_tls_verify:
        out["insecure-skip-tls-verify"] = True
    if flags.tls_server_name:
        out["tls-server-name"] = flags.tls_server_name
    return out


def _override(entry: Mapping[str, Any] | None, flags: KubeFlags, cluster: bool) -> dict[str, Any]:
    """A kubeconfig cluster or user with the flags' fields over it, as client-go merges its overrides.

    --insecure-skip-tls-verify drops the kubeconfig's CA (client-go clears it, so that the flag works on a
    cluster entry that has one); --certificate-authority replaces it and the insecure setting. --token replaces
    every credential of the user but its client certificate (client-go: a token means the exec plugin or
    auth provider is not run); --client-certificate/--client-key replace the kubeconfig's pair."""
    value = dict(entry or {})
    if cluster:
        extra = _cluster_overrides(flags)
        if "insecure-skip-tls-verify" in extra or "certificate-authority" in extra:
            for key in ("certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"):
                value.pop(key, None)
        return {**value, **extra}
    if flags.token:
        for key in ("token", "tokenFile", "exec", "auth-provider", "username", "password"):
            value.pop(key, None)
        value["token"] = flags.token
    for flag, key in ((flags.client_certificate, "client-certificate"), (flags.client_key, "client-key")):
        if flag:
            value.pop(f"{key}-data", None)
            value[key] = os.path.abspath(os.path.expanduser(flag))
    return value


def _loader_class() -> Any:
    """KubeConfigLoader with kubectl's flags (--cluster, --user and the overrides) and with an exec credential
    plugin's failure raised as Unauthorized (the client logs it and goes on without credentials, which ends in
    a 401 that hides the cause)."""
    from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader

    class Loader(KubeConfigLoader):
        def __init__(self, *args: Any, flags: KubeFlags, **kwargs: Any) -> None:
            self._flags = flags
            super().__init__(*args, **kwargs)

        def set_active_context(self, context_name: str | None = None) -> None:
            super().set_active_context(context_name)
            flags = self._flags
            if flags.cluster:
                self._cluster = self._config["clusters"].get_with_name(flags.cluster)["cluster"]
            if flags.user:
                self._user = self._config["users"].get_with_name(flags.user)["user"]
            # the nodes keep the path of their file, against which the kubeconfig's relative paths resolve
            self._cluster = ConfigNode(self._cluster.name, _override(self._cluster.value, flags, True),
                                       self._cluster.path)
            user = self._user
            if user is not None or flags.token or flags.client_certificate or flags.client_key:
                self._user = ConfigNode(getattr(user, "name", "user"),
                                        _override(getattr(user, "value", None), flags, False),
                                        getattr(user, "path", None) or self._cluster.path)

        def _load_from_exec_plugin(self) -> Any:
            return load_from_exec_plugin(self, ConfigNode)

        def user_entry(self) -> Mapping[str, Any]:
            return dict(getattr(self._user, "value", None) or {})

    return Loader


def load_from_exec_plugin(loader: Any, node_class: Any) -> Any:
    """The client's own exec plugin loading (kube_config._load_from_exec_plugin), with its failures raised in
    kubectl's words instead of logged: `getting credentials: exec: executable X failed with exit code 2: TEXT`.
    Called at load and again by the client's refresh hook when the credential expires."""
    from kubernetes.config.exec_provider import ExecProvider
    from kubernetes.config.kube_config import FileOrData, parse_rfc3339

    if "exec" not in loader._user:
        return None
    base_path = loader._get_base_path(loader._cluster.path)
    spec = loader._user["exec"]
    command = str(spec.safe_get("command") or "")
    if "/" in command and not os.path.isabs(command):  # named as kubectl names it: relative to the kubeconfig
        command = os.path.normpath(os.path.join(base_path, command))
    try:
        status = ExecProvider(spec, base_path, loader._cluster).run()
    except FileNotFoundError:
        raise Unauthorized(f"getting credentials: exec: executable {command} not found") from None
    except OSError as e:
        raise Unauthorized(f"getting credentials: exec: executable {command}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - ConfigException: exit code and stderr, or a malformed answer
        raise Unauthorized(exec_failure(command, str(e))) from None
    if "token" in status:
        loader.token = f"Bearer {status['token']}"
    elif "clientCertificateData" in status and "clientKeyData" in status:
        for attribute, key in (("cert_file", "clientCertificateData"), ("key_file", "clientKeyData")):
            setattr(loader, attribute, FileOrData(status, None, data_key_name=key, file_base_path=base_path,
                                                  base64_file_content=False,
                                                  temp_file_path=loader._temp_file_path).as_file())
    else:
        raise Unauthorized(f"getting credentials: exec: executable {command} gave neither a token nor a client "
                           "certificate and key")
    if "expirationTimestamp" in status:
        loader.expiry = parse_rfc3339(status["expirationTimestamp"])
    return True


def exec_failure(command: str, text: str) -> str:
    """The client's `exec: process returned 2. TEXT` as kubectl says it, on one line (TEXT: the plugin's
    stderr, when it was not a terminal's, where the plugin said it itself)."""
    import re

    match = re.fullmatch(r"exec: process returned (-?\d+)(?:\. (.*))?", text.strip(), re.DOTALL)
    if match is None:
        return f"getting credentials: {' '.join(text.split())}"
    said = " ".join((match.group(2) or "").split())
    return (f"getting credentials: exec: executable {command} failed with exit code {match.group(1)}"
            + (f": {said}" if said else ""))


def _impersonation(flags: KubeFlags, user: Mapping[str, Any]) -> Impersonation:
    """kubectl's flags, else the kubeconfig user's `as`, `as-groups`, `as-uid` (the flags replace them whole,
    as client-go's override of the Impersonate fields does when --as is given)."""
    if flags.as_:
        return Impersonation(flags.as_, tuple(flags.as_group), flags.as_uid)
    groups = user.get("as-groups") or ()
    return Impersonation(user.get("as") or None, tuple(str(g) for g in groups), user.get("as-uid") or None)


def _load_flags_only(flags: KubeFlags, configuration: Any) -> Resolved:
    """No kubeconfig (or no context in it) and -s/--server: the connection from the flags alone."""
    cluster = _cluster_overrides(flags)
    configuration.host = str(cluster["server"]).rstrip("/")
    configuration.ssl_ca_cert = cluster.get("certificate-authority")
    configuration.verify_ssl = not flags.insecure_skip_tls_verify
    configuration.tls_server_name = flags.tls_server_name
    user = _override(None, flags, False)
    configuration.cert_file = user.get("client-certificate")
    configuration.key_file = user.get("client-key")
    if flags.token:
        configuration.api_key["authorization"] = f"Bearer {flags.token}"
    return Resolved(flags.namespace or "default", _impersonation(flags, {}))


def in_cluster_possible(environ: Mapping[str, str] = os.environ) -> bool:
    """kubectl's test: the service's address in the environment and a service account token file."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT")
                and os.path.isfile(os.path.join(SERVICE_ACCOUNT_DIR, "token")))


def _load_in_cluster(flags: KubeFlags, configuration: Any) -> Resolved:
    from kubernetes.config.incluster_config import InClusterConfigLoader

    try:
        InClusterConfigLoader(os.path.join(SERVICE_ACCOUNT_DIR, "token"),
                              os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")).load_and_set(configuration)
    except Exception as e:  # noqa: BLE001 - ConfigException: which file or variable is missing
        raise UsageError(f"no kubeconfig found, and the in-cluster configuration cannot be used: "
                         f"{str(e).splitlines()[0]}") from None
    namespace = os.environ.get("POD_NAMESPACE", "")
    if not namespace:
        with suppress(OSError), open(os.path.join(SERVICE_ACCOUNT_DIR, "namespace")) as f:
            namespace = f.read().strip()
    # the flags override the service account's connection as they do a kubeconfig's
    cluster = _cluster_overrides(flags)
    configuration.host = str(cluster.get("server") or configuration.host).rstrip("/")
    if flags.insecure_skip_tls_verify:
        configuration.verify_ssl, configuration.ssl_ca_cert = False, None
    configuration.ssl_ca_cert = cluster.get("certificate-authority") or configuration.ssl_ca_cert
    configuration.tls_server_name = flags.tls_server_name or configuration.tls_server_name
    user = _override(None, flags, False)
    configuration.cert_file = user.get("client-certificate") or configuration.cert_file
    configuration.key_file = user.get("client-key") or configuration.key_file
    if flags.token:
        configuration.api_key["authorization"] = f"Bearer {flags.token}"
        configuration.refresh_api_key_hook = None
    return Resolved(flags.namespace or namespace or "default", _impersonation(flags, {}))


def context_names(kubeconfig: str | None) -> list[str]:
    """The contexts of the kubeconfig (KUBECONFIG or ~/.kube/config when None), for completing --context."""
    found = [p for p in kubeconfig_paths(kubeconfig) if os.path.exists(p)]
    if not found:
        return []
    return sorted(str(c["name"]) for c in _entries(_read_kubeconfig(found).value.get("contexts")) if "name" in c)
