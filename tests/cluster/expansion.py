"""Kubernetes' `$(VAR)` expansion of a container's `command`, `args` and env values, as the kubelet does it
(k8s.io/kubernetes third_party/forked/golang/expansion/expand.go, v1.33): `$(NAME)` becomes NAME's value when
the mapping has it and stays as written when not, `$$` is a literal `$`, and any other `$` stays. Recorded on
the real cluster: recordings/30-expansion-*.json."""

from __future__ import annotations

from collections.abc import Mapping

OPERATOR, OPENER, CLOSER = "$", "(", ")"


def _read_name(rest: str) -> tuple[str, bool, int]:
    """tryReadVariableName: (text, is a variable name, characters consumed after the operator)."""
    if rest[0] == OPERATOR:
        return OPERATOR, False, 1
    if rest[0] == OPENER:
        end = rest.find(CLOSER, 1)
        if end >= 0:
            return rest[1:end], True, end + 1
        return OPERATOR + OPENER, False, 1
    return OPERATOR + rest[0], False, 1


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_name, advance = _read_name(text[cursor + 1:])
            out.append(env.get(read, f"$({read})") if is_name else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def expand_all(argv: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(a, env) for a in argv]
