#!/usr/bin/env bash
# Build dist/kubectl-debugx (a shiv zipapp) and the krew archive; `./build.sh test` also runs every check.
#   ./build.sh         build
#   ./build.sh test    build, then ruff, mypy and the whole pytest suite (unit + e2e) on the built executable
set -euo pipefail
cd "$(dirname "$0")"

pick_python() {
  # Build with the oldest supported Python so the resolver picks versions that run on all of 3.10-3.13.
  for candidate in "${PYTHON:-}" python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python3.10" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "$candidate"; return
    fi
  done
  echo "error: Python >= 3.10 is needed to build" >&2; exit 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}"
version=$(.venv/bin/python -c 'import kubectl_debugx; print(kubectl_debugx.__version__)')
rm -rf build/wheel dist
mkdir -p build/wheel dist
# A wheel, not the source directory: installing a directory records its absolute path and breaks reproducibility.
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w build/wheel .
site=build/site-packages
rm -rf "$site"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile --target "$site" \
  build/wheel/kubectl_debugx-"$version"-py3-none-any.whl
# Native modules would tie the zipapp to one platform and Python. Every one our pins pull in (PyYAML's
# _yaml, charset_normalizer's mypyc build) has a pure-Python fallback next to it, so drop them.
find "$site" -name '*.so' -delete
find "$site" -name '*.dist-info' -prune -o -name 'RECORD' -print | xargs -r rm -f
rm -rf "$site"/bin
.venv/bin/shiv --reproducible --compressed -p '/usr/bin/env python3' \
  -e kubectl_debugx.__main__:main -o dist/kubectl-debugx --site-packages "$site" --no-modify
chmod 0755 dist/kubectl-debugx
echo "built dist/kubectl-debugx ($(du -h dist/kubectl-debugx | cut -f1))" >&2

if [ "${1:-}" = "test" ]; then
  shift
  .venv/bin/ruff check kubectl_debugx tests
  .venv/bin/mypy
  export DEBUGX_EXECUTABLE="$PWD/dist/kubectl-debugx"
  .venv/bin/pytest "$@"
fi
