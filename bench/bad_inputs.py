"""The bad inputs of bench/reliability: each must give its documented exit code (README, "Exit codes"), one
`error:` line, no traceback, nothing created in the cluster and no file."""

from __future__ import annotations


def bad_inputs(ns: str) -> list[tuple[str, list[str], int]]:
    """(what, arguments, documented exit code). OUT: a fresh path that must not appear; EXISTING_FILE,
    EXISTING_DIR: outputs that exist and must stay as they are; UNREACHABLE: use a kubeconfig whose server
    does not answer."""
    return [
        ("duration without unit", ["capture", "web", "-n", ns, "--duration", "10", "-o", "OUT"], 2),
        ("duration not a number", ["capture", "web", "-n", ns, "--duration", "ten", "-o", "OUT"], 2),
        ("-o json (a format)", ["capture", "web", "-n", ns, "-o", "json"], 2),
        ("bad --max-size", ["capture", "web", "-n", ns, "--max-size", "10X", "-o", "OUT"], 2),
        ("unknown profile", ["capture", "web", "-n", ns, "--profile", "nosuch", "-o", "OUT"], 2),
        ("unreadable --custom", ["capture", "web", "-n", ns, "--custom", "/nonexistent.yaml", "-o", "OUT"], 2),
        ("bad --ttl", ["capture", "web", "-n", ns, "--ttl", "soon", "-o", "OUT"], 2),
        ("bad --request-timeout", ["capture", "web", "-n", ns, "--request-timeout", "abc", "-o", "OUT"], 2),
        ("unknown flag", ["capture", "web", "-n", ns, "--nosuch", "-o", "OUT"], 2),
        ("missing POD", ["capture", "-n", ns, "-o", "OUT"], 2),
        ("unknown command", ["frobnicate"], 2),
        ("bad -v level", ["capture", "web", "-n", ns, "-v=abc", "-o", "OUT"], 2),
        ("unknown context", ["capture", "web", "-n", ns, "--context", "nosuch", "-o", "OUT"], 2),
        ("--summary json with -o -", ["capture", "web", "-n", ns, "--summary", "json", "-o", "-"], 2),
        ("nodelogs bad --via", ["nodelogs", "web", "-n", ns, "--via", "nosuch", "-o", "OUT"], 2),
        ("nodelogs bad --since", ["nodelogs", "web", "-n", ns, "--since", "abc", "-o", "OUT"], 2),
        ("nodelogs bad --since-time", ["nodelogs", "web", "-n", ns, "--since-time", "yesterday", "-o", "OUT"], 2),
        ("gc -A with -n", ["gc", "-A", "-n", ns], 2),
        ("pod not found", ["capture", "nosuch", "-n", ns, "-o", "OUT"], 3),
        ("namespace not found", ["capture", "web", "-n", "nosuch-ns-x", "-o", "OUT"], 3),
        ("container not found", ["capture", "web", "-n", ns, "-c", "nosuch", "-o", "OUT"], 3),
        ("trace: no such process", ["trace", "web", "-n", ns, "--process", "nosuchprocessname", "-o", "OUT"], 3),
        ("nodelogs: pod not found", ["nodelogs", "nosuch", "-n", ns, "-o", "OUT"], 3),
        ("nodelogs: node pod namespace not found", ["nodelogs", "web", "-n", ns, "--via", "pod", "--pod-namespace",
                                                    "nosuch-ns-x", "-o", "OUT"], 3),
        ("invalid capture filter", ["capture", "web", "-n", ns, "-f", "port 80 and (", "-o", "OUT"], 6),
        ("output exists", ["capture", "web", "-n", ns, "-o", "EXISTING_FILE"], 8),
        ("output directory missing", ["capture", "web", "-n", ns, "-o", "/nonexistent-dir/x.pcap"], 8),
        ("nodelogs output exists", ["nodelogs", "web", "-n", ns, "-o", "EXISTING_DIR"], 8),
        ("API server unreachable", ["capture", "web", "-n", ns, "-o", "OUT", "UNREACHABLE"], 7),
    ]
