"""Distribution: the krew manifest against krew's validation rules (local and release manifests), an install
done the way krew does it, the krew archive's layout, the licences shipped, the zipapp's contents, the launcher's
and the zipapp's choice of interpreter, kubectl's plugin discovery and completion on dist/ (which holds only what
goes on PATH; the krew files are in dist/krew/), and the housekeeping of old shiv extractions.

Tests of built artefacts use the build next to $DEBUGX_EXECUTABLE (set by `./build.sh test`) or dist/, and are
skipped when there is none. Reproducibility (two builds, equal sha256) is checked by bench/reproducible.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_debugx import __version__
from kubectl_debugx.shell import _shiv

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "krew" / "debugx.yaml"
sys.path.insert(0, str(ROOT / "packaging"))
import dist as packaging_dist  # noqa: E402  (packaging/dist.py, build.sh's helper)

sys.path.remove(str(ROOT / "packaging"))

# --- krew's rules (sigs.k8s.io/krew: pkg/constants, internal/index/validation/validate.go,
# internal/installation/semver, cmd/validate-krew-manifest, internal/download, internal/installation) -------
KREW_API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
SAFE_NAME = re.compile(r"^[\w-]+$")
WINDOWS_FORBIDDEN = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
SHA256 = re.compile(r"^[a-f0-9]{64}$")
# krew's semver.Parse: a leading "v", then k8s.io/apimachinery's ParseSemantic.
SEMVER = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# validate-krew-manifest: every platform must match one of these, and no two platforms may overlap.
KREW_PLATFORMS = [
    ("darwin", "386"), ("darwin", "amd64"), ("darwin", "arm64"), ("linux", "386"), ("linux", "amd64"),
    ("linux", "arm"), ("linux", "arm64"), ("linux", "ppc64le"), ("windows", "386"), ("windows", "amd64"),
]
LICENSE_NAMES = {"license", "license.txt", "license.md", "licenses", "licence", "licence.txt", "licence.md",
                 "licences", "copying", "copying.txt", "copying.md"}


def validate_plugin(name: str, p: dict[str, Any]) -> None:
    """krew's ValidatePlugin + validatePlatform + validateSelector + validate-krew-manifest's extra checks."""
    assert p.get("apiVersion") == KREW_API_VERSION
    assert p.get("kind") == "Plugin"
    assert SAFE_NAME.match(name) and name.upper() not in WINDOWS_FORBIDDEN
    assert p["metadata"]["name"] == name, "plugin name must equal the file name"
    spec = p["spec"]
    assert spec.get("shortDescription"), "should have a short description"
    assert not re.search(r"[\r\n]", spec["shortDescription"]), "short description must be one line"
    assert spec.get("description"), "krew-index requires a description"
    assert spec.get("platforms"), "should have a platform specified"
    assert SEMVER.match(str(spec.get("version", ""))), f"version {spec.get('version')!r} is not semver with v"
    for pl in spec["platforms"]:
        assert pl.get("uri"), "`uri` has to be set"
        assert SHA256.match(str(pl.get("sha256", ""))), "`sha256` must be 64 lowercase hex"
        assert pl.get("bin"), "`bin` has to be set"
        files = pl.get("files")
        if files is not None:
            assert files, "`files` has to be unspecified or non-empty"
            for op in files:
                assert op.get("from") and op.get("to"), "`from` and `to` have to be set"
        sel = pl.get("selector")
        assert sel, "nil or empty selector is not supported"
        assert sel.get("matchLabels") or sel.get("matchExpressions"), "empty selector is not supported"
        keys = list((sel.get("matchLabels") or {}).keys()) + [e["key"] for e in sel.get("matchExpressions") or []]
        assert set(keys) <= {"os", "arch"}, f"unsupported selector keys {keys}"
        assert any(selector_matches(sel, os_, arch) for os_, arch in KREW_PLATFORMS), "matches no platform"
    for os_, arch in KREW_PLATFORMS:
        matching = [pl for pl in spec["platforms"] if selector_matches(pl["selector"], os_, arch)]
        assert len(matching) <= 1, f"platforms overlap on {os_}/{arch}"


def selector_matches(sel: dict[str, Any], os_: str, arch: str) -> bool:
    """A metav1.LabelSelector evaluated against the labels {os, arch}, as krew does."""
    labels = {"os": os_, "arch": arch}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def render_template(sha: str = "0" * 64) -> dict[str, Any]:
    text = TEMPLATE.read_text()
    for key, value in {"VERSION": __version__, "SHA256": sha, "HOMEPAGE": "https://example.com/debugx",
                       "URI": f"https://example.com/kubectl-debugx-{__version__}.tar.gz"}.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text
    return dict(yaml.safe_load(text))


def krew_install(manifest: dict[str, Any], archive: Path, krew_root: Path, os_: str = "linux",
                 arch: str = "amd64") -> Path:
    """What `kubectl krew install --manifest=M --archive=A` does: pick the platform, verify the sha256, sniff
    and extract the archive, apply `files`, move into the store, link `bin`. Returns the link."""
    name = manifest["metadata"]["name"]
    version = manifest["spec"]["version"]
    platform = next(pl for pl in manifest["spec"]["platforms"] if selector_matches(pl["selector"], os_, arch))
    data = archive.read_bytes()
    assert hashlib.sha256(data).hexdigest() == platform["sha256"], "checksum does not match"
    assert data[:2] == b"\x1f\x8b", "krew sniffs the type: must be application/x-gzip"
    staging = krew_root / "tmp" / name
    staging.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name == "pax_global_header":
                continue
            assert not member.name.startswith("/") and ".." not in Path(member.name).parts, "suspicious path"
            target = staging / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True, mode=member.mode)
            elif member.isreg():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, member.mode)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
            else:
                raise AssertionError(f"krew cannot handle tar entry type {member.type!r} ({member.name})")
    install = krew_root / "store" / name / version
    install.mkdir(parents=True)
    for op in platform.get("files") or [{"from": "*", "to": "."}]:
        matches = sorted(staging.glob(op["from"]))
        assert matches, f"files: {op['from']} matches nothing"
        dest = (install / op["to"]).resolve()
        assert dest == install.resolve() or install.resolve() in dest.parents, "files: `to` escapes"
        for m in matches:
            shutil.move(str(m), str(dest / m.name))
    installed = {p.name.lower() for p in install.iterdir()}
    assert installed & LICENSE_NAMES, "validate-krew-manifest requires a LICENSE file among the installed files"
    bin_path = install / platform["bin"]
    assert bin_path.is_file() and os.access(bin_path, os.X_OK), "bin must be an executable file"
    link = krew_root / "bin" / ("kubectl-" + name.replace("-", "_"))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(bin_path)
    return link


# --- the template ------------------------------------------------------------------------------------


def test_template_passes_krew_validation() -> None:
    validate_plugin(TEMPLATE.stem, render_template())


def test_template_content() -> None:
    spec = render_template()["spec"]
    assert spec["version"] == f"v{__version__}"
    [platform] = spec["platforms"]
    for os_ in ("linux", "darwin"):
        for arch in ("amd64", "arm64"):
            assert selector_matches(platform["selector"], os_, arch)
    assert not selector_matches(platform["selector"], "windows", "amd64")
    assert not selector_matches(platform["selector"], "linux", "arm")
    assert platform["bin"] == "kubectl-debugx"
    assert [f["from"] for f in platform["files"]] == ["kubectl-debugx", "LICENSE", "THIRD_PARTY_LICENSES"]
    caveats = spec["caveats"]
    assert "3.10" in caveats
    for needed in ("pods/ephemeralcontainers patch", "pods/exec get, create", "nodes get", "nodes/proxy get"):
        assert needed in caveats


@pytest.mark.parametrize(
    "breakage",
    [
        lambda p: p.update(apiVersion="krew.googlecontainertools.github.com/v1alpha1"),
        lambda p: p.update(kind="Plugins"),
        lambda p: p["metadata"].update(name="debug-x"),
        lambda p: p["spec"].update(version="0.1.0"),
        lambda p: p["spec"].update(shortDescription="two\nlines"),
        lambda p: p["spec"]["platforms"][0].update(sha256="A" * 64),
        lambda p: p["spec"]["platforms"][0]["selector"].update(matchExpressions=[{"key": "distro", "operator": "In",
                                                                                 "values": ["x"]}]),
        lambda p: p["spec"]["platforms"].append(dict(p["spec"]["platforms"][0])),
    ],
)
def test_validator_rejects_what_krew_rejects(breakage: Any) -> None:
    manifest = render_template()
    breakage(manifest)
    with pytest.raises(AssertionError):
        validate_plugin("debugx", manifest)


def test_release_manifest(tmp_path: Path) -> None:
    """With DEBUGX_REPO_URL (`./build.sh release`): homepage and download address under that repository."""
    out = tmp_path / "debugx.yaml"
    archive = f"kubectl-debugx-{__version__}.tar.gz"
    packaging_dist.main(["manifest", str(TEMPLATE), str(out), __version__, "a" * 64,
                         f"https://example.org/x/releases/download/v{__version__}/{archive}", "https://example.org/x"])
    text = out.read_text()
    assert text.startswith("# Release manifest") and "Local build" not in text
    manifest = yaml.safe_load(text)
    validate_plugin("debugx", manifest)
    assert manifest["spec"]["homepage"] == "https://example.org/x"
    assert manifest["spec"]["platforms"][0]["uri"] == f"https://example.org/x/releases/download/v{__version__}/{archive}"


def test_release_build_needs_a_repository_url(tmp_path: Path) -> None:
    """`./build.sh release` without DEBUGX_REPO_URL (or with one that is not https://) stops at once, in one line."""
    for url in (None, "", "github.com/me/kubectl-debugx"):
        env = dict(os.environ, DEBUGX_SKIP_VENV="1", DEBUGX_DIST=str(tmp_path / "dist"),
                   DEBUGX_WORK=str(tmp_path / "work"))
        env.pop("DEBUGX_REPO_URL", None)
        if url is not None:
            env["DEBUGX_REPO_URL"] = url
        out = subprocess.run([str(ROOT / "build.sh"), "release"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("error: ./build.sh release needs DEBUGX_REPO_URL=https://")
        assert len(out.stderr.splitlines()) == 1 and out.stdout == ""
        assert not (tmp_path / "dist").exists() and not (tmp_path / "work").exists()


# --- built artefacts ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist() -> Path:
    exe = os.environ.get("DEBUGX_EXECUTABLE")
    where = Path(exe).parent if exe else ROOT / "dist"
    if not (where / "kubectl-debugx").is_file() or not (where / "krew" / "debugx.yaml").is_file():
        pytest.skip("no build: run ./build.sh")
    return where


@pytest.fixture(scope="module")
def built_manifest(dist: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((dist / "krew" / "debugx.yaml").read_text()))


def _archive(dist: Path) -> Path:
    return dist / "krew" / f"kubectl-debugx-{__version__}.tar.gz"


def test_dist_holds_only_what_goes_on_path(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir() if not p.is_dir()) == ["kubectl-debugx", "kubectl_complete-debugx"]
    assert sorted(p.name for p in (dist / "krew").iterdir()) == ["debugx.yaml", _archive(dist).name]


def test_built_manifest_is_valid_and_names_the_archive(dist: Path, built_manifest: dict[str, Any]) -> None:
    validate_plugin("debugx", built_manifest)
    [platform] = built_manifest["spec"]["platforms"]
    archive = _archive(dist)
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert built_manifest["spec"]["version"] == f"v{__version__}"
    text = (dist / "krew" / "debugx.yaml").read_text()
    if text.startswith("# Local build"):  # no DEBUGX_REPO_URL: for `krew install --manifest --archive` only
        assert platform["uri"] == archive.name and "homepage" not in built_manifest["spec"]
        assert "kubectl-debugx/kubectl-debugx" not in text  # no made-up address
    else:
        assert text.startswith("# Release manifest")
        assert platform["uri"].startswith("https://") and platform["uri"].endswith("/" + archive.name)
        assert built_manifest["spec"]["homepage"].startswith("https://")


def test_archive_layout(dist: Path) -> None:
    archive = _archive(dist)
    raw = archive.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08, "gzip -n: no time stamp, no file name"
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["kubectl-debugx", "LICENSE", "THIRD_PARTY_LICENSES"]
        exe, lic, third = members
        assert exe.isreg() and exe.mode == 0o755 and lic.mode == 0o644 and third.mode == 0o644
        body = tar.extractfile(lic)
        assert body is not None and body.read() == (ROOT / "LICENSE").read_bytes()
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert len({m.mtime for m in members}) == 1
        body = tar.extractfile(exe)
        assert body is not None and body.read() == (dist / "kubectl-debugx").read_bytes()
    with gzip.open(archive) as g:
        g.read()


def test_krew_install_then_run(dist: Path, built_manifest: dict[str, Any], tmp_path: Path) -> None:
    for os_, arch in (("linux", "amd64"), ("darwin", "arm64")):
        root = tmp_path / f"krew-{os_}-{arch}"
        link = krew_install(built_manifest, _archive(dist), root, os_, arch)
        assert link.name == "kubectl-debugx"
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"), KUBECONFIG=str(tmp_path / "none"))
    link = tmp_path / "krew-linux-amd64" / "bin" / "kubectl-debugx"
    out = subprocess.run([str(link), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: kubectl debugx" in out.stdout
    for command in ("capture", "completion"):
        assert command in out.stdout
    out = subprocess.run([str(link), "version"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and f"Client Version: v{__version__}" in out.stdout
    # shiv names its cache after the resolved file name: the krew symlink unpacks as kubectl-debugx_<id>.
    assert [p.name.rsplit("_", 1)[0] for p in (tmp_path / "shiv").iterdir() if p.is_dir()] == ["kubectl-debugx"]


def test_zipapp_contents(dist: Path) -> None:
    with zipfile.ZipFile(dist / "kubectl-debugx") as z:
        names = z.namelist()
        main = z.read("__main__.py").decode()
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib"))], "native code in the zipapp"
    assert not [n for n in names if n.startswith(("site-packages/rich/", "site-packages/pygments/"))]
    assert "site-packages/kubectl_debugx/__main__.py" in names
    assert "sys.version_info < (3, 10)" in main and "@BUILD_ID@" not in main
    head = (dist / "kubectl-debugx").read_bytes()[:4096]
    assert head.startswith(b"#!/bin/sh\n") and b'exec "$p" -S -c "$s" "$0" "$@"\n' in head
    assert "site-packages/kubectl_debugx/shell/_cli_cache.py" in names
    assert "THIRD_PARTY_LICENSES" in names


def test_licences_of_every_bundled_package(dist: Path) -> None:
    """LICENSE is the full Apache-2.0 text; THIRD_PARTY_LICENSES, the same in the zipapp and the krew archive,
    names every package in the zipapp's site-packages with its version, licence and licence text."""
    licence = (ROOT / "LICENSE").read_text()
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence
    assert "END OF TERMS AND CONDITIONS" in licence and "Copyright 2026 The kubectl-debugx authors" in licence
    with zipfile.ZipFile(dist / "kubectl-debugx") as z:
        text = z.read("THIRD_PARTY_LICENSES").decode()
        metadata = [z.read(n).decode() for n in z.namelist()
                    if re.fullmatch(r"site-packages/[^/]+\.dist-info/METADATA", n)]
    with tarfile.open(_archive(dist), "r:gz") as tar:
        member = tar.extractfile("THIRD_PARTY_LICENSES")
        assert member is not None and member.read().decode() == text
    bundled = []
    for meta in metadata:
        name = re.search(r"(?m)^Name: (.+)$", meta)
        version = re.search(r"(?m)^Version: (.+)$", meta)
        assert name and version
        if name.group(1) != "kubectl-debugx":
            bundled.append((name.group(1).strip(), version.group(1).strip()))
    assert len(bundled) >= 10 and ("kubernetes", "35.0.0") in bundled
    rule = packaging_dist.RULE
    for name, version in bundled:
        assert f"\n  {name} {version}: " in text, f"{name} {version} not in the summary"
        head = f"\n{rule}\n{name} {version}\nLicense: "
        assert text.count(head) == 1, f"{name} {version}: no section"
        body = text.split(head, 1)[1].split(f"\n{rule}\n", 2)[1]
        assert body.startswith("\n--- ") and len(body) > 200, f"{name} {version}: no licence text"
    assert "Apache License" in text and "Permission is hereby granted" in text  # kubernetes, MIT ones


def test_build_stops_on_a_package_without_licence_text(tmp_path: Path) -> None:
    info = tmp_path / "site" / "nolicence-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nolicence\nVersion: 1.0\nLicense: MIT\n")
    with pytest.raises(SystemExit, match="nolicence 1.0 .* ships no licence text"):
        packaging_dist.third_party_licenses(tmp_path / "site", tmp_path / "out")
    (info / "LICENSE.txt").write_text("MIT text\n")  # an older wheel: copied in without a License-File line
    packaging_dist.third_party_licenses(tmp_path / "site", tmp_path / "out")
    assert "nolicence 1.0: MIT" in (tmp_path / "out").read_text() and "MIT text" in (tmp_path / "out").read_text()


def test_lazy_kubernetes_client_serves_every_name(dist: Path, tmp_path: Path) -> None:
    """packaging/dist.py lazy-kubernetes: the zipapp's kubernetes.client resolves every name the original
    __init__ imported, and importing it loads no model or API module."""
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"))
    subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, env=env, check=True, timeout=180)
    [site] = (tmp_path / "shiv").glob("kubectl-debugx_*/site-packages")
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import kubernetes.client as c, kubernetes.client.models as m, kubernetes.client.api as a\n"
        "loaded = [n for n in sys.modules if n.startswith(('kubernetes.client.models.', 'kubernetes.client.api.'))]\n"
        "assert not loaded, loaded\n"
        "for mod in (c, m, a):\n"
        "    for name in mod._LAZY:\n"
        "        assert getattr(mod, name).__name__ == name, name\n"
        "assert c.V1Pod is m.V1Pod and c.CoreV1Api is a.CoreV1Api\n"
        "print(len(c._LAZY), len(m._LAZY), len(a._LAZY))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    counts = [int(n) for n in out.stdout.split()]
    assert counts[0] > 700 and counts[1] > 650 and counts[2] > 50


def test_deferred_kubernetes_imports_are_the_real_ones(dist: Path, tmp_path: Path) -> None:
    """packaging/dist.py DEFERRED: what the API client path imports (configuration, rest, api_client, kube_config,
    ws_client) loads none of the deferred packages, and each stand-in then gives what the original import did."""
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"))
    subprocess.run([str(dist / "kubectl-debugx"), "version", "--client"], capture_output=True, env=env, check=True,
                   timeout=180)
    [site] = (tmp_path / "shiv").glob("kubectl-debugx_*/site-packages")
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import kubernetes, kubernetes.client.configuration, kubernetes.client.rest as rest\n"
        "import kubernetes.client.api_client as api_client, kubernetes.config.kube_config as kube_config\n"
        "import kubernetes.stream.ws_client as ws_client\n"
        "deferred = ('requests', 'oauthlib', 'requests_oauthlib', 'dateutil', 'multiprocessing.pool',\n"
        "            'importlib.metadata', 'kubernetes.dynamic', 'kubernetes.watch', 'kubernetes.utils',\n"
        "            'kubernetes.leaderelection')\n"
        "print(sorted(n for n in sys.modules if n.startswith(deferred)))\n"
        "import datetime, multiprocessing.pool, dateutil.parser, requests.utils, requests_oauthlib\n"
        "import oauthlib.oauth2.rfc6749.errors as errors\n"
        "assert rest.should_bypass_proxies('https://10.0.0.1:6443', no_proxy='10.0.0.1') is True\n"
        "assert ws_client.should_bypass_proxies('https://a.example', no_proxy='b.example') is False\n"
        "assert api_client.parse('2026-01-02T03:04:05Z') == dateutil.parser.parse('2026-01-02T03:04:05Z')\n"
        "pool = api_client.ThreadPool(1); assert isinstance(pool, multiprocessing.pool.ThreadPool); pool.close()\n"
        "assert isinstance(kube_config.OAuth2Session(client_id='x'), requests_oauthlib.OAuth2Session)\n"
        "assert kube_config.oauthlib.oauth2.rfc6749.errors.InvalidClientIdError is errors.InvalidClientIdError\n"
        "import kubernetes.watch as w; assert kubernetes.watch is w and kubernetes.watch.Watch\n"
        "assert kubernetes.dynamic.DynamicClient and kubernetes.utils.create_from_yaml\n"
        "assert kubernetes.leaderelection.__name__ == 'kubernetes.leaderelection'\n"
        "import importlib.metadata, urllib3.http2\n"
        "assert urllib3.http2.version('urllib3') == importlib.metadata.version('urllib3') == urllib3.__version__\n"
        "try:\n"
        "    kubernetes.nothing\n"
        "except AttributeError:\n"
        "    print('AttributeError')\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=180)
    assert (out.returncode, out.stderr[-3000:], out.stdout) == (0, "", "[]\nAttributeError\n")


def test_launcher_remembers_the_interpreter(dist: Path, tmp_path: Path) -> None:
    """packaging/launcher.sh: the first start runs python3 from PATH and writes down which interpreter that is;
    later starts use it directly (no version-manager shim); KUBECTL_DEBUGX_PYTHON overrides."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    remembered = tmp_path / "shiv" / ".kubectl-debugx-python"
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert remembered.read_text() == str(tmp_path / "bin" / "python3") + "\n"
    # no python3 on PATH any more: the remembered one is used
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True,
                         env=dict(env, PATH="/nonexistent"), timeout=60)
    assert out.returncode == 0 and "Client Version" in out.stdout
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True, timeout=60,
                         env=dict(env, KUBECTL_DEBUGX_PYTHON=str(tmp_path / "nope")))
    assert out.returncode == 127 and "nope" in out.stderr
    remembered.write_text("/nonexistent/python3\n")  # gone: fall back to python3 on PATH (none here)
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True,
                         env=dict(env, PATH="/nonexistent"), timeout=60)
    assert out.returncode == 127 and out.stderr == NO_PYTHON


NO_PYTHON = ("error: kubectl-debugx needs Python >= 3.10: no python3 or python3.1X on PATH runs as one; install one "
             "or set KUBECTL_DEBUGX_PYTHON=/path/to/python3.X\n")
PYENV_SHIM = """#!/bin/sh
echo "pyenv: $(basename "$0"): command not found" >&2
echo "The \\`$(basename "$0")' command exists in these Python versions:" >&2
exit 127
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_launcher_skips_pythons_that_do_not_run(dist: Path, tmp_path: Path) -> None:
    """packaging/launcher.sh, nothing remembered: python3 is too old (it fails the version check), python3.13 is a
    pyenv shim of a version pyenv does not enable (its error, exit 127): both skipped, python3.11 chosen; with no
    working one, our message and not the shim's."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _script(bin_ / "python3", '#!/bin/sh\necho "python3 (3.9) ran with: $*" >&2\nexit 1\n')
    _script(bin_ / "python3.13", PYENV_SHIM)
    (bin_ / "python3.11").symlink_to(sys.executable)
    env = {"PATH": str(bin_), "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and f"Client Version: v{__version__}" in out.stdout, out.stderr
    assert "command not found" not in out.stderr and "python3 (3.9)" not in out.stderr
    assert (tmp_path / "shiv" / ".kubectl-debugx-python").read_text() == f"{bin_ / 'python3.11'}\n"
    (tmp_path / "shiv" / ".kubectl-debugx-python").unlink()
    (bin_ / "python3.11").unlink()
    out = subprocess.run([str(dist / "kubectl-debugx"), "version"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 127 and out.stderr == NO_PYTHON and out.stdout == ""


def _old_pythons() -> list[str]:
    found = []
    for version in ("3.9", "3.8", "3.7", "3.6", "2.7"):
        found += [str(p) for p in Path("/root/.pyenv/versions").glob(f"{version}.*/bin/python{version}")]
        which = shutil.which(f"python{version}")
        if which and "/shims/" not in which and which not in found:  # pyenv shims need bash and a PATH
            found.append(which)
    return found[:3]


@pytest.mark.parametrize("python", _old_pythons() or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
def test_old_python_gets_a_clear_message_and_nothing_is_unpacked(dist: Path, python: str, tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    out = subprocess.run([python, str(dist / "kubectl-debugx"), "--help"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("error: kubectl-debugx needs Python >= 3.10, but ")
    assert "KUBECTL_DEBUGX_PYTHON" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "shiv").exists()


@pytest.mark.parametrize("python", _old_pythons()[:1] or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
def test_old_python_reruns_with_a_newer_one_on_path(dist: Path, python: str, tmp_path: Path) -> None:
    """packaging/zipapp_main.py on an old Python: re-runs with the newest python3.1X on PATH that runs (a newer
    pyenv shim that fails is skipped); with none, its own message and not the shim's."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / f"python3.{sys.version_info[1]}").symlink_to(sys.executable)
    _script(tmp_path / "bin" / "python3.19", PYENV_SHIM)
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    out = subprocess.run([python, str(dist / "kubectl-debugx"), "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: kubectl debugx" in out.stdout and "command not found" not in out.stderr
    (tmp_path / "bin" / f"python3.{sys.version_info[1]}").unlink()
    out = subprocess.run([python, str(dist / "kubectl-debugx"), "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 1 and "command not found" not in out.stderr and len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("error: kubectl-debugx needs Python >= 3.10, but ")


# --- kubectl ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if not path:
        pytest.skip("kubectl not installed")
    return path


def _kubectl_env(dist: Path, tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, PATH=f"{dist}{os.pathsep}{os.environ.get('PATH', '')}", SHIV_ROOT=str(tmp_path / "shiv"),
                KUBECONFIG=str(tmp_path / "no-kubeconfig"))


def test_kubectl_plugin_list_is_clean(dist: Path, kubectl: str, tmp_path: Path) -> None:
    """README: PATH="$PWD/dist:$PATH". `kubectl plugin list` warns about every non-executable kubectl-* file on
    PATH (an archive named kubectl-debugx-VERSION.tar.gz was one) and then exits 1."""
    out = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True,
                         env=_kubectl_env(dist, tmp_path), timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in (out.stdout + out.stderr).lower()
    assert str(dist / "kubectl-debugx") in out.stdout.splitlines()


def test_kubectl_finds_and_runs_the_plugin(dist: Path, kubectl: str, tmp_path: Path) -> None:
    env = _kubectl_env(dist, tmp_path)
    out = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert str(dist / "kubectl-debugx") in out.stdout, out.stdout + out.stderr
    assert "kubectl_complete" not in out.stdout + out.stderr
    out = subprocess.run([kubectl, "debugx", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: kubectl debugx" in out.stdout
    out = subprocess.run([kubectl, "debugx", "version"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and f"Client Version: v{__version__}" in out.stdout
    out = subprocess.run([kubectl, "debugx", "capture"], capture_output=True, text=True, env=env, timeout=60)
    assert (out.returncode, out.stderr) == (
        2, "error: missing argument 'TARGET': POD, TYPE/NAME or -l SELECTOR (see 'kubectl debugx capture --help')\n")


def test_kubectl_plugin_completion(dist: Path, kubectl: str, tmp_path: Path) -> None:
    """kubectl >= 1.26 runs kubectl_complete-debugx for `kubectl debugx <TAB>`."""
    env = _kubectl_env(dist, tmp_path)

    def complete(*words: str) -> list[str]:
        out = subprocess.run([kubectl, "__complete", "debugx", *words], capture_output=True, text=True, env=env,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    lines = complete("")
    names = [line.split("\t")[0] for line in lines]
    assert {"capture", "completion", "version"} <= set(names)
    assert not [n for n in names if "tar" in n or n[:1].isdigit()], names  # no kubectl-debugx-* file as a plugin
    assert lines[-1] == ":4"
    assert "--profile" in [line.split("\t")[0] for line in complete("capture", "--pro")]
    assert complete("capture", "--profile", "net") == ["netadmin", ":4"]
    assert complete("completion", "") == ["bash", "zsh", "fish", "kubectl", ":4"]
    # a TARGET with no reachable cluster: the kinds only, no traceback, no file names
    assert complete("capture", "") == ["pod/", "deploy/", "sts/", "ds/", "rs/", "job/", "svc/", ":4"]


# --- housekeeping of ~/.shiv -------------------------------------------------------------------------------


def _extraction(root: Path, build: str, name: str = "kubectl-debugx", ours: bool = True, age: float = 3600) -> Path:
    path = root / f"{name}_{build * 64}"
    pkg = path / "site-packages" / ("kubectl_debugx" if ours else "other")
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (root / f".{path.name}_lock").write_text("")
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def test_old_builds_are_removed_carefully(tmp_path: Path) -> None:
    root = tmp_path / "shiv"
    root.mkdir()
    current = _extraction(root, "a", age=0)
    old = _extraction(root, "b")
    running = _extraction(root, "c")
    recent = _extraction(root, "d", age=60)
    foreign_name = _extraction(root, "e", name="other-tool")
    not_ours = _extraction(root, "f", ours=False)
    unfinished = root / f"kubectl-debugx_{'9' * 64}.tmp"
    unfinished.mkdir()
    os.utime(unfinished, (time.time() - 7200, time.time() - 7200))
    # a process of build c is running: it holds a shared lock on its in-use file
    fd = os.open(running / _shiv.IN_USE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        removed = _shiv.remove_old_builds(current)
    finally:
        os.close(fd)
    assert sorted(removed) == sorted([old, unfinished])
    assert not old.exists() and not (root / f".{old.name}_lock").exists() and not unfinished.exists()
    for kept in (current, running, recent, foreign_name, not_ours):
        assert kept.exists()
    assert not [p for p in root.iterdir() if ".removing-" in p.name]


def test_custom_build_id_removes_nothing(tmp_path: Path) -> None:
    current = tmp_path / "kubectl-debugx_mybuild"
    (current / "site-packages").mkdir(parents=True)
    _extraction(tmp_path, "b")
    assert _shiv.remove_old_builds(current) == []


def test_after_bootstrap_never_raises(tmp_path: Path) -> None:
    _shiv.after_bootstrap(tmp_path / "missing" / "site-packages")


def test_bytecode_cached_only_in_the_extraction(tmp_path: Path) -> None:
    site = tmp_path / "kubectl-debugx_x" / "site-packages"
    other = tmp_path / "elsewhere"
    for d, name in ((site, "debugx_fake_a"), (other, "debugx_fake_b")):
        (d / name).mkdir(parents=True)
        (d / name / "__init__.py").write_text("X = 1\n")
    code = (
        f"import sys; sys.path[:0] = [{str(site)!r}, {str(other)!r}]\n"
        "from pathlib import Path\n"
        "from kubectl_debugx.shell import _shiv\n"
        f"assert _shiv.cache_bytecode_in(Path({str(site)!r}))\n"
        "import debugx_fake_a, debugx_fake_b\n"
        "assert sys.dont_write_bytecode\n"
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    assert list((site / "debugx_fake_a" / "__pycache__").glob("__init__.*.pyc"))
    assert not (other / "debugx_fake_b" / "__pycache__").exists()
