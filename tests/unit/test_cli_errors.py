"""The CLI's one place for errors: one stderr line, the documented exit code, a JSON summary when asked."""

import json

import pytest

from kubectl_debugx import cli
from kubectl_debugx.commands import capture
from kubectl_debugx.errors import (
    DebugxError,
    ExitCode,
    Forbidden,
    Interrupted,
    NotFound,
    NotReady,
    OutputError,
    RemoteFailed,
    Unreachable,
    UsageError,
)
from kubectl_debugx.kube import client
from kubectl_debugx.kube.client import api_error


def test_json_summary_refused_when_stdout_carries_the_data(capsys):
    assert cli.main(["capture", "web", "-o", "-", "--output", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "--output json needs -o FILE: with -o - stdout carries the data",
                               "exitCode": 2}
    assert err == "error: --output json needs -o FILE: with -o - stdout carries the data\n"


def test_bad_value_is_one_line_and_exit_2(capsys, tmp_path):
    assert cli.main(["capture", "web", "--duration", "ten", "-o", str(tmp_path / "x.pcap")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: --duration: invalid duration 'ten' (examples: 30s, 5m, 1h30m)\n")
    assert not (tmp_path / "x.pcap").exists()


def test_unreadable_kubeconfig_is_a_usage_error_with_json(capsys, tmp_path):
    missing = tmp_path / "nope"
    code = cli.main(["trace", "web", "--kubeconfig", str(missing), "--output", "json", "-o", str(tmp_path / "t")])
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out)["exitCode"] == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_missing_argument_is_exit_2(capsys):
    assert cli.main(["capture"]) == 2
    assert "Missing argument" in capsys.readouterr().err


class NoCluster:
    """Stands for Kube: the command's work is replaced, so nothing is asked of it."""

    def __init__(self, flags: client.KubeFlags) -> None:
        self.flags = flags


def fail_with(monkeypatch, error: BaseException) -> None:
    def run(kube, opts, talk):
        talk.record(pod=opts.pod)
        raise error

    monkeypatch.setattr(client, "Kube", NoCluster)
    monkeypatch.setattr(capture, "run", run)


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [(api_error(403, json.dumps({"message": 'pods "web" is forbidden', "reason": "Forbidden"})),
      'error: pods "web" is forbidden\n', ExitCode.FORBIDDEN),
     (api_error(404, json.dumps({"message": 'pods "web" not found', "reason": "NotFound"})),
      'error: pods "web" not found\n', ExitCode.NOT_FOUND),
     (api_error(409, json.dumps({"message": 'pods "x" already exists', "reason": "AlreadyExists"})),
      'error: pods "x" already exists\n', ExitCode.USAGE),
     (api_error(503, json.dumps({"message": "error trying to reach service: EOF"})),
      "error: error trying to reach service: EOF\n", ExitCode.NOT_READY),
     (api_error(401, json.dumps({"message": "Unauthorized", "reason": "Unauthorized"})),
      "error: Unauthorized\n", ExitCode.ERROR),
     (UsageError("bad"), "error: bad\n", ExitCode.USAGE),
     (NotFound("gone"), "error: gone\n", ExitCode.NOT_FOUND),
     (Forbidden("no"), "error: no\n", ExitCode.FORBIDDEN),
     (NotReady("later"), "error: later\n", ExitCode.NOT_READY),
     (RemoteFailed("tcpdump: syntax error"), "error: tcpdump: syntax error\n", ExitCode.REMOTE_FAILED),
     (Unreachable("cannot reach"), "error: cannot reach\n", ExitCode.UNREACHABLE),
     (OutputError("exists"), "error: exists\n", ExitCode.OUTPUT),
     (Interrupted("stopped by SIGINT"), "error: stopped by SIGINT\n", ExitCode.INTERRUPTED),
     (DebugxError("odd", ExitCode.TERMINATED), "error: odd\n", ExitCode.TERMINATED),
     (RuntimeError("bug"), "error: unexpected RuntimeError: bug (run with -v for details)\n", ExitCode.ERROR)],
)
def test_main_is_where_an_error_becomes_its_line_exit_code_and_summary(monkeypatch, capsys, tmp_path, error, line,
                                                                       code):
    fail_with(monkeypatch, error)
    result = cli.main(["capture", "web", "-o", str(tmp_path / "x.pcap"), "--output", "json"])
    out, err = capsys.readouterr()
    message = line.removeprefix("error: ").removesuffix(" (run with -v for details)\n").removesuffix("\n")
    assert (result, err, json.loads(out)) == (code, line, {"pod": "web", "error": message, "exitCode": code})


def test_an_api_error_is_caught_by_what_it_is(monkeypatch, capsys, tmp_path):
    try:
        raise api_error(403, json.dumps({"message": "no", "reason": "Forbidden"}))
    except Forbidden as e:
        caught: Forbidden = e
    assert isinstance(caught, client.ApiError)
    assert (type(caught), caught.status, caught.reason, str(caught), caught.code) == (
        client.ApiForbidden, 403, "Forbidden", "no", ExitCode.FORBIDDEN)
    fail_with(monkeypatch, caught)
    assert cli.main(["capture", "web", "-o", str(tmp_path / "y.pcap")]) == ExitCode.FORBIDDEN
    assert capsys.readouterr() == ("", "error: no\n")


def test_runs_share_no_state(monkeypatch, capsys, tmp_path):
    """A run with --output json leaves nothing for the next one: an error before its talk prints no summary."""
    fail_with(monkeypatch, NotFound("gone"))
    assert cli.main(["capture", "web", "-o", str(tmp_path / "a.pcap"), "--output", "json"]) == ExitCode.NOT_FOUND
    capsys.readouterr()
    assert cli.main(["capture", "web", "--output", "xml"]) == ExitCode.USAGE
    assert capsys.readouterr() == ("", "error: --output: must be text or json, got 'xml'\n")
