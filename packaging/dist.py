"""Build helpers called by build.sh (run with the build venv's Python).

  python packaging/dist.py finish-zipapp ZIPAPP            packaging/launcher.sh + zipapp_main.py as __main__.py
  python packaging/dist.py lazy-kubernetes SITE_PACKAGES    import the kubernetes client's models on first use
  python packaging/dist.py manifest TEMPLATE OUT VERSION SHA256 URI HOMEPAGE
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def finish_zipapp(path: Path) -> None:
    """Rewrite the zipapp behind our launcher (packaging/launcher.sh) with our __main__.py; entries, order,
    times and modes are kept, so it stays reproducible."""
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


def render_manifest(template: Path, out: Path, version: str, sha256: str, uri: str, homepage: str) -> None:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise SystemExit(f"bad sha256 {sha256!r}")
    text = template.read_text()
    for key, value in {"VERSION": version, "SHA256": sha256, "URI": uri, "HOMEPAGE": homepage}.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", text)
    if left:
        raise SystemExit(f"{template}: unknown placeholders {left}")
    out.write_text(text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["finish-zipapp"] and len(argv) == 2:
        finish_zipapp(Path(argv[1]))
    elif argv[:1] == ["lazy-kubernetes"] and len(argv) == 2:
        lazy_kubernetes(Path(argv[1]))
    elif argv[:1] == ["manifest"] and len(argv) == 7:
        render_manifest(Path(argv[1]), Path(argv[2]), *argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
