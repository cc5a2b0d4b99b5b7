"""The CLI's one place for errors: one stderr line, the documented exit code, a JSON summary when asked."""

import json

import pytest

from kubectl_debugx import cli


@pytest.fixture(autouse=True)
def fresh_state():
    cli._state.pop("talk", None)
    yield
    cli._state.pop("talk", None)


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
