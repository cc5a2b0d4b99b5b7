"""Which cluster, as whom, in which namespace: kubeconfig (and in-cluster) resolution the way kubectl does it,
with errors that name what was looked at and never show a credential."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import UsageError

# A service account's files in a pod (in-cluster configuration, as kubectl finds it).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class KubeFlags:
    """kubectl's connection flags, as given on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float | None = None
    verbosity: int = 0


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


def load_config(flags: KubeFlags, configuration: Any) -> str:
    """Fill the client configuration the way kubectl resolves it; returns the namespace to use.

    --kubeconfig names the one file; else KUBECONFIG's files, else ~/.kube/config; with none of them, in a
    pod with a service account, the in-cluster configuration. Errors say which files were looked at and
    never show a credential."""
    from kubernetes.config.kube_config import KubeConfigLoader

    if flags.kubeconfig and not os.path.exists(os.path.expanduser(flags.kubeconfig)):
        raise UsageError(f"--kubeconfig: {flags.kubeconfig}: no such file")
    looked = kubeconfig_paths(flags.kubeconfig)
    found = [p for p in looked if os.path.exists(p)]
    if not found:
        if not flags.context and in_cluster_possible():
            return _load_in_cluster(flags, configuration)
        raise UsageError(f"no kubeconfig found (looked at {', '.join(looked)}); set KUBECONFIG or use --kubeconfig")
    merged = _read_kubeconfig(found)
    where = ", ".join(found)
    contexts = {str(c.get("name")): c for c in _entries(merged.value.get("contexts"))}
    current = merged.value.get("current-context") or ""
    chosen = flags.context or current
    if not chosen:
        raise UsageError(f"no current context in kubeconfig {where}; use --context NAME "
                         "(or kubectl config use-context NAME)")
    if chosen not in contexts:
        extra = "" if flags.context else f" (the current context of {where})"
        raise UsageError(f'context "{chosen}" does not exist{extra}')
    try:
        KubeConfigLoader(config_dict=merged, active_context=chosen, config_base_path=None).load_and_set(
            configuration)
    except OSError as e:
        raise UsageError(f"cannot read {e.filename or 'a file named in kubeconfig'}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - ConfigException; its first line names the key, never its value
        raise UsageError(f"invalid kubeconfig {where}: {str(e).splitlines()[0]}") from None
    context_ns = (contexts[chosen].get("context") or {}).get("namespace")
    return flags.namespace or context_ns or "default"


def in_cluster_possible(environ: Mapping[str, str] = os.environ) -> bool:
    """kubectl's test: the service's address in the environment and a service account token file."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT")
                and os.path.isfile(os.path.join(SERVICE_ACCOUNT_DIR, "token")))


def _load_in_cluster(flags: KubeFlags, configuration: Any) -> str:
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
    return flags.namespace or namespace or "default"


def context_names(kubeconfig: str | None) -> list[str]:
    """The contexts of the kubeconfig (KUBECONFIG or ~/.kube/config when None), for completing --context."""
    found = [p for p in kubeconfig_paths(kubeconfig) if os.path.exists(p)]
    if not found:
        return []
    return sorted(str(c["name"]) for c in _entries(_read_kubeconfig(found).value.get("contexts")) if "name" in c)
