import pytest

from kubectl_debugx.capture import CaptureOptions, TcpdumpTalk, tcpdump_argv, validate
from kubectl_debugx.errors import UsageError


def test_tcpdump_argv_defaults():
    assert tcpdump_argv(CaptureOptions(pod="web")) == [
        "tcpdump", "-U", "--immediate-mode", "-p", "-w", "-", "-i", "any",
    ]


def test_tcpdump_argv_everything_and_filter_as_one_argument():
    opts = CaptureOptions(pod="web", interface="eth0", filter="tcp port 80 and host 10.0.0.1", snaplen=96,
                          count=10)
    assert tcpdump_argv(opts) == [
        "tcpdump", "-U", "--immediate-mode", "-p", "-w", "-", "-i", "eth0", "-s", "96", "-c", "10",
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


def test_tcpdump_talk_error_line():
    talk = TcpdumpTalk(lambda _: None)
    talk.feed(b"tcpdump: can't parse filter expression: syntax error\n")
    talk.finish()
    assert (talk.listening, talk.error_line()) == (False, "tcpdump: can't parse filter expression: syntax error")
