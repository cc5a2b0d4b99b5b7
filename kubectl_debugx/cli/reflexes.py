"""kubectl reflexes: what SREs type out of kubectl habit, read as kubectl means it or refused with what to type.

Pure functions of one command's words (after its name), given which of its options take a value, so that the
value of an option (`-f '--tty'`, a tcpdump filter) is never mistaken for a flag. Run by cli/main.py before
click parses the line, so a refusal comes before anything else is done, let alone created.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kubectl_debugx.errors import UsageError

DRY_RUN_MODES = ("none", "server", "client")
# kubectl's interactive flags (`kubectl exec -it`, `kubectl debug -it`): debugx opens no terminal session
INTERACTIVE = frozenset({"-it", "-ti", "-t", "--stdin", "--tty"})


def _options(words: list[str], takes_value: Mapping[str, bool]) -> Iterator[tuple[int, str]]:
    """(index, word) of each word that is an option, not an option's value nor an argument; up to `--`."""
    is_value = False
    for i, word in enumerate(words):
        if is_value:
            is_value = False
            continue
        if word == "--":
            return
        if word.startswith("-") and len(word) > 1:
            yield i, word
            is_value = "=" not in word and takes_value.get(word, False)


def dry_run(words: list[str], takes_value: Mapping[str, bool]) -> tuple[list[str], str | None]:
    """kubectl's `--dry-run[=none|server|client]` as our `--dry-run` flag, and which mode was asked (None when
    not given; the last one given wins, as in kubectl). `client` and bare are our dry run; `server` too (its
    checks already include the API server's own dry runs: the caller says so); `none` is no dry run. Only for a
    command that has --dry-run: on another the word is left for click to refuse as an unknown option."""
    if "--dry-run" not in takes_value:
        return words, None
    given = [(i, word.partition("=")) for i, word in _options(words, takes_value)
             if word.partition("=")[0] == "--dry-run"]
    for _, (_, eq, value) in given:
        if eq and value not in DRY_RUN_MODES:
            raise UsageError(f'invalid --dry-run value "{value}": must be "none", "server", or "client" (as '
                             "kubectl's; --dry-run alone is client)")
    if not given:
        return words, None
    _, eq, value = given[-1][1]
    mode = value if eq else "client"
    at = {i for i, _ in given}
    out = [word for i, word in enumerate(words) if i not in at]
    if mode != "none":
        out.insert(min(at), "--dry-run")
    return out, mode


# shell opens a terminal session by itself when stdin is one (and streams stdin otherwise): kubectl exec's flags
# for it are read as what they would ask, and dropped
SELF_INTERACTIVE = frozenset({"shell"})


def drop_interactive(words: list[str], takes_value: Mapping[str, bool]) -> list[str]:
    """`kubectl debugx shell -it POD`, typed out of kubectl exec's habit: shell decides alone (a terminal when
    stdin is one and no COMMAND is given), so -i, -t, -it, -ti, --stdin, --tty before `--` change nothing."""
    at = {i for i, word in _options(words, takes_value) if word in INTERACTIVE or word == "-i"}
    return [word for i, word in enumerate(words) if i not in at]


def refuse_interactive(command: str, words: list[str], takes_value: Mapping[str, bool]) -> None:
    """`-it`, `-i -t`, `--stdin`, `--tty`: kubectl exec's interactive session, which no debugx command opens.
    Refused before anything else, with what to type instead: click would read capture's `-it` as `-i t`
    (interface `t`) and tcpdump would fail in the cluster with `No such device exists`."""
    iface = "-i" in takes_value  # capture: -i is tcpdump's interface
    for i, word in _options(words, takes_value):
        name = word.partition("=")[0]
        value_is_tty = iface and word in ("-i", "--interface") and i + 1 < len(words) and (
            words[i + 1] in INTERACTIVE or words[i + 1].startswith("-"))
        if (name in INTERACTIVE and name not in takes_value) or value_is_tty or (word == "-i" and not iface):
            given = f"{word} {words[i + 1]}" if value_is_tty else word
            raise UsageError(f"{given}: kubectl debugx {command} is not interactive (no -i/--stdin, -t/--tty: it "
                             "opens no terminal session)" + (
                                 "; here -i is the interface to capture on (-i eth0, default any)" if iface else
                                 "; its output goes to -o or stdout, its talk to stderr"))
