import json

import pytest

from kubectl_debugx.commands.capture import CaptureOptions, TcpdumpTalk, count_lines, tcpdump_argv, validate
from kubectl_debugx.errors import Forbidden, UsageError
from tests.unit.fakekube import UnusedKube


def test_tcpdump_argv_defaults():
    assert tcpdump_argv(CaptureOptions(pod="web")) == [
        "tcpdump", "-U", "-p", "-B", "8192", "-w", "-", "-i", "any",
    ]


def test_tcpdump_argv_everything_and_filter_as_one_argument():
    opts = CaptureOptions(pod="web", interface="eth0", filter="tcp port 80 and host 10.0.0.1", snaplen=96,
                          count=10)
    assert tcpdump_argv(opts) == [
        "tcpdump", "-U", "-p", "-B", "8192", "-w", "-", "-i", "eth0", "-s", "96", "-c", "10",
        "--", "tcp port 80 and host 10.0.0.1",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"profile": "root"}, "--profile: unknown profile 'root'"),
        ({"count": 0}, "--count: must be a positive"),
        ({"snaplen": 300000}, "--snaplen: must be between"),
        ({"ttl": 5}, "--ttl: the debug container"),
        ({"duration": 4000.0, "ttl": 3600}, "--duration .* must be shorter than --ttl"),
        ({"interface": "-w"}, "-i/--interface: invalid"),
    ],
)
def test_validation_names_the_flag(changes, message):
    with pytest.raises(UsageError, match=message):
        validate(CaptureOptions(pod="web", **changes))


def test_tcpdump_talk_holds_errors_until_listening_and_parses_counts():
    shown: list[str] = []
    talk = TcpdumpTalk(shown.append)
    talk.feed(b"tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes\n12 pa")
    talk.feed(b"ckets captured\n14 packets received by filter\n0 packets dropped by kernel\n")
    talk.finish()
    assert shown == [
        "tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes"
    ]
    assert talk.counts == {"captured": 12, "received by filter": 14, "dropped by kernel": 0}


def test_count_lines_explain_loopback_on_any_and_warn_of_drops():
    counts = {"captured": 141, "received by filter": 360, "dropped by kernel": 74}
    assert count_lines(counts, "any") == (
        "tcpdump: 141 packets captured, 360 received by filter, 74 dropped by kernel "
        "(on interface any, received counts loopback packets twice)",
        "the kernel dropped 74 packets that matched the filter: they are missing from the capture. Capture "
        "less (a narrower -f filter, a smaller --snaplen, -i with one interface) or write to a faster place "
        "(a local file rather than a slow pipe)",
    )


def test_count_lines_without_drops_on_a_named_interface():
    counts = {"captured": 12, "received by filter": 12, "dropped by kernel": 0}
    assert count_lines(counts, "eth0") == (
        "tcpdump: 12 packets captured, 12 received by filter, 0 dropped by kernel", None,
    )


def test_tcpdump_talk_error_line():
    talk = TcpdumpTalk(lambda _: None)
    talk.feed(b"tcpdump: can't parse filter expression: syntax error\n")
    talk.finish()
    assert (talk.listening, talk.error_line()) == (False, "tcpdump: can't parse filter expression: syntax error")


class AdmissionKube(UnusedKube):
    """Answers dry runs like a namespace at `level` would, and counts node lookups."""

    def __init__(self, level: str, runtime: str = "containerd://1.7.0") -> None:
        self.level = level
        self.runtime = runtime
        self.node_gets = 0
        self.dry_runs: list[str] = []

    def add_ephemeral_container(self, namespace, pod, patch, dry_run=False):
        assert dry_run
        container = patch["spec"]["ephemeralContainers"][0]
        caps = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        self.dry_runs.append(",".join(caps) or "none")
        if (self.level == "baseline" and caps) or self.level == "restricted":
            from kubectl_debugx.kube.apierrors import api_error

            raise api_error(403, json.dumps({"message": 'pods "web" is forbidden: violates PodSecurity '
                                             f'"{self.level}:latest": non-default capabilities'}).encode())
        return {}

    def get_node(self, name):
        self.node_gets += 1
        return {"status": {"nodeInfo": {"containerRuntimeVersion": self.runtime}}}


POD = {"metadata": {"name": "web"}, "spec": {"nodeName": "n1", "containers": [{"name": "app"}]}}


def choose(kube, profile="auto"):
    from kubectl_debugx.commands.capture import choose_profile
    from kubectl_debugx.remote.ephemeral import Target

    chosen = choose_profile(kube, Target("ns", POD, "app"),
                            CaptureOptions(pod="web", image="img", profile=profile))
    return chosen.profile, chosen.container.get("securityContext")


def test_auto_takes_netadmin_where_admitted_without_reading_the_node():
    kube = AdmissionKube("privileged")
    assert choose(kube) == ("netadmin", {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}})
    assert (kube.dry_runs, kube.node_gets) == (["NET_ADMIN,NET_RAW"], 0)


def test_auto_falls_back_to_baseline_on_containerd():
    kube = AdmissionKube("baseline")
    assert choose(kube) == ("baseline", None)
    assert (kube.dry_runs, kube.node_gets) == (["NET_ADMIN,NET_RAW", "none"], 1)


def test_auto_refuses_where_the_runtime_does_not_grant_net_raw():
    kube = AdmissionKube("baseline", runtime="cri-o://1.29.1")
    with pytest.raises(Forbidden, match=r"runtime \(cri-o\) does not grant NET_RAW.*nothing was created"):
        choose(kube)
    assert kube.dry_runs == ["NET_ADMIN,NET_RAW"]


def test_restricted_refuses_every_profile_and_an_explicit_profile_is_not_escalated():
    with pytest.raises(Forbidden, match="refuses every profile that can capture"):
        choose(AdmissionKube("restricted"))
    kube = AdmissionKube("baseline")
    with pytest.raises(Forbidden, match="Pod Security refuses the debug container with profile netadmin"):
        choose(kube, profile="netadmin")
    assert kube.dry_runs == ["NET_ADMIN,NET_RAW"]
