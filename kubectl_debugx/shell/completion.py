"""Shell completion: the cobra `__complete` protocol, and scripts for bash, zsh, fish and kubectl.

kubectl >= 1.26 completes `kubectl debugx <TAB>` by running `kubectl_complete-debugx ARGS... WORD` (the words
after `debugx`, then the word being completed, maybe empty) and reading candidates, one per line
(`candidate<TAB>description`), then a last line `:<directive>`. Our `kubectl_complete-debugx` is a two-line
shell script that runs `kubectl-debugx __complete ARGS... WORD`; the bash/zsh/fish scripts printed by
`kubectl debugx completion SHELL` (kubectl_debugx/completion_scripts.py) speak the same protocol when
`kubectl-debugx` is used directly.

Subcommands and flags come from the Typer app (no Kubernetes client import); pod names, namespaces and contexts
are asked for only when such a value is being completed. Any failure means no candidates, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from kubectl_debugx.completion_scripts import SHELLS, script

# cobra's ShellCompDirective bits
DEFAULT = 0
ERROR = 1
NO_FILE_COMP = 4

# Parameters (by their Python name) whose values are files: let the shell complete paths.
FILE_PARAMS = frozenset({"kubeconfig", "custom", "output_file", "output_dir", "out_dir", "directory", "file",
                         "local"})
POD_PARAMS = frozenset({"pod"})
POD_PREFIXES = ("pod/", "pods/", "po/")
# A TARGET (kube/workloads.py) also takes TYPE/NAME: the kinds are offered as these prefixes, then the names.
TARGET_PARAMS = frozenset({"target"})
TARGET_KINDS = ("pod/", "deploy/", "sts/", "ds/", "rs/", "job/", "svc/")
NO_SPACE = 2  # cobra's ShellCompDirectiveNoSpace: after `deploy/` the name follows at once
# cp's POD:PATH, completed as kubectl cp does: `POD:` (the path follows at once), `NAMESPACE/` then `NAMESPACE/POD:`
CP_SOURCE_PARAMS = frozenset({"source"})
API_TIMEOUT = 3.0  # seconds: a TAB must not hang on an unreachable cluster


def _fixed_values(name: str) -> tuple[str, ...] | None:
    if name == "shell":
        return SHELLS
    if name == "profile":
        from kubectl_debugx.remote.profiles import PROFILES

        return ("auto", *PROFILES)
    if name == "output":
        return ("text", "json")
    if name == "via":
        return ("auto", "proxy", "pod")
    if name == "for_":  # doctor --for
        return ("capture", "trace", "nodelogs", "cp", "shell")
    return None


# --- parsing the words typed so far -------------------------------------------------------------------
# Commands, options and arguments are plain dicts (kubectl_debugx.shell.clispec): from the build's cache in the
# zipapp, without importing Typer.


def _options(command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every option string of a command -> its option."""
    return {opt: option for option in command.get("options", []) for opt in option["opts"]}


def _takes_value(option: dict[str, Any]) -> bool:
    return not option["flag"]


class _Line:
    """What the words before the one being completed say: the command reached, flags given, args so far."""

    def __init__(self, words: Sequence[str]) -> None:
        from kubectl_debugx.shell.clispec import spec

        self.command: dict[str, Any] = spec()
        self.path: list[str] = []
        self.values: dict[str, str] = {}  # option name -> value (last one wins)
        self.args: list[str] = []
        self.pending: dict[str, Any] | None = None  # an option whose value is the word being completed
        self.after_dashdash = False
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if self.after_dashdash:
                self.args.append(word)
            elif word == "--":
                self.after_dashdash = True
            elif word.startswith("-") and len(word) > 1:
                name, eq, value = word.partition("=")
                option = _options(self.command).get(name)
                if option is None and not eq and not word.startswith("--") and len(word) > 2:
                    # -nfoo: a short option with its value glued on
                    option = _options(self.command).get(word[:2])
                    if option is not None and _takes_value(option):
                        self.values[option["name"]] = word[2:]
                    continue
                if option is None or not _takes_value(option):
                    continue
                if eq:
                    self.values[option["name"]] = value
                elif i < len(words):
                    self.values[option["name"]] = words[i]
                    i += 1
                else:
                    self.pending = option
            elif "commands" in self.command and not self.args:
                sub = self.command["commands"].get(word)
                if sub is None:
                    self.args.append(word)
                else:
                    self.command = sub
                    self.path.append(word)
            else:
                self.args.append(word)

    def next_argument(self) -> dict[str, Any] | None:
        """The positional argument the word being completed would fill, if any."""
        index = len(self.args)
        for argument in self.command.get("arguments", []):
            count = argument["nargs"] if argument["nargs"] and argument["nargs"] > 0 else None
            if count is None:
                return dict(argument)  # nargs=-1 takes everything that is left
            if index < count:
                return dict(argument)
            index -= count
        return None


# --- candidates -------------------------------------------------------------------------------------


def _kube(line: _Line) -> Any:
    from dataclasses import fields, replace

    from kubectl_debugx.kube import client as kube_module
    from kubectl_debugx.kube.config import Auth, KubeFlags

    values = line.values
    group = values.get("as_group")  # the last one given (values keep one per option)
    # the line's own connection and auth flags, as kubectl's completion uses them
    auth = replace(Auth(), **{f.name: values[f.name] for f in fields(Auth) if values.get(f.name) is not None},
                   as_group=(group,) if group else (),
                   insecure_skip_tls_verify=bool(values.get("insecure_skip_tls_verify")))
    flags = KubeFlags(
        kubeconfig=values.get("kubeconfig"),
        context=values.get("context"),
        namespace=values.get("namespace"),
        request_timeout=API_TIMEOUT,  # this process only completes: fail fast (connecting too)
        **vars(auth),
    )
    return kube_module.Kube(flags)


def _pods(line: _Line) -> list[str]:
    kube = _kube(line)
    return sorted(str(p["metadata"]["name"]) for p in kube.list_pods(kube.namespace))


def _names(line: _Line, kind: str) -> list[str]:
    """Names of the objects of a target kind (kube.workloads.KINDS) in the line's namespace."""
    from kubectl_debugx.kube.workloads import KINDS

    kube = _kube(line)
    prefix, resource = KINDS[kind]
    data = kube.request("GET", f"{prefix}/namespaces/{kube.namespace}/{resource}")
    return sorted(str(o["metadata"]["name"]) for o in data.get("items") or [])


def _target_candidates(line: _Line, incomplete: str) -> tuple[list[str], int]:
    """POD names and the kinds (deploy/, svc/, ...) for a bare word; the names of that kind after KIND/."""
    word, slash, rest = incomplete.partition("/")
    if slash:
        kind = _kind(word)
        if kind is None:
            return [], NO_FILE_COMP
        try:
            names = _pods(line) if kind == "pod" else _names(line, kind)
        except Exception:  # noqa: BLE001 - no cluster, no rights, bad kubeconfig: just no candidates
            return [], NO_FILE_COMP
        return [f"{word}/{n}" for n in names if n.startswith(rest)], NO_FILE_COMP
    kinds = [k for k in TARGET_KINDS if k.startswith(incomplete)]
    try:
        pods = [p for p in _pods(line) if p.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        pods = []
    directive = NO_FILE_COMP | (NO_SPACE if kinds and not pods and len(kinds) == 1 else 0)
    return kinds + pods, directive


def _kind(word: str) -> str | None:
    """The target kind of `deploy`, `deployment.apps` (kube/workloads.py), None for anything else."""
    from kubectl_debugx.errors import UsageError
    from kubectl_debugx.kube.workloads import kind_of

    try:
        return kind_of(word)
    except UsageError:  # deployment.batch: nothing to offer
        return None


def _cp_source_candidates(line: _Line, incomplete: str) -> tuple[list[str], int]:
    """cp's first word as kubectl cp completes it: `POD:` for a bare word (no space after: the path follows), and
    `NAMESPACE/`, then that namespace's `NAMESPACE/POD:`; `deploy/` and the other kinds, then `deploy/web:`.
    Once the word has its `:` the path is the container's, which we cannot list: nothing (never local files);
    a word starting like a local path (`/`, `.`, `~`) is left to the shell."""
    if incomplete[:1] in ("/", ".", "~"):
        return [], DEFAULT
    if ":" in incomplete:
        return [], NO_FILE_COMP | NO_SPACE
    word, slash, rest = incomplete.partition("/")
    try:
        if slash:
            kind = _kind(word)
            if kind is not None:
                names = _pods(line) if kind == "pod" else _names(line, kind)
            else:  # kubectl cp's NAMESPACE/POD
                kube = _kube(line)
                names = sorted(str(p["metadata"]["name"]) for p in kube.list_pods(word))
            return [f"{word}/{n}:" for n in names if n.startswith(rest)], NO_FILE_COMP | NO_SPACE
        pods = [f"{p}:" for p in _pods(line) if p.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - no cluster, no rights, bad kubeconfig: just no candidates
        pods = []
    kinds = [k for k in TARGET_KINDS if k.startswith(incomplete) and k != "pod/"]
    return pods + kinds, NO_FILE_COMP | NO_SPACE


def _namespaces(line: _Line) -> list[str]:
    kube = _kube(line)
    data = kube.request("GET", "/api/v1/namespaces")
    return sorted(str(n["metadata"]["name"]) for n in data.get("items") or [])


def _nodes(line: _Line) -> list[str]:
    data = _kube(line).request("GET", "/api/v1/nodes")
    return sorted(str(n["metadata"]["name"]) for n in data.get("items") or [])


def _containers(line: _Line) -> list[str]:
    """Containers of the pod named on the line (POD or pod/POD)."""
    if not line.args:
        return []
    pod = line.args[0].split(":", 1)[0].split("/", 1)[-1]  # cp's POD:PATH too
    kube = _kube(line)
    spec = kube.get_pod(kube.namespace, pod).get("spec") or {}
    kinds = ("containers", "initContainers", "ephemeralContainers")
    return [str(c["name"]) for kind in kinds for c in spec.get(kind) or []]


def _contexts(line: _Line) -> list[str]:
    from kubectl_debugx.kube.config import context_names

    return context_names(line.values.get("kubeconfig"))


def _value_candidates(param: dict[str, Any], line: _Line) -> tuple[list[str], int]:
    name = param.get("name") or ""
    fixed = _fixed_values(name)
    if fixed is not None:
        return list(fixed), NO_FILE_COMP
    if param.get("choices"):
        return list(param["choices"]), NO_FILE_COMP
    if name in FILE_PARAMS or param.get("file"):
        return [], DEFAULT
    lister = {"namespace": _namespaces, "pod_namespace": _namespaces, "context": _contexts, "node": _nodes,
              "container": _containers}.get(name)
    if lister is None and name in POD_PARAMS:
        lister = _pods
    if lister is not None:
        try:
            return lister(line), NO_FILE_COMP
        except Exception:  # noqa: BLE001 - no cluster, no rights, bad kubeconfig: just no candidates
            return [], NO_FILE_COMP
    return [], NO_FILE_COMP


def candidates(args: Sequence[str], descriptions: bool = True) -> tuple[list[str], int]:
    """Candidates for the last word of args (the words after the program name) and the cobra directive."""
    words, incomplete = list(args[:-1]), (args[-1] if args else "")
    line = _Line(words)

    if line.pending is not None:
        values, directive = _value_candidates(line.pending, line)
        return [v for v in values if v.startswith(incomplete)], directive

    if incomplete.startswith("-") and not line.after_dashdash:
        name, eq, value = incomplete.partition("=")
        options = _options(line.command)
        if eq:  # --flag=val
            param = options.get(name)
            if param is None or not _takes_value(param):
                return [], NO_FILE_COMP
            values, directive = _value_candidates(param, line)
            return [f"{name}={v}" for v in values if v.startswith(value)], directive
        out = []
        for opt, param in sorted(options.items(), key=lambda kv: (not kv[0].startswith("--"), kv[0])):
            if opt.startswith(incomplete):
                out.append(f"{opt}\t{param['help']}" if descriptions and param["help"] else opt)
        return out, NO_FILE_COMP

    if "commands" in line.command and not line.args:
        out = []
        for name, sub in sorted(line.command["commands"].items()):
            if name.startswith(incomplete) and not sub["hidden"]:
                out.append(f"{name}\t{sub['help']}" if descriptions and sub["help"] else name)
        return out, NO_FILE_COMP

    param = line.next_argument()
    if param is None:
        return [], NO_FILE_COMP
    if param["name"] in TARGET_PARAMS:
        return _target_candidates(line, incomplete)
    if param["name"] == "command" and line.path == ["help"]:  # help CMD: the commands, as at the top
        return candidates([incomplete], descriptions)
    if param["name"] in CP_SOURCE_PARAMS and line.path == ["cp"]:
        return _cp_source_candidates(line, incomplete)
    if param["name"] in POD_PARAMS:
        prefix = next((p for p in POD_PREFIXES if incomplete.startswith(p)), "")
        if not prefix and "/" in incomplete:
            return [], NO_FILE_COMP
        values, directive = _value_candidates(param, line)
        rest = incomplete[len(prefix) :]
        return [prefix + v for v in values if v.startswith(rest)], directive
    values, directive = _value_candidates(param, line)
    return [v for v in values if v.startswith(incomplete)], directive


def complete(args: Sequence[str], descriptions: bool = True, out: Any = None) -> int:
    """`kubectl-debugx __complete ARGS... WORD`: print candidates and `:<directive>`; always exit 0."""
    out = out or sys.stdout
    try:
        found, directive = candidates(args, descriptions)
    except Exception:  # noqa: BLE001 - a completion must never print a traceback into the shell
        found, directive = [], NO_FILE_COMP
    for item in found:
        out.write(item.replace("\n", " ") + "\n")
    out.write(f":{directive}\n")
    out.flush()
    return 0


# --- scripts (kubectl_debugx/completion_scripts.py) --------------------------------------------------


def _print_script(argv: Iterable[str]) -> int:
    args = list(argv)
    if len(args) != 1 or args[0] not in SHELLS:
        print(f"usage: python -m kubectl_debugx.shell.completion {{{','.join(SHELLS)}}}", file=sys.stderr)
        return 2
    sys.stdout.write(script(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(_print_script(sys.argv[1:]))
