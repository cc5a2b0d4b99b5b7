"""Round-2 contract, access reviews (22-create-*, 22-ssar-*): what `doctor` and every refusal rely on.

The recorded scenario, replayed in a fresh namespace standing for rec2-auth: ServiceAccount limited, Role
pod-reader (get/list/watch pods) and its RoleBinding, then SelfSubjectAccessReviews as admin and as the
ServiceAccount. Compared: the status code, the review's spec, and its status exactly (allowed, and the reason
naming the binding when the ServiceAccount is allowed; nothing else when denied). The admin of the recording
used a system:masters client certificate, ours a token: both are system:masters, which gets no reason.
SelfSubjectRulesReview (22-ssrr-*) is not used by debugx and stays in test_contract's ROUND_2 skip list.
"""

from __future__ import annotations

import json

import pytest

from .test_contract import ACCESS_CASES, ALL_CASES, Replay, compare_http

RECORDED_NAMESPACE = "rec2-auth"
SETUP = ["22-create-serviceaccount-limited", "22-create-role-pod-reader", "22-create-rolebinding-pod-reader"]
SSAR_CASES = [c for c in ALL_CASES if c["case"].startswith("22-ssar-") and c.get("request")]


@pytest.fixture(scope="module")
def access(e2e):
    """(replay client, namespace, ServiceAccount token) once the recorded setup cases have been replayed."""
    if e2e.cluster is None:
        pytest.skip("the contract replay runs against the local test cluster only")
    import secrets

    namespace = f"e2e-rec2-auth-{secrets.token_hex(3)}"
    e2e.kubectl("create", "namespace", namespace)
    r = Replay(e2e)
    try:
        setup = {c["case"]: c for c in ALL_CASES if c["case"] in SETUP}
        for name in SETUP:
            case = _here(setup[name], namespace)
            compare_http(r, case, r.request(case))
        answer = r.http.post(f"{r.server}/api/v1/namespaces/{namespace}/serviceaccounts/limited/token",
                             json={"spec": {"expirationSeconds": 600}},
                             headers={"Authorization": f"Bearer {r.admin_token}"}, timeout=30)
        assert answer.status_code == 201, answer.text
        yield r, namespace, answer.json()["status"]["token"]
    finally:
        r.close()
        e2e.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


def _here(case: dict, namespace: str) -> dict:
    """The case with the recorded namespace replaced by ours (paths, bodies, reasons)."""
    return json.loads(json.dumps(case).replace(RECORDED_NAMESPACE, namespace))


# One xdist worker for all: they share the recorded setup (`access`, module-scoped), made once.
@pytest.mark.xdist_group("contract-access")
@pytest.mark.e2e
@pytest.mark.parametrize("case", SSAR_CASES, ids=lambda c: c["case"])
def test_ssar_case(access, case: dict) -> None:
    r, namespace, sa_token = access
    case = _here(case, namespace)
    token = sa_token if "as SA " in case["what"] else r.admin_token
    body = r.subst_obj(case["request"]["body"])
    resp = r.http.post(r.server + case["request"]["path"], json=body, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    recorded = case["response"]
    assert resp.status_code == recorded["status"], resp.text
    ours = resp.json()
    assert ours["spec"] == r.subst_obj(recorded["body"]["spec"])
    assert ours["status"] == recorded["body"]["status"]


def test_the_recorded_summary_table_is_what_the_cases_hold() -> None:
    """22-ssar-summary (facts only) agrees with the cases replayed above, so replaying them covers it."""
    [summary] = [c for c in ALL_CASES if c["case"] == "22-ssar-summary"]
    cases = {c["case"]: c for c in SSAR_CASES}
    for row in summary["facts"]["table"]:
        case = cases[f"22-ssar-{row['user']}-{row['check']}"]
        assert (case["response"]["status"], case["response"]["body"]["status"]) == (row["http"], row["status"])


def test_every_replayed_case_is_here() -> None:
    names = {c["case"] for c in ALL_CASES if ACCESS_CASES.match(c["case"])}
    assert names == set(SETUP) | {c["case"] for c in SSAR_CASES} | {"22-ssar-summary"}, names
