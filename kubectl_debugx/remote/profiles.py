"""Debug profiles with `kubectl debug --profile` semantics, and `--custom` partial containers.

Everything here is pure: functions take plain dicts (the JSON we send to the API) and return new ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubectl_debugx.errors import UsageError

PROFILES = ("legacy", "general", "baseline", "netadmin", "restricted", "sysadmin")

# Fields the API server accepts in an ephemeral container (validation.allowedEphemeralContainerFields).
EPHEMERAL_FIELDS = frozenset(
    {
        "name", "image", "command", "args", "workingDir", "env", "envFrom", "volumeMounts", "volumeDevices",
        "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "securityContext",
        "stdin", "stdinOnce", "tty", "targetContainerName",
    }
)
# kubectl rejects these in --custom; args and targetContainerName would break the bounded sleep we rely on.
CUSTOM_REJECTED = ("name", "command", "args", "image", "lifecycle", "volumeDevices", "targetContainerName")

# Capabilities a container gets without asking, per runtime (docs/kubernetes-facts.md, "Capabilities"): what
# baseline can rely on.
RUNTIME_DEFAULT_CAPS = {
    "containerd": frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                             "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}),
    "docker": frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                         "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}),
    "cri-o": frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP",
                        "NET_BIND_SERVICE", "KILL"}),
}


def grants_by_default(runtime: str, capability: str) -> bool:
    """Whether containers of `runtime` get `capability` without asking; an unknown runtime ("": the node
    could not be read) is taken as containerd, the runtime of most clusters."""
    return capability in RUNTIME_DEFAULT_CAPS.get(runtime or "containerd", frozenset())


def runtime_name(container_runtime_version: str) -> str:
    """`containerd://1.7.2` -> `containerd`; unknown or empty -> ``."""
    return container_runtime_version.split("://", 1)[0].lower() if container_runtime_version else ""


def _add_capabilities(container: dict[str, Any], caps: list[str]) -> None:
    sc = container.setdefault("securityContext", {}) or {}
    container["securityContext"] = sc
    capabilities = sc.setdefault("capabilities", {})
    capabilities["add"] = list(capabilities.get("add") or []) + caps


def apply_to_ephemeral(profile: str, container: Mapping[str, Any]) -> dict[str, Any]:
    """The ephemeral container after `profile` is applied (kubectl profiles.go, ephemeral style)."""
    out = copy.deepcopy(dict(container))
    if profile == "legacy":
        pass
    elif profile == "general":
        _add_capabilities(out, ["SYS_PTRACE"])
    elif profile == "baseline":
        out.pop("securityContext", None)
    elif profile == "restricted":
        out["securityContext"] = {
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "allowPrivilegeEscalation": False,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    elif profile == "netadmin":
        _add_capabilities(out, ["NET_ADMIN", "NET_RAW"])
    elif profile == "sysadmin":
        out.setdefault("securityContext", {})["privileged"] = True
    else:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return out


def apply_to_node_pod(profile: str, pod: Mapping[str, Any], container_name: str) -> dict[str, Any]:
    """The node pod after `profile` is applied to its container `container_name` (kubectl's node style).

    Host namespaces are applied as kubectl does; the host root mount is ours to choose (nodelogs mounts only
    the log directories it needs), so it is not added here.
    """
    out = copy.deepcopy(dict(pod))
    spec = out["spec"]
    container = next(c for c in spec["containers"] if c["name"] == container_name)

    def host_namespaces() -> None:
        spec["hostPID"] = True
        spec["hostNetwork"] = True
        spec["hostIPC"] = True

    if profile == "legacy":
        host_namespaces()
    elif profile == "general":
        host_namespaces()
        container.pop("securityContext", None)
    elif profile == "baseline":
        container.pop("securityContext", None)
    elif profile == "restricted":
        container["securityContext"] = apply_to_ephemeral("restricted", {})["securityContext"]
    elif profile == "netadmin":
        host_namespaces()
        _add_capabilities(container, ["NET_ADMIN", "NET_RAW"])
    elif profile == "sysadmin":
        host_namespaces()
        container.setdefault("securityContext", {})["privileged"] = True
    else:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return out


def load_custom(path: Path) -> dict[str, Any]:
    """Read a `--custom` file (JSON or YAML partial container) and check it as kubectl does. The value may also
    be the container itself, inline (`--custom '{"securityContext": ...}'`, or YAML with a newline): what a
    runbook writes on one line; a file of that name wins."""
    value = str(path)
    if not path.is_file() and (value.lstrip().startswith("{") or "\n" in value):
        return parse_custom(value, "the inline value")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--custom: cannot read {path}: {e.strerror or e}") from None
    return parse_custom(text, str(path))


def parse_custom(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        import yaml  # only when a YAML file is given: keeps --help fast

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            first = str(e).splitlines()[0] if str(e) else "invalid YAML"
            raise UsageError(f"--custom: {source} is neither valid JSON nor YAML: {first}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--custom: {source} must hold a container object (a mapping of fields)")
    rejected = [k for k in CUSTOM_REJECTED if k in data]
    if rejected:
        raise UsageError(f"--custom: {source} may not set {', '.join(rejected)} (debugx sets them itself)")
    unknown = sorted(set(data) - EPHEMERAL_FIELDS - {"lifecycle"})
    if unknown:
        raise UsageError(
            f"--custom: {source} sets {', '.join(unknown)}, which an ephemeral container cannot have"
        )
    return data


# Lists that strategic merge patch merges by a key for a Container; every other list is replaced.
_MERGE_KEYS = {"env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "ports": "containerPort"}


def merge_custom(container: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """Strategic-merge `custom` into `container` with Container's patch rules (capability lists replace)."""
    return _merge(dict(container), custom, path=())


def _merge(base: dict[str, Any], patch: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)  # null deletes, as in a merge patch
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value, path + (key,))
        elif isinstance(value, list) and not path and key in _MERGE_KEYS and isinstance(out.get(key), list):
            out[key] = _merge_list(out[key], value, _MERGE_KEYS[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        for i, existing in enumerate(merged):
            if existing.get(key) == item.get(key):
                merged[i] = _merge(existing, item, path=(key,))
                break
        else:
            merged.append(copy.deepcopy(item))
    return merged


def added_capabilities(container: Mapping[str, Any]) -> list[str]:
    sc = container.get("securityContext") or {}
    return list((sc.get("capabilities") or {}).get("add") or [])


def is_privileged(container: Mapping[str, Any]) -> bool:
    return bool((container.get("securityContext") or {}).get("privileged"))


def run_as_root(container: Mapping[str, Any]) -> dict[str, Any]:
    """The container set to run as root: needed when the pod runs as non-root, since an ephemeral container
    inherits the pod-level user and capabilities are not effective for a non-root user."""
    out = copy.deepcopy(dict(container))
    sc = out.setdefault("securityContext", {})
    sc["runAsUser"] = 0
    sc["runAsNonRoot"] = False
    return out


def pod_runs_as_non_root(pod: Mapping[str, Any]) -> bool:
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    user = psc.get("runAsUser")
    return bool(psc.get("runAsNonRoot")) or (user is not None and user != 0)
