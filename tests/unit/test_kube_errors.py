"""Error answers of the API server (bodies as recorded from a real v1.33 server) become our errors."""

import json

import pytest

from kubectl_debugx.errors import ExitCode
from kubectl_debugx.kube.client import api_error
from kubectl_debugx.remote import ephemeral

NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": 'pods "nosuchpod" not found', "reason": "NotFound",
             "details": {"name": "nosuchpod", "kind": "pods"}, "code": 404}
RBAC = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "nginx" is forbidden: User "system:serviceaccount:rec:limited" cannot patch resource '
                   '"pods/ephemeralcontainers" in API group "" in the namespace "rec"',
        "reason": "Forbidden", "details": {"name": "nginx", "kind": "pods"}, "code": 403}
PSA = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
       "message": 'pods "nginx" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
                  '(container "debugx-psa-a" must not include "NET_ADMIN", "NET_RAW" in '
                  'securityContext.capabilities.add)',
       "reason": "Forbidden", "details": {"name": "nginx", "kind": "pods"}, "code": 403}


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [(404, NOT_FOUND, ExitCode.NOT_FOUND), (403, RBAC, ExitCode.FORBIDDEN), (403, PSA, ExitCode.FORBIDDEN),
     (422, {"message": "Pod \"nginx\" is invalid", "reason": "Invalid"}, ExitCode.USAGE),
     (500, {"message": "boom"}, ExitCode.NOT_READY)],
)
def test_status_bodies_translate_to_our_errors(status, body, code):
    error = api_error(status, json.dumps(body).encode())
    assert (type(error).__name__, error.code, error.args[0], error.status, error.body, error.reason) == (
        "ApiError", code, body["message"], status, body, body.get("reason", "")
    )


def test_a_plain_text_body_is_kept_as_the_message():
    error = api_error(500, b'container not found ("debugx-done1")\n')
    assert (error.args[0], error.body) == ('container not found ("debugx-done1")',
                                           {"message": 'container not found ("debugx-done1")'})


def test_refusals_are_explained_in_one_line():
    psa = ephemeral.explain_forbidden(api_error(403, json.dumps(PSA).encode()), "netadmin", "try X")
    assert psa.args[0] == (
        'Pod Security refuses the debug container with profile netadmin: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "debugx-psa-a" must not include "NET_ADMIN", "NET_RAW" in '
        "securityContext.capabilities.add); try X"
    )
    rbac = ephemeral.explain_forbidden(api_error(403, json.dumps(RBAC).encode()), "netadmin", "try X")
    assert rbac.args[0] == RBAC["message"] + (
        " (needs patch on pods/ephemeralcontainers, get and create on pods/exec)"
    )
    assert psa.code == rbac.code == ExitCode.FORBIDDEN
