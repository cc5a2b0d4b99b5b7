from pathlib import Path

import pytest

from kubectl_debugx.errors import UsageError
from kubectl_debugx.remote import profiles

BASE = {"name": "debugx-b", "image": "img", "command": ["sleep", "60"], "targetContainerName": "app"}


@pytest.mark.parametrize(
    ("profile", "expected_sc"),
    [
        ("legacy", None),
        ("general", {"capabilities": {"add": ["SYS_PTRACE"]}}),
        ("baseline", None),
        ("netadmin", {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}),
        ("sysadmin", {"privileged": True}),
        (
            "restricted",
            {
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "allowPrivilegeEscalation": False,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        ),
    ],
)
def test_ephemeral_profiles(profile, expected_sc):
    expected = dict(BASE)
    if expected_sc is not None:
        expected["securityContext"] = expected_sc
    assert profiles.apply_to_ephemeral(profile, BASE) == expected


def test_baseline_clears_an_existing_security_context():
    container = dict(BASE, securityContext={"privileged": True})
    assert profiles.apply_to_ephemeral("baseline", container) == BASE


def test_general_appends_to_existing_capabilities_like_kubectl():
    container = dict(BASE, securityContext={"capabilities": {"add": ["NET_RAW"]}})
    assert profiles.apply_to_ephemeral("general", container) == dict(
        BASE, securityContext={"capabilities": {"add": ["NET_RAW", "SYS_PTRACE"]}}
    )


def test_unknown_profile_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown profile 'root'"):
        profiles.apply_to_ephemeral("root", BASE)


NODE_POD = {"spec": {"containers": [{"name": "debugger", "image": "img", "securityContext": {"runAsUser": 5}}]}}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("legacy", {"hostPID": True, "hostNetwork": True, "hostIPC": True,
                    "containers": [{"name": "debugger", "image": "img", "securityContext": {"runAsUser": 5}}]}),
        ("general", {"hostPID": True, "hostNetwork": True, "hostIPC": True,
                     "containers": [{"name": "debugger", "image": "img"}]}),
        ("baseline", {"containers": [{"name": "debugger", "image": "img"}]}),
        ("netadmin", {"hostPID": True, "hostNetwork": True, "hostIPC": True,
                      "containers": [{"name": "debugger", "image": "img", "securityContext": {
                          "runAsUser": 5, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}}]}),
        ("sysadmin", {"hostPID": True, "hostNetwork": True, "hostIPC": True,
                      "containers": [{"name": "debugger", "image": "img",
                                      "securityContext": {"runAsUser": 5, "privileged": True}}]}),
    ],
)
def test_node_pod_profiles(profile, expected):
    assert profiles.apply_to_node_pod(profile, NODE_POD, "debugger") == {"spec": expected}


def test_custom_merge_replaces_capability_lists_and_merges_env_by_name():
    container = dict(
        BASE,
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        securityContext={"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 1000},
    )
    custom = {
        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
        "securityContext": {"capabilities": {"add": ["NET_RAW"]}, "runAsUser": 0},
    }
    assert profiles.merge_custom(container, custom) == dict(
        BASE,
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
        securityContext={"capabilities": {"add": ["NET_RAW"]}, "runAsUser": 0},
    )


def test_custom_yaml_and_json_parse_to_the_same_object(tmp_path: Path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("securityContext:\n  runAsUser: 0\n  capabilities:\n    add: [NET_RAW]\n")
    json_file = tmp_path / "c.json"
    json_file.write_text('{"securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_RAW"]}}}')
    expected = {"securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_RAW"]}}}
    assert profiles.load_custom(yaml_file) == expected
    assert profiles.load_custom(json_file) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"image": "x"}', "may not set image"),
        ('{"command": ["sh"], "name": "n"}', "may not set name, command"),
        ('{"ports": [{"containerPort": 80}]}', "sets ports, which an ephemeral container cannot have"),
        ("[1, 2]", "must hold a container object"),
        ("a: [b\n", "neither valid JSON nor YAML"),
    ],
)
def test_custom_rejections(text, message):
    with pytest.raises(UsageError, match=message):
        profiles.parse_custom(text, "f")


def test_custom_inline_json_and_yaml_as_the_readme_writes_them(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = {"securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_RAW"]}}}
    inline = '{"securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_RAW"]}}}'
    assert profiles.load_custom(Path(inline)) == expected
    assert profiles.load_custom(Path("securityContext:\n  runAsUser: 0\n  capabilities: {add: [NET_RAW]}")) == expected
    with pytest.raises(UsageError, match=r"^--custom: the inline value may not set image"):
        profiles.load_custom(Path('{"image": "x"}'))
    Path("{odd}").write_text(inline)  # a file of that name wins
    assert profiles.load_custom(Path("{odd}")) == expected


def test_unreadable_custom_file(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot read"):
        profiles.load_custom(tmp_path / "missing.yaml")


def test_non_root_pod_detection_and_run_as_root():
    assert profiles.pod_runs_as_non_root({"spec": {"securityContext": {"runAsUser": 101}}})
    assert profiles.pod_runs_as_non_root({"spec": {"securityContext": {"runAsNonRoot": True}}})
    assert not profiles.pod_runs_as_non_root({"spec": {"securityContext": {"runAsUser": 0}}})
    assert not profiles.pod_runs_as_non_root({"spec": {}})
    assert profiles.run_as_root(BASE) == dict(BASE, securityContext={"runAsUser": 0, "runAsNonRoot": False})


def test_runtime_name():
    assert profiles.runtime_name("containerd://1.7.2") == "containerd"
    assert profiles.runtime_name("cri-o://1.29.1") == "cri-o"
    assert profiles.runtime_name("") == ""
