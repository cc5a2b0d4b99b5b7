"""The CLI's one place for errors: one stderr line, the documented exit code, a JSON summary when asked."""

import json

import pytest

from kubectl_debugx import cli, summary
from kubectl_debugx.commands import capture_pods
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
from kubectl_debugx.kube import apierrors, client, config
from kubectl_debugx.kube.apierrors import api_error


def test_json_summary_refused_when_stdout_carries_the_data(capsys):
    assert cli.main(["capture", "web", "-o", "-", "--summary", "json"]) == 2
    out, err = capsys.readouterr()
    message = "--summary json needs -o FILE: with -o - stdout carries the data"
    assert json.loads(out) == {**summary.new("capture"), "pod": "web", "output": "-", "error": message,
                               "exitCode": 2}
    assert err == f"error: {message}\n"


def test_bad_value_is_one_line_and_exit_2(capsys, tmp_path):
    assert cli.main(["capture", "web", "--duration", "ten", "-o", str(tmp_path / "x.pcap")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: --duration: invalid duration 'ten' (examples: 30s, 5m, 1h30m)\n")
    assert not (tmp_path / "x.pcap").exists()


@pytest.mark.parametrize(("argv", "line"), [
    (["capture", "web", "--duration", "10"], 'error: --duration: missing unit in "10": 10s? 10m?\n'),
    (["trace", "web", "--ttl", "10"], 'error: --ttl: missing unit in "10": 10s? 10m?\n'),
    (["nodelogs", "web", "--since", "10"], 'error: --since: missing unit in "10": 10s? 10m?\n'),
    (["capture", "web", "-o", "json"], "error: -o names the output file here; for a JSON summary use --summary json "
                                       "(to write a file named json, say -o ./json)\n"),
    (["trace", "web", "--output", "yaml"], "error: -o names the output file here; the summary format is --summary "
                                           "json or --summary text (to write a file named yaml, say -o ./yaml)\n"),
    (["nodelogs", "web", "-o", "wide"], "error: -o names the output directory here; the summary format is "
                                        "--summary json or --summary text (to write a directory named wide, say "
                                        "-o ./wide)\n"),
    (["capture", "web", "--foo"], "error: no such option: --foo (Possible options: --follow, --force) "
                                  "(see 'kubectl debugx capture --help')\n"),
    (["capture"], "error: missing argument 'TARGET': POD, TYPE/NAME or -l SELECTOR (see "
                  "'kubectl debugx capture --help')\n"),
    (["capture", "web", "--count", "x"], "error: invalid value for '--count': 'x' is not a valid int "
                                         "(see 'kubectl debugx capture --help')\n"),
    (["capture", "web", "--summary", "xml"], "error: invalid value for '--summary': 'xml' is not one of 'text', "
                                             "'json' (see 'kubectl debugx capture --help')\n"),
    (["capture", "web", "-v=x"], "error: -v: the log level is a number (as kubectl's -v=6), got 'x'\n"),
    (["nodelogs", "web", "--tail", "5"], "error: --tail only applies with --follow\n"),
    (["nodelogs", "deploy/web", "-f", "-o", "logs"], "error: --follow cannot be used with -o/--output: it prints the "
                                                     "lines on stdout (redirect it to keep them); -o copies the files "
                                                     "once\n"),
    (["nodelogs", "web", "-f", "--duration", "10"], 'error: --duration: missing unit in "10": 10s? 10m?\n'),
    (["trace", "web", "--output-file", "t"], "error: no such option: --output-file (Possible options: --output, "
                                             "--profile) "
                                             "(see 'kubectl debugx trace --help')\n"),
])
def test_usage_errors_are_one_lowercase_error_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, line):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == ExitCode.USAGE
    assert capsys.readouterr() == ("", line)
    assert list(tmp_path.iterdir()) == []


def test_o_names_a_file_called_json_when_asked_so(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    fail_with(monkeypatch, NotFound("gone"))
    assert cli.main(["capture", "web", "-o", "./json"]) == ExitCode.NOT_FOUND
    assert capsys.readouterr() == ("", "error: gone\n")


@pytest.mark.parametrize(("words", "level"), [
    (["-v=6"], 6), (["--v=6"], 6), (["-v", "6"], 6), (["--v", "3"], 3), (["-v"], 1), (["--debug"], 1),
    (["-v6"], 6), ([], 0), (["-v=0"], 0),
])
def test_kubectl_verbosity_reaches_the_client(monkeypatch, capsys, tmp_path, words, level):
    seen = []

    def run(kube, opts, ref, max_pods, talk):
        seen.append(kube.flags.verbosity)
        return 0

    monkeypatch.setattr(client, "Kube", NoCluster)
    monkeypatch.setattr(capture_pods, "run", run)
    assert cli.main(["capture", "web", *words, "-o", str(tmp_path / "x.pcap")]) == 0, capsys.readouterr().err
    assert seen == [level]


def test_verbosity_shows_tracebacks_of_unexpected_errors_only(monkeypatch, capsys, tmp_path):
    fail_with(monkeypatch, RuntimeError("bug"))
    assert cli.main(["capture", "web", "-v=6", "-o", str(tmp_path / "x.pcap")]) == ExitCode.ERROR
    assert "Traceback" in capsys.readouterr().err
    fail_with(monkeypatch, NotFound("gone"))
    assert cli.main(["capture", "web", "-v=6", "-o", str(tmp_path / "x.pcap")]) == ExitCode.NOT_FOUND
    assert capsys.readouterr().err == "error: gone\n"


def test_unreadable_kubeconfig_is_a_usage_error_with_json(capsys, tmp_path):
    missing = tmp_path / "nope"
    code = cli.main(["trace", "web", "--kubeconfig", str(missing), "--summary", "json", "-o", str(tmp_path / "t")])
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out)["exitCode"] == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_missing_argument_is_exit_2(capsys):
    assert cli.main(["capture"]) == 2
    assert "missing argument" in capsys.readouterr().err


class NoCluster:
    """Stands for Kube: the command's work is replaced, so nothing is asked of it."""

    namespace = "default"

    def __init__(self, flags: config.KubeFlags) -> None:
        self.flags = flags

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, object]:
        """After `pods "web" not found`, the workloads and the service a bare name may have meant."""
        if (resource, name) in {("deployments", "web"), ("services", "web")}:
            return {"metadata": {"name": name}}
        raise NotFound(f'{resource} "{name}" not found')


def fail_with(monkeypatch, error: BaseException) -> None:
    def run(kube, opts, ref, max_pods, talk):
        talk.record(pod=opts.pod)
        raise error

    monkeypatch.setattr(client, "Kube", NoCluster)
    monkeypatch.setattr(capture_pods, "run", run)


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [(api_error(403, json.dumps({"message": 'pods "web" is forbidden', "reason": "Forbidden"})),
      'error: pods "web" is forbidden\n', ExitCode.FORBIDDEN),
     (api_error(404, json.dumps({"message": 'pods "web" not found', "reason": "NotFound"})),
      'error: pods "web" not found; did you mean deploy/web or svc/web?\n', ExitCode.NOT_FOUND),
     (api_error(409, json.dumps({"message": 'pods "x" already exists', "reason": "AlreadyExists"})),
      'error: pods "x" already exists\n', ExitCode.USAGE),
     (api_error(503, json.dumps({"message": "error trying to reach service: EOF"})),
      "error: error trying to reach service: EOF\n", ExitCode.NOT_READY),
     (api_error(401, json.dumps({"message": "Unauthorized", "reason": "Unauthorized"})),
      "error: you must be logged in to the server (Unauthorized)\n", ExitCode.UNAUTHORIZED),
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
    result = cli.main(["capture", "web", "-o", str(tmp_path / "x.pcap"), "--summary", "json"])
    out, err = capsys.readouterr()
    message = line.removeprefix("error: ").removesuffix(" (run with -v for details)\n").removesuffix("\n")
    assert (result, err, json.loads(out)) == (code, line, {
        **summary.new("capture"), "pod": "web", "namespace": "default", "output": str(tmp_path / "x.pcap"),
        "error": message, "exitCode": code})


def test_an_api_error_is_caught_by_what_it_is(monkeypatch, capsys, tmp_path):
    try:
        raise api_error(403, json.dumps({"message": "no", "reason": "Forbidden"}))
    except Forbidden as e:
        caught: Forbidden = e
    assert isinstance(caught, apierrors.ApiError)
    assert (type(caught), caught.status, caught.reason, str(caught), caught.code) == (
        apierrors.ApiForbidden, 403, "Forbidden", "no", ExitCode.FORBIDDEN)
    fail_with(monkeypatch, caught)
    assert cli.main(["capture", "web", "-o", str(tmp_path / "y.pcap")]) == ExitCode.FORBIDDEN
    assert capsys.readouterr() == ("", "error: no\n")


def test_runs_share_no_state(monkeypatch, capsys, tmp_path):
    """A run with --summary json leaves nothing for the next one: an error before its talk prints no summary."""
    fail_with(monkeypatch, NotFound("gone"))
    assert cli.main(["capture", "web", "-o", str(tmp_path / "a.pcap"), "--summary", "json"]) == ExitCode.NOT_FOUND
    capsys.readouterr()
    assert cli.main(["capture", "web", "--summary", "xml"]) == ExitCode.USAGE
    assert capsys.readouterr() == ("", "error: invalid value for '--summary': 'xml' is not one of 'text', 'json' "
                                       "(see 'kubectl debugx capture --help')\n")
