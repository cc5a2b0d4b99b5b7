import pytest

from kubectl_debugx.errors import OutputError, UsageError
from kubectl_debugx.options import check_not_format, check_output_file, parse_duration, parse_pod_arg, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text, "--duration") == seconds


@pytest.mark.parametrize("flag", ["--duration", "--ttl", "--since"])
def test_a_bare_number_needs_a_unit_as_in_kubectl(flag):
    with pytest.raises(UsageError) as e:
        parse_duration("10", flag)
    assert str(e.value) == f'{flag}: missing unit in "10": 10s? 10m?'


def test_request_timeout_reads_a_bare_number_as_seconds_as_kubectl_does():
    assert parse_duration("12", "--request-timeout", bare_seconds=True) == 12.0
    assert parse_duration("2m", "--request-timeout", bare_seconds=True) == 120.0


@pytest.mark.parametrize("text", ["", "10x", "s", "1h 30m", "-5s", "0s", "5m3"])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(UsageError, match="^--duration: "):
        parse_duration(text, "--duration")


@pytest.mark.parametrize(
    ("text", "size"),
    [("100", 100), ("100B", 100), ("10MB", 10_000_000), ("10M", 10_000_000), ("10mb", 10_000_000),
     ("512Ki", 524288), ("512KiB", 524288), ("512kib", 524288), ("1GiB", 1 << 30), ("2k", 2000),
     ("10K", 10_000), ("10k", 10_000), ("10KB", 10_000), ("10kb", 10_000), ("10KiB", 10_240), ("1.5M", 1_500_000)],
)
def test_sizes(text, size):
    assert parse_size(text, "--max-size") == size


@pytest.mark.parametrize("text", ["", "ten", "10 XB", "0", "-1MB", "10i", "10KBB"])
def test_bad_sizes(text):
    with pytest.raises(UsageError, match="^--max-size: "):
        parse_size(text, "--max-size")


def test_pod_argument_forms():
    assert [parse_pod_arg(x) for x in ("web", "pod/web", "pods/web", "po/web")] == ["web"] * 4
    with pytest.raises(UsageError, match="only pods"):
        parse_pod_arg("deploy/web")


def test_output_checks(tmp_path):
    existing = tmp_path / "a.pcap"
    existing.write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        check_output_file(str(existing), force=False, stdout_is_tty=False, what="pcap")
    check_output_file(str(existing), force=True, stdout_is_tty=False, what="pcap")
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(str(tmp_path / "no" / "a.pcap"), force=False, stdout_is_tty=False, what="pcap")
    with pytest.raises(OutputError, match="terminal"):
        check_output_file("-", force=False, stdout_is_tty=True, what="pcap")
    check_output_file("-", force=False, stdout_is_tty=False, what="pcap")
    assert existing.read_bytes() == b"keep"


@pytest.mark.parametrize("word", ["json", "yaml", "wide", "name", "JSON"])
def test_kubectl_output_formats_are_not_file_names(word, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as e:
        check_not_format(word, "file")
    hint = ("for a JSON summary use --summary json" if word.lower() == "json"
            else "the summary format is --summary json or --summary text")
    assert str(e.value) == f"-o names the output file here; {hint} (to write a file named {word}, say -o ./{word})"
    for fine in (f"./{word}", f"{word}.pcap", "web.pcap", "-"):
        check_not_format(fine, "file")
    (tmp_path / word).mkdir()
    check_not_format(word, "directory")  # it exists: that is what the user means
