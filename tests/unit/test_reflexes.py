"""kubectl reflexes (cli/reflexes.py, cli/main.py): --dry-run=MODE, -it refused, -o json|yaml, help CMD,
version --client, and every --help with its examples."""

from __future__ import annotations

import json
import platform
import sys

import pytest
import yaml

from kubectl_debugx import __version__, cli, summary
from kubectl_debugx.cli import reflexes
from kubectl_debugx.cli.main import version_object
from kubectl_debugx.errors import UsageError
from kubectl_debugx.kube import client
from kubectl_debugx.talk import Talk, render

CAPTURE = {"-i": True, "--interface": True, "-f": True, "-o": True, "--dry-run": False, "--force": False}
TRACE = {"-e": True, "-o": True, "--dry-run": False}


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach a cluster: a Kube made is a failure (a refusal comes before any)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Kube was made")

    monkeypatch.setattr(client, "Kube", refuse)


@pytest.mark.parametrize(("words", "expected"), [
    (["web"], (["web"], None)),
    (["web", "--dry-run"], (["web", "--dry-run"], "client")),
    (["web", "--dry-run=client"], (["web", "--dry-run"], "client")),
    (["web", "--dry-run=server", "-o", "x"], (["web", "--dry-run", "-o", "x"], "server")),
    (["web", "--dry-run=none"], (["web"], "none")),
    (["--dry-run=client", "web", "--dry-run=none"], (["web"], "none")),  # the last one wins, as in kubectl
    (["--dry-run=none", "web", "--dry-run"], (["--dry-run", "web"], "client")),
    # a value of another option, and what follows --, are not flags
    (["web", "-f", "--dry-run=bogus"], (["web", "-f", "--dry-run=bogus"], None)),
    (["web", "--", "--dry-run=bogus"], (["web", "--", "--dry-run=bogus"], None)),
])
def test_kubectl_dry_run_modes(words: list[str], expected: tuple[list[str], str | None]) -> None:
    assert reflexes.dry_run(words, CAPTURE) == expected


def test_dry_run_refuses_another_mode_and_leaves_commands_without_it_alone() -> None:
    with pytest.raises(UsageError) as e:
        reflexes.dry_run(["web", "--dry-run=true"], CAPTURE)
    assert str(e.value) == ('invalid --dry-run value "true": must be "none", "server", or "client" (as kubectl\'s; '
                            "--dry-run alone is client)")
    assert reflexes.dry_run(["web", "--dry-run=server"], {"-c": True}) == (["web", "--dry-run=server"], None)


CAPTURE_LINE = ("kubectl debugx capture is not interactive (no -i/--stdin, -t/--tty: it opens no terminal "
                "session); here -i is the interface to capture on (-i eth0, default any)")
TRACE_LINE = ("kubectl debugx trace is not interactive (no -i/--stdin, -t/--tty: it opens no terminal session); "
              "its output goes to -o or stdout, its talk to stderr")


@pytest.mark.parametrize(("command", "words", "message"), [
    ("capture", ["web", "-it"], f"-it: {CAPTURE_LINE}"),
    ("capture", ["-ti", "web"], f"-ti: {CAPTURE_LINE}"),
    ("capture", ["web", "-i", "-t"], f"-i -t: {CAPTURE_LINE}"),
    ("capture", ["web", "--interface", "--tty"], f"--interface --tty: {CAPTURE_LINE}"),
    ("capture", ["web", "--stdin"], f"--stdin: {CAPTURE_LINE}"),
    ("capture", ["web", "--tty=true"], f"--tty=true: {CAPTURE_LINE}"),
    ("trace", ["web", "-i"], f"-i: {TRACE_LINE}"),
    ("trace", ["web", "-t"], f"-t: {TRACE_LINE}"),
])
def test_interactive_flags_are_refused_with_a_hint(command: str, words: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        reflexes.refuse_interactive(command, words, CAPTURE if command == "capture" else TRACE)
    assert str(e.value) == message


def test_an_interface_or_a_value_that_looks_interactive_is_not_refused() -> None:
    for words in (["web", "-i", "eth0"], ["web", "-ieth0"], ["web", "-i", "tun0"], ["web", "-f", "-it"],
                  ["web", "--", "-it"]):
        reflexes.refuse_interactive("capture", words, CAPTURE)


def test_refusals_come_before_anything_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["capture", "web", "-it"]) == 2
    assert capsys.readouterr() == ("", f"error: -it: {CAPTURE_LINE}\n")
    assert cli.main(["-n", "shop", "trace", "web", "--dry-run=sever"]) == 2
    assert capsys.readouterr() == ("", 'error: invalid --dry-run value "sever": must be "none", "server", or '
                                   '"client" (as kubectl\'s; --dry-run alone is client)\n')
    assert cli.main(["doctor", "web", "-o", "json", "--summary", "json"]) == 2
    out, err = capsys.readouterr()
    assert err == "error: -o json and --summary json both print the data object on stdout: give one\n"


def test_the_summary_object_as_kubectl_output_formats() -> None:
    data = {"command": "gc", "found": [{"pod": "web", "kind": "tool"}], "exitCode": 0}
    assert render(data) == '{"command": "gc", "exitCode": 0, "found": [{"kind": "tool", "pod": "web"}]}\n'
    assert render(data, "json") == json.dumps(data, indent=4, sort_keys=True) + "\n"
    assert render(data, "yaml") == ("command: gc\nexitCode: 0\nfound:\n- kind: tool\n  pod: web\n")
    assert yaml.safe_load(render(data, "yaml")) == data


def test_o_json_is_the_same_object_as_summary_json(capsys: pytest.CaptureFixture[str]) -> None:
    for data_format in ("line", "json", "yaml"):
        talk = Talk(json_summary=True, command="gc", data_format=data_format)
        talk.record(namespace="shop", found=[], allNamespaces=False, dryRun=True)
        talk.emit_summary(0)
    line, indented_and_yaml = capsys.readouterr().out.split("\n", 1)
    expected = {**summary.new("gc"), "namespace": "shop", "found": [], "allNamespaces": False, "dryRun": True,
                "exitCode": 0}
    assert json.loads(line) == expected
    assert indented_and_yaml == render(expected, "json") + render(expected, "yaml")


def test_version_object_has_kubectls_shape() -> None:
    client_version = {"major": "0", "minor": "1", "gitVersion": f"v{__version__}",
                      "platform": f"{sys.platform}/{platform.machine().lower()}",
                      "pythonVersion": platform.python_version()}
    assert __version__ == "0.1.0"
    server = {"major": "1", "minor": "33", "gitVersion": "v1.33.1"}
    assert version_object(server) == {"clientVersion": client_version, "serverVersion": server}
    assert version_object(None) == {"clientVersion": client_version}


def test_version_client_asks_no_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version", "--client"]) == 0
    assert capsys.readouterr() == (f"Client Version: v{__version__}\n", "")
    assert cli.main(["version", "--client", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == version_object(None)
    assert cli.main(["version", "--client", "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == version_object(None)


def test_help_command_is_the_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    for words in (["capture"], ["gc"], ["version"], []):
        assert cli.main(["help", *words]) == 0
        by_help = capsys.readouterr()
        assert cli.main([*words, "--help"]) == 0
        assert by_help == capsys.readouterr()
    assert cli.main(["help", "nope"]) == 2
    assert capsys.readouterr().err == "error: unknown command 'nope' for kubectl debugx (see 'kubectl debugx --help')\n"


def test_every_help_has_examples_and_the_command_list_whole_sentences(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listing = capsys.readouterr().out.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    assert names == ["capture", "trace", "cp", "shell", "nodelogs", "doctor", "gc", "version", "help", "completion"]
    assert "..." not in listing and all(line.endswith(".") for line in listing.splitlines() if line.strip())
    for name in names:
        assert cli.main([name, "--help"]) == 0
        text = capsys.readouterr().out
        examples = text.split("  Examples:\n\n", 1)[1]
        assert "    kubectl debugx " in examples or "    source <(kubectl-debugx" in examples, name


@pytest.mark.parametrize("flags", [["-it"], ["-ti"], ["-i", "-t"], ["--stdin", "--tty"], ["-t"]])
def test_shell_takes_kubectl_exec_interactive_flags_and_drops_them(flags: list[str]) -> None:
    """shell opens a terminal by itself: kubectl exec's -it is what it does anyway (after `--` they are the
    command's)."""
    import typer

    from kubectl_debugx.cli.main import kubectl_reflexes

    command = typer.main.get_command(cli.app)
    argv, _ = kubectl_reflexes(["shell", *flags, "web", "--", "ls", "-i"], command)
    assert argv == ["shell", "web", "--", "ls", "-i"]
