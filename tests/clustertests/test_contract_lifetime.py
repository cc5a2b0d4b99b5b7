"""Round-2 contract, what ends an exec'd process besides its client (recordings/README.md, "Surprises (round 2)").

25-ec-lifetime-*: an ephemeral container whose main process ends (sleep, or `sleep; exit 3`), targeted or not,
with two execs `sh -c "sleep 300; echo after # TAG"` (v5 and v4) into it. Replayed with the recorded names,
commands and tags (so the status texts compare byte for byte), the main process shortened to SHORT seconds.
Compared: every exec'd process is SIGKILLed when the main process exits, so each exec gets the channel-3
NonZeroExitCode 137 status (v5: "command terminated with exit code 137"; v4: "error executing command [...]")
then close 1000, within a second of the container's end and not before it; the watcher container (sharing the
target's PID namespace) sees no `sleep 300` left; the container's terminated status (Completed 0 / Error 3)
has the shape of 25-get-pod-life-final's; then 25-exec-into-exited-*: a later exec into it is, on v5, a 101
whose channel-3 Status is 500 `container not found ("NAME")` and close 1000, on v4 a plain HTTP 500.

28-*-exec-streams-during-pod-delete: four exec streams (tcpdump -w - in ephemeral container cap, v5 with a
curl loop, v4, v5; `sleep 300` in nginx, v5), then a DELETE of the pod with its default grace (28-*-delete-pod:
the answer's shape, deletionGracePeriodSeconds). Compared: the channels used, the exact channel-3 status
(exit 137) and close 1000 of every stream, and when each ended after the DELETE: within ~100 ms as recorded
(here within FAST s) for the targeted container even when it ignores TERM, and for nginx; through the grace
period (here within SLOW_MARGIN s of it) for an untargeted container that ignores TERM.
"""

from __future__ import annotations

import threading
import time

import pytest

from .test_contract import ALL_CASES, Replay, compare_exec, ec_state, shape_diff

pytestmark = pytest.mark.e2e
SHORT = 5  # seconds: the recorded main processes slept 15-20 s
FAST = 1.5  # seconds: recorded 0.03-0.09 s after the DELETE (or the main process's exit)
SLOW_MARGIN = 3.0  # seconds around the grace period: recorded 10.05 s for a 10 s grace
LIFETIME_CASES = [c for c in ALL_CASES if c["case"].startswith("25-ec-lifetime-")]
DELETE_CASES = [c for c in ALL_CASES if c["case"].endswith("-exec-streams-during-pod-delete")]
FINAL_POD = next(c for c in ALL_CASES if c["case"] == "25-get-pod-life-final")["response"]["body"]


def _case(name: str) -> dict:
    return next(c for c in ALL_CASES if c["case"] == name)


class Stream(threading.Thread):
    """One exec (a recorded request, in our pod), run to its end in a thread; `ended` is when it closed."""

    def __init__(self, replay: Replay, namespace: str, pod: str, request: dict) -> None:
        super().__init__(daemon=True)
        query = {k: v for k, v in request["query"].items()}
        self.case = {"what": "", "request": {**request, "path": f"/api/v1/namespaces/{namespace}/pods/{pod}/exec",
                                             "query": query}}
        self.replay = replay
        self.result: dict = {}
        self.ended = 0.0
        self.start()

    def run(self) -> None:
        self.result = self.replay.exec_ws(self.case)
        self.ended = time.monotonic()


def _debug(e2e, namespace: str, pod: str, name: str, command: list[str], targeted: bool) -> None:
    target = ["--target=nginx"] if targeted else []
    e2e.kubectl("debug", "-n", namespace, pod, f"--image={e2e.image}", *target, "-c", name, "--profile=baseline",
                "--", *command)


def _shortened(command: list[str]) -> list[str]:
    return [part.replace("sleep 15", f"sleep {SHORT}").replace("20", str(SHORT)) for part in command]


@pytest.mark.parametrize("case", LIFETIME_CASES, ids=lambda c: c["case"])
def test_ec_lifetime_case(case: dict, e2e, nginx_pod) -> None:
    if e2e.cluster is None:
        pytest.skip("the contract replay runs against the local test cluster only")
    facts = case["facts"]
    ec = facts["ephemeral_container"]
    name, targeted = ec["name"], "targetContainerName" in ec
    namespace, pod = nginx_pod
    r = Replay(e2e)
    try:
        _debug(e2e, namespace, pod, "watcher", ["sleep", "3600"], True)
        _debug(e2e, namespace, pod, name, _shortened(ec["command"]), targeted)
        running = r.wait_pod(namespace, pod, lambda p: (ec_state(p, name) or {}).get("running") is not None,
                             what=f"{name} running")
        seen_running = time.monotonic()
        started = ec_state(running, name)["running"]["startedAt"]
        sessions = facts["exec_sessions_into_it"]
        streams = [Stream(r, namespace, pod, s["request"]) for s in sessions]
        done = r.wait_pod(namespace, pod, lambda p: (ec_state(p, name) or {}).get("terminated") is not None,
                          timeout=SHORT + 30, what=f"{name} terminated")
        seen_done = time.monotonic()
        for stream, session in zip(streams, sessions, strict=True):
            stream.join(FAST + 5)
            assert not stream.is_alive(), f"the {session['protocol']} exec outlived its container's main process"
            assert seen_running + SHORT - FAST - 1 < stream.ended < seen_done + FAST, (
                f"{session['protocol']} exec ended {stream.ended - seen_done:+.2f}s from the container's end")
            recorded = {"response": session["response"], "close": session["close"], "frames": session["frames"]}
            compare_exec(r, recorded, stream.result)
        if targeted:  # the watcher shares the target's PID namespace, where the exec'd processes ran
            ps = e2e.kubectl("exec", "-n", namespace, pod, "-c", "watcher", "--", "ps", "-eo", "args").stdout
            assert "sleep 300" not in ps, ps
        # the terminated status, as the final GET of the recording shows it
        ours = ec_state(done, name)
        [theirs] = [s["state"] for s in FINAL_POD["status"]["ephemeralContainerStatuses"] if s["name"] == name]
        assert shape_diff(theirs, ours) == []
        fields = ("exitCode", "reason")
        assert {k: ours["terminated"][k] for k in fields} == {k: theirs["terminated"][k] for k in fields}
        assert {k: ours["terminated"][k] for k in fields} == {k: facts["ec_status_after_exit"]["state"][
            "terminated"][k] for k in fields}
        assert ours["terminated"]["startedAt"] == started
        # a later exec into it (25-exec-into-exited-*)
        suffix = case["case"].removeprefix("25-ec-lifetime-")
        for protocol in ("v5v4", "v4"):
            later = _case(f"25-exec-into-exited-ec-{suffix}-{protocol}")
            res = Stream(r, namespace, pod, later["request"])
            res.join(30)
            compare_exec(r, later, res.result)
    finally:
        r.close()


def _stream_requests(case: dict) -> dict[str, dict]:
    return {key: s["request"] for key, s in case["facts"]["streams"].items()}


@pytest.mark.parametrize("case", DELETE_CASES, ids=lambda c: c["case"])
def test_pod_delete_during_exec_case(case: dict, e2e, namespace, make_pod) -> None:
    if e2e.cluster is None:
        pytest.skip("the contract replay runs against the local test cluster only")
    facts = case["facts"]
    grace = facts["terminationGracePeriodSeconds"]
    ec = facts.get("ephemeral_container") or {"command": facts["ephemeral_container_command"],
                                              "targetContainerName": "nginx"}
    targeted = "targetContainerName" in ec
    pod = make_pod(namespace, "victim", terminationGracePeriodSeconds=grace)["metadata"]["name"]
    r = Replay(e2e)
    try:
        _debug(e2e, namespace, pod, "cap", ec["command"], targeted)
        r.wait_pod(namespace, pod, lambda p: (ec_state(p, "cap") or {}).get("running") is not None,
                   what="cap running")
        streams = {key: Stream(r, namespace, pod, request) for key, request in _stream_requests(case).items()}
        time.sleep(3)  # the recorded streams ran ~4.4 s before the DELETE
        assert all(s.is_alive() for s in streams.values()), {k: s.result for k, s in streams.items()}
        delete_case = _case(case["case"].replace("-exec-streams-during-pod-delete", "-delete-pod"))
        answer = r.request({**delete_case, "request": {**delete_case["request"],
                                                       "path": f"/api/v1/namespaces/{namespace}/pods/{pod}"}})
        deleted = time.monotonic()
        assert answer.status_code == delete_case["response"]["status"]
        recorded_pod, ours = delete_case["response"]["body"], answer.json()
        assert ours["metadata"]["deletionGracePeriodSeconds"] == recorded_pod["metadata"][
            "deletionGracePeriodSeconds"] == grace
        # (our test pod carries the fixture's labels; the recorded one had none)
        assert [d for d in shape_diff(recorded_pod["metadata"], ours["metadata"])
                if "managedFields" not in d and "labels" not in d] == []
        for key, stream in streams.items():
            recorded = facts["streams"][key]
            stream.join(grace + SLOW_MARGIN + 5)
            assert not stream.is_alive(), f"{key} still open {time.monotonic() - deleted:.1f}s after the DELETE"
            after, when = stream.ended - deleted, recorded["ended_at_s_after_delete"]
            if when < 1:
                assert after < FAST, f"{key} ended {after:.2f}s after the DELETE (recorded {when:.3f}s)"
            else:
                assert abs(after - when) < SLOW_MARGIN, f"{key} ended {after:.2f}s after the DELETE (recorded {when}s)"
            # the channels used, the channel-3 status byte for byte, close 1000 (not the packets, the traffic's)
            compare_exec(r, {"response": recorded["response"], "close": recorded["close"],
                             "frames": recorded["non_stdout_frames_and_empty_frames"]}, stream.result, content=False)
    finally:
        r.close()
