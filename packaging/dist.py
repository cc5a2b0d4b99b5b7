"""Build helpers called by build.sh (run with the build venv's Python).

  python packaging/dist.py finish-zipapp ZIPAPP [FILE...]  packaging/launcher.sh + zipapp_main.py as __main__.py;
                                                            each FILE is added at the zip's root
  python packaging/dist.py lazy-kubernetes SITE_PACKAGES    the kubernetes client's models, and imports an API
                                                            call never uses, imported on first use
  python packaging/dist.py licenses SITE_PACKAGES OUT       THIRD_PARTY_LICENSES of every bundled package
  python packaging/dist.py manifest TEMPLATE OUT VERSION SHA256 URI HOMEPAGE
  python packaging/dist.py manifest TEMPLATE OUT VERSION SHA256 --local ARCHIVE_NAME
"""

from __future__ import annotations

import email.parser
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def finish_zipapp(path: Path, extra: list[Path]) -> None:
    """Rewrite the zipapp behind our launcher (packaging/launcher.sh) with our __main__.py; entries, order,
    times and modes are kept, so it stays reproducible. The `extra` files (THIRD_PARTY_LICENSES) go at the zip's
    root, after the other entries, with __main__.py's time and mode 0644: shiv's bootstrap unpacks only
    site-packages/, so they are read with `unzip -p kubectl-debugx NAME` and cost nothing at run time."""
    data = path.read_bytes()
    if not data.startswith(b"#!"):
        raise SystemExit(f"{path}: no shebang line")
    shebang = (HERE / "launcher.sh").read_bytes()  # in place of shiv's `#!/usr/bin/env python3`
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, tmp.open("wb") as fd:
        env = json.loads(src.read("environment.json"))
        if env.get("entry_point") != "kubectl_debugx.__main__:main" or env.get("no_modify"):
            raise SystemExit(f"{path}: zipapp_main.py's warm start assumes the entry point and no --no-modify")
        main_py = (HERE / "zipapp_main.py").read_text().replace("@BUILD_ID@", env["build_id"]).encode()
        fd.write(shebang)
        with zipfile.ZipFile(fd, "w") as out:
            for info in src.infolist():
                new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                new.compress_type = info.compress_type
                new.external_attr = info.external_attr
                new.create_system = 3  # unix, whatever the build host: modes are unix modes
                body = main_py if info.filename == "__main__.py" else src.read(info)
                out.writestr(new, body)
            when = src.getinfo("__main__.py").date_time
            for file in extra:
                if file.name in src.namelist():
                    raise SystemExit(f"{path}: already holds {file.name}")
                new = zipfile.ZipInfo(file.name, date_time=when)
                new.compress_type = zipfile.ZIP_DEFLATED
                new.external_attr = (0o100644 << 16)
                new.create_system = 3
                out.writestr(new, file.read_bytes())
    tmp.chmod(0o755)
    tmp.replace(path)


# kubernetes 35's generated client imports its ~700 model and ~65 API modules eagerly (`import kubernetes` costs
# ~300 ms); kubernetes 37 made the same three modules lazy. We rewrite their `from M import Name` lines into a
# table that a module __getattr__ serves on first use. Everything else in the package is untouched.
LAZY_INITS = ("kubernetes/client/__init__.py", "kubernetes/client/api/__init__.py",
              "kubernetes/client/models/__init__.py")
LAZY_IMPORT = re.compile(r"^from (kubernetes\.client\.(?:api|models)\.\w+) import (\w+)$")
LAZY_TAIL = """

# --- Made lazy by kubectl-debugx's build (packaging/dist.py): the names below are imported on first use. ---
_LAZY = {table}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(set(_LAZY) | {{n for n in list(globals()) if not n.startswith("_")}})
"""


def lazy_kubernetes(site: Path) -> None:
    for rel in LAZY_INITS:
        path = site / rel
        eager, lazy = [], {}
        for line in path.read_text().splitlines():
            match = LAZY_IMPORT.match(line)
            if match:
                lazy[match.group(2)] = match.group(1)
            else:
                eager.append(line)
        if len(lazy) < 50:
            raise SystemExit(f"{path}: not the layout packaging/dist.py expects ({len(lazy)} imports)")
        table = "{\n" + "".join(f"    {name!r}: {module!r},\n" for name, module in lazy.items()) + "}"
        path.write_text("\n".join(eager).rstrip() + "\n" + LAZY_TAIL.format(table=table))
    for rel, lines in DEFERRED.items():
        path = site / rel
        text = path.read_text()
        for line, replacement in lines.items():
            if text.count(line + "\n") != 1:
                raise SystemExit(f"{path}: not the layout packaging/dist.py expects (no line {line!r})")
            text = text.replace(line + "\n", replacement + "\n")
        path.write_text(text)


# With the models lazy, what every API call still imported through kubernetes (profiled with -X importtime on
# `version`, issue 24) was, besides urllib3 and yaml which it needs: requests (~20 ms, for one proxy helper),
# oauthlib + requests_oauthlib (~15 ms, for Azure/OIDC token refresh), dateutil (~10 ms, for model dates),
# multiprocessing.pool (~5 ms, async calls) and the dynamic/stream/watch/utils/leaderelection subpackages
# (~10 ms) that kubernetes/__init__.py imports; and importlib.metadata (~5 ms), which urllib3 2's http2
# package imports for the one function that enables HTTP/2 (we never call it). Each name below is only ever
# called (or, for `oauthlib`, read in an except clause), so a stand-in that imports the real thing on first
# use keeps the behaviour. The build stops if a line is not there (another version of the package): look
# again rather than ship it half-rewritten.
def _deferred_call(module: str, name: str) -> str:
    return (f"def {name}(*args, **kwargs):  # imported on first call (kubectl-debugx build, packaging/dist.py)\n"
            f"    from {module} import {name} as _real\n"
            f"    return _real(*args, **kwargs)")


_DEFERRED_PACKAGE = """
class _DeferredPackage(object):  # imported on first use (kubectl-debugx build, packaging/dist.py)
    def __getattr__(self, name):
        import importlib

        importlib.import_module("oauthlib.oauth2")  # kube_config reads oauthlib.oauth2.rfc6749.errors
        return getattr(importlib.import_module("oauthlib"), name)


oauthlib = _DeferredPackage()"""

_SUBPACKAGES = ("dynamic", "watch", "stream", "utils", "leaderelection")
_DEFERRED_SUBPACKAGES = """

def __getattr__(name):  # these subpackages are imported on first use (kubectl-debugx build, packaging/dist.py)
    if name not in SUBPACKAGES:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    import importlib

    return importlib.import_module("." + name, __name__)""".replace("SUBPACKAGES", repr(_SUBPACKAGES))

DEFERRED: dict[str, dict[str, str]] = {
    "kubernetes/__init__.py": {
        **{f"from . import {sub}": "" for sub in _SUBPACKAGES[:-1]},
        f"from . import {_SUBPACKAGES[-1]}": _DEFERRED_SUBPACKAGES,
    },
    "kubernetes/client/rest.py": {
        "from requests.utils import should_bypass_proxies": _deferred_call("requests.utils", "should_bypass_proxies"),
    },
    "kubernetes/client/api_client.py": {
        "from dateutil.parser import parse": _deferred_call("dateutil.parser", "parse"),
        "from multiprocessing.pool import ThreadPool": _deferred_call("multiprocessing.pool", "ThreadPool"),
    },
    "kubernetes/config/kube_config.py": {
        "import oauthlib.oauth2": _DEFERRED_PACKAGE,
        "from requests_oauthlib import OAuth2Session": _deferred_call("requests_oauthlib", "OAuth2Session"),
    },
    "kubernetes/stream/ws_client.py": {
        "from requests.utils import should_bypass_proxies": _deferred_call("requests.utils", "should_bypass_proxies"),
    },
    "urllib3/http2/__init__.py": {
        "from importlib.metadata import version": _deferred_call("importlib.metadata", "version"),
    },
}


# --- THIRD_PARTY_LICENSES -------------------------------------------------------------------------------
# Every *.dist-info left in the site-packages the zipapp is made of: name, version, the licence its metadata
# names and the full text of the licence files it ships (License-File, PEP 639: under licenses/ since metadata
# 2.4, beside METADATA before). A package without any licence text stops the build.
OWN = "kubectl-debugx"
LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|authors)([._-].*)?$", re.IGNORECASE)
RULE = "=" * 100


def _licence_texts(info: Path, meta: Any) -> list[tuple[str, str]]:
    names = meta.get_all("License-File") or []
    found = []
    for name in names:
        for candidate in (info / "licenses" / name, info / name):
            if candidate.is_file():
                found.append((name, candidate.read_text(encoding="utf-8", errors="replace")))
                break
        else:
            raise SystemExit(f"{info.name}: METADATA names License-File {name}, which is not in the dist-info")
    if not found:  # older metadata: licence files copied into the dist-info without a License-File line
        for candidate in sorted([*info.glob("*"), *info.glob("licenses/**/*")]):
            if candidate.is_file() and LICENSE_FILE.match(candidate.name):
                found.append((str(candidate.relative_to(info)), candidate.read_text(encoding="utf-8",
                                                                                  errors="replace")))
    licence = meta.get("License") or ""
    if not found and "\n" in licence.strip():  # the whole text in the License field
        found.append(("METADATA License field", licence))
    return found


def _licence_name(meta: Any) -> str:
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    field = (meta.get("License") or "").strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    names = [field.splitlines()[0]] if field and "\n" not in field else []
    names += [c for c in classifiers if c not in names]
    return "; ".join(names) or "see the text below"


def third_party_licenses(site: Path, out: Path) -> None:
    entries = []
    for info in sorted(site.glob("*.dist-info")):
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"), headersonly=True)
        name, version = meta["Name"], meta["Version"]
        if re.sub(r"[-_.]+", "-", name).lower() == OWN:
            continue
        texts = _licence_texts(info, meta)
        if not texts:
            raise SystemExit(f"error: {name} {version} ({info.name}) is bundled but ships no licence text: add it "
                             "by hand in packaging/dist.py or do not bundle it")
        entries.append((name, version, _licence_name(meta), texts))
    entries.sort(key=lambda e: e[0].lower())
    lines = [
        "Third-party software bundled in kubectl-debugx (the zipapp's site-packages), with the licence each",
        "package's metadata names and the full text of the licence files it ships. kubectl-debugx itself is",
        "under the Apache License 2.0 (LICENSE).",
        "",
        *(f"  {name} {version}: {licence}" for name, version, licence, _ in entries),
    ]
    for name, version, licence, texts in entries:
        lines += ["", RULE, f"{name} {version}", f"License: {licence}", RULE]
        for file, text in texts:
            lines += ["", f"--- {file} ---", "", text.rstrip()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def render_manifest(template: Path, out: Path, version: str, sha256: str, uri: str, homepage: str | None) -> None:
    """homepage None: a manifest for `kubectl krew install --manifest=M --archive=A` only (`uri` is the archive's
    file name, which krew ignores when --archive is given); not one to publish in an index."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise SystemExit(f"bad sha256 {sha256!r}")
    text = template.read_text()
    first, rest = text.split("\n", 1)
    if not first.startswith("#"):
        raise SystemExit(f"{template}: the first line should be a comment")
    if homepage is None:
        rest = re.sub(r"(?m)^  homepage: .*\n", "", rest)
        first = (f"# Local build: for `kubectl krew install --manifest=debugx.yaml --archive={uri}` only; the uri is "
                 "no download address.\n# `DEBUGX_REPO_URL=https://... ./build.sh release` makes one to publish.")
    else:
        first = "# Release manifest made by build.sh from krew/debugx.yaml."
    text = first + "\n" + rest
    homepage = homepage or ""
    for key, value in {"VERSION": version, "SHA256": sha256, "URI": uri, "HOMEPAGE": homepage}.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", text)
    if left:
        raise SystemExit(f"{template}: unknown placeholders {left}")
    out.write_text(text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["finish-zipapp"] and len(argv) >= 2:
        finish_zipapp(Path(argv[1]), [Path(a) for a in argv[2:]])
    elif argv[:1] == ["lazy-kubernetes"] and len(argv) == 2:
        lazy_kubernetes(Path(argv[1]))
    elif argv[:1] == ["licenses"] and len(argv) == 3:
        third_party_licenses(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["manifest"] and len(argv) == 7 and argv[5] == "--local":
        render_manifest(Path(argv[1]), Path(argv[2]), argv[3], argv[4], argv[6], None)
    elif argv[:1] == ["manifest"] and len(argv) == 7:
        render_manifest(Path(argv[1]), Path(argv[2]), argv[3], argv[4], argv[5], argv[6])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
