"""Error answers of the API server (bodies as recorded from a real v1.33 server) become our errors."""

import json

import pytest

from kubectl_debugx.errors import DebugxError, ExitCode, Forbidden, NotFound, NotReady, UsageError
from kubectl_debugx.kube.client import (
    ApiBadRequest,
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiNotFound,
    ApiServerError,
    api_error,
)
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
    ("status", "body", "kind", "base", "code"),
    [(404, NOT_FOUND, ApiNotFound, NotFound, ExitCode.NOT_FOUND),
     (403, RBAC, ApiForbidden, Forbidden, ExitCode.FORBIDDEN),
     (403, PSA, ApiForbidden, Forbidden, ExitCode.FORBIDDEN),
     (400, {"message": "bad patch", "reason": "BadRequest"}, ApiBadRequest, UsageError, ExitCode.USAGE),
     (422, {"message": "Pod \"nginx\" is invalid", "reason": "Invalid"}, ApiBadRequest, UsageError, ExitCode.USAGE),
     (409, {"message": 'pods "x" already exists', "reason": "AlreadyExists"}, ApiConflict, UsageError,
      ExitCode.USAGE),
     (500, {"message": "boom"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (502, {"message": "bad gateway"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (503, {"message": "error trying to reach service: EOF"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (504, {"message": "timeout"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (401, {"message": "Unauthorized", "reason": "Unauthorized"}, ApiError, DebugxError, ExitCode.ERROR),
     (410, {"message": "too old resource version", "reason": "Expired"}, ApiError, DebugxError, ExitCode.ERROR),
     (501, {"message": "not implemented"}, ApiError, DebugxError, ExitCode.ERROR)],
)
def test_status_bodies_translate_to_our_errors(status, body, kind, base, code):
    error = api_error(status, json.dumps(body).encode())
    assert (type(error), error.code, str(error), error.args, error.status, error.body, error.reason) == (
        kind, code, body["message"], (body["message"],), status, body, body.get("reason", "")
    )
    # Both an ApiError (callers check .status) and the matching error of errors.py (callers catch Forbidden...).
    assert isinstance(error, ApiError) and isinstance(error, base)


def test_only_the_error_classes_carry_exit_codes():
    assert [(kind.__name__, kind.code) for kind in
            (ApiError, ApiBadRequest, ApiForbidden, ApiNotFound, ApiConflict, ApiServerError)] == [
        ("ApiError", ExitCode.ERROR), ("ApiBadRequest", UsageError.code), ("ApiForbidden", Forbidden.code),
        ("ApiNotFound", NotFound.code), ("ApiConflict", UsageError.code), ("ApiServerError", NotReady.code),
    ]


def test_an_api_403_is_caught_as_forbidden():
    try:
        raise api_error(403, json.dumps(RBAC).encode())
    except Forbidden as e:
        caught: Forbidden = e
    assert isinstance(caught, ApiError)
    assert (type(caught), caught.status, caught.reason, str(caught), caught.code) == (
        ApiForbidden, 403, "Forbidden", RBAC["message"], ExitCode.FORBIDDEN
    )


def test_an_answer_without_body_or_status_is_a_plain_api_error():
    error = api_error(0, None)
    assert (type(error), str(error), error.status, error.body, error.reason, error.code) == (
        ApiError, "the server answered HTTP 0", 0, {}, "", ExitCode.ERROR
    )


def test_a_plain_text_body_is_kept_as_the_message():
    error = api_error(500, b'container not found ("debugx-done1")\n')
    assert (type(error), error.args, error.status, error.body, error.code) == (
        ApiServerError, ('container not found ("debugx-done1")',), 500,
        {"message": 'container not found ("debugx-done1")'}, ExitCode.NOT_READY,
    )


def test_refusals_are_explained_in_one_line():
    psa = ephemeral.explain_forbidden(api_error(403, json.dumps(PSA).encode()), "netadmin", "try X")
    assert psa.args[0] == (
        'Pod Security refuses the debug container with profile netadmin: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "debugx-psa-a" must not include "NET_ADMIN", "NET_RAW" in '
        "securityContext.capabilities.add); try X"
    )
    rbac = ephemeral.explain_forbidden(api_error(403, json.dumps(RBAC).encode()), "netadmin", "try X")
    assert rbac.args[0] == str(RBAC["message"]) + (
        " (needs patch on pods/ephemeralcontainers, get and create on pods/exec)"
    )
    assert psa.code == rbac.code == ExitCode.FORBIDDEN
