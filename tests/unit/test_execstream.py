import json

from kubectl_debugx.kube.execstream import ExecOutcome, parse_status

V5_EXIT3 = {
    "metadata": {}, "status": "Failure",
    "message": "command terminated with non-zero exit code: command terminated with exit code 3",
    "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}


def test_statuses_as_recorded():
    assert parse_status("v5.channel.k8s.io", json.dumps(V5_EXIT3).encode()) == ExecOutcome(
        3, V5_EXIT3["message"], "NonZeroExitCode"
    )
    assert parse_status("v4.channel.k8s.io", b'{"metadata":{},"status":"Success"}') == ExecOutcome(0)
    internal = {"metadata": {}, "status": "Failure", "message": "Internal error occurred: exec failed",
                "reason": "InternalError", "code": 500}
    assert parse_status("v5.channel.k8s.io", json.dumps(internal).encode()) == ExecOutcome(
        None, "Internal error occurred: exec failed", "InternalError"
    )


def test_legacy_protocol_text():
    text = b"command terminated with non-zero exit code: error executing command [sh], exit code 3"
    assert parse_status("", text) == ExecOutcome(3, text.decode(), "NonZeroExitCode")
    assert parse_status("", b"") == ExecOutcome(0)


def test_empty_status_on_a_channel_protocol_means_cut():
    assert parse_status("v4.channel.k8s.io", b"") == ExecOutcome(
        None, "the exec stream ended without an exit status", cut=True
    )
