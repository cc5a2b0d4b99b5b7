#!/usr/bin/env bash
# Build dist/kubectl-debugx (a shiv zipapp) and the krew archive; `./build.sh test` also runs every check.
#   ./build.sh         build: dist/kubectl-debugx and dist/kubectl_complete-debugx (all that dist/ holds: it is
#                      meant to be on PATH), dist/krew/kubectl-debugx-VERSION.tar.gz (krew archive: the executable,
#                      LICENSE, THIRD_PARTY_LICENSES) and dist/krew/debugx.yaml (krew manifest with its sha256,
#                      for `kubectl krew install --manifest=... --archive=...` only, unless DEBUGX_REPO_URL is set)
#   ./build.sh release build with a manifest to publish: DEBUGX_REPO_URL (https://...) is required; the manifest's
#                      homepage is it and its uri DEBUGX_REPO_URL/releases/download/vVERSION/ARCHIVE
#   ./build.sh test    build, then ruff, mypy, lint-imports and the whole pytest suite (unit + e2e) on the built
#                      executable, on DEBUGX_TEST_WORKERS pytest-xdist workers (default 4; 0 or 1: serially)
#   ./build.sh demo    build, start the test cluster, run capture, trace and nodelogs on an nginx pod (root)
#   ./build.sh cluster build, then run the test cluster in the foreground to play with (root): it prints the
#                      `export KUBECONFIG=...` and first commands to type in another shell; Ctrl-C stops it and
#                      removes everything it made
# Environment: SOURCE_DATE_EPOCH (default: last commit time) makes every artefact byte-for-byte reproducible;
# DEBUGX_REPO_URL sets the homepage and release download base written into the krew manifest.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "release" ]; then
  case "${DEBUGX_REPO_URL:-}" in
    https://?*) ;;
    *) echo "error: ./build.sh release needs DEBUGX_REPO_URL=https://... (the project's repository: the krew manifest's homepage and release download base)" >&2
       exit 2 ;;
  esac
fi

# Before building: the test cluster runs pods as processes in Linux namespaces, which needs root.
if [ "${1:-}" = "cluster" ] && [ "$(id -u)" != 0 ]; then
  echo "error: ./build.sh cluster needs root (the test cluster runs pods as processes in Linux namespaces): sudo ./build.sh cluster" >&2
  exit 2
fi

pick_python() {
  # Build with the oldest supported Python so the resolver picks versions that run on all of 3.10-3.13.
  for candidate in "${PYTHON:-}" python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python3.10" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "error: Python >= 3.10 is needed to build" >&2; exit 1
}

# `./build.sh test`: the system tools first (tests/system-deps.sh, as root installs them with apt-get), among
# them python3-venv, which `python3 -m venv` needs on Debian. Without them the run goes on: the unit tests
# still run, and the e2e tests skip or fail with their own reason.
if [ "${1:-}" = "test" ]; then
  tests/system-deps.sh || true
fi

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
# DEBUGX_SKIP_VENV=1: use .venv as it is (bench/reproducible builds copies of the tree with the same venv).
if [ -z "${DEBUGX_SKIP_VENV:-}" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
fi

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}"
version=$(.venv/bin/python -c 'import kubectl_debugx; print(kubectl_debugx.__version__)')
# DEBUGX_DIST / DEBUGX_WORK put the artefacts / scratch files elsewhere (tests build twice into temp dirs).
dist="${DEBUGX_DIST:-dist}"
work="${DEBUGX_WORK:-build}"
# dist/kubectl-debugx-*.tar.gz and dist/debugx.yaml: where earlier builds put the krew files (kubectl plugin list
# warned about the archive, which is not executable, and completion offered it as a plugin).
rm -rf "$work"/wheel "$work"/krew "$work"/THIRD_PARTY_LICENSES "$dist"/kubectl-debugx "$dist"/kubectl-debugx-*.tar.gz \
  "$dist"/debugx.yaml "$dist"/kubectl_complete-debugx "$dist"/krew
mkdir -p "$work"/wheel "$dist"/krew
# A wheel, not the source directory: installing a directory records its absolute path and breaks reproducibility.
# setuptools' own build directory goes under $work and starts empty: its default, ./build/lib, keeps the modules
# of earlier builds, so a module moved or deleted since would still be packed into the wheel.
work_abs=$(cd "$work" && pwd)
rm -rf "$work_abs"/setuptools
printf '[build]\nbuild_base = %s\n' "$work_abs/setuptools" > "$work_abs"/setuptools.cfg
DIST_EXTRA_CONFIG="$work_abs"/setuptools.cfg \
  .venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$work"/wheel .
site="$work"/site-packages
rm -rf "$site"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile --target "$site" \
  "$work"/wheel/kubectl_debugx-"$version"-py3-none-any.whl
# Native modules would tie the zipapp to one platform and Python. Every one our pins pull in (PyYAML's
# _yaml, charset_normalizer's mypyc build) has a pure-Python fallback next to it, so drop them.
find "$site" -name '*.so' -delete
# RECORD files list the console scripts in bin/ (removed below) with hashes of their shebang, which names the
# build directory; direct_url.json records the wheel's path and hash. Neither is needed to run: drop them.
find "$site" -path '*.dist-info/RECORD' -delete
rm -f "$site"/kubectl_debugx-*.dist-info/direct_url.json
rm -rf "$site"/bin
# typer imports rich only for rich markup and pretty tracebacks, both off in cli/workflow.py (rich_markup_mode=None,
# pretty_exceptions_enable=False); without it the zipapp is 1.7 MB smaller and unpacks 7 MB less.
rm -rf "$site"/rich "$site"/rich-*.dist-info "$site"/pygments "$site"/pygments-*.dist-info \
  "$site"/markdown_it "$site"/markdown_it_py-*.dist-info "$site"/mdurl "$site"/mdurl-*.dist-info
# tzdata (627 files) is python-dateutil's fallback when the system has no time zone database (Linux and macOS
# have one, and we parse no zone names); tests are not needed at run time. Fewer files: a smaller zip index
# to read on every start, less to unpack on the first.
rm -rf "$site"/tzdata "$site"/tzdata-*.dist-info "$site"/websocket/tests "$site"/certifi/tests
# kubernetes 35 imports its ~770 generated model and API classes eagerly (~120 ms of every command); load them
# on first use instead, as kubernetes 37 does (packaging/dist.py).
.venv/bin/python packaging/dist.py lazy-kubernetes "$site"
# `--help` texts and the command tree for completion, computed now from the very code in the zipapp, so that
# starts that only print help or complete a command do not import Typer (kubectl_debugx/shell/clispec.py).
(cd "$site" && COLUMNS=80 PYTHONPATH=. "$OLDPWD"/.venv/bin/python -S -m kubectl_debugx.shell.clispec) \
  > "$site"/kubectl_debugx/shell/_cli_cache.py
# The licence of every package bundled (name, version, licence, full text), from the metadata of each *.dist-info;
# the build stops if one ships no licence text. Into the zipapp's root and the krew archive, beside LICENSE.
.venv/bin/python packaging/dist.py licenses "$site" "$work"/THIRD_PARTY_LICENSES
# File modes go into the zip: do not depend on the build machine's umask.
chmod -R u=rwX,go=rX "$site"
# No --no-modify: it hashes every .py of site-packages on every start (~150 ms).
.venv/bin/shiv --reproducible --compressed -p '/usr/bin/env python3' \
  -e kubectl_debugx.__main__:main -o "$dist"/kubectl-debugx --site-packages "$site" \
  --preamble packaging/shiv_preamble.py
# Our __main__.py: checks the Python version before shiv's bootstrap extracts anything, and starts warm
# without the bootstrap (packaging/zipapp_main.py).
.venv/bin/python packaging/dist.py finish-zipapp "$dist"/kubectl-debugx "$work"/THIRD_PARTY_LICENSES
chmod 0755 "$dist"/kubectl-debugx
echo "built $dist/kubectl-debugx ($(du -h "$dist"/kubectl-debugx | cut -f1))" >&2

# kubectl >= 1.26 runs kubectl_complete-debugx for `kubectl debugx <TAB>`.
.venv/bin/python -m kubectl_debugx.shell.completion kubectl > "$dist"/kubectl_complete-debugx
chmod 0755 "$dist"/kubectl_complete-debugx

# The krew archive: the executable (0755), LICENSE and THIRD_PARTY_LICENSES, reproducible (sorted, fixed owner
# and time, gzip -n), in dist/krew/ with its manifest: dist/ itself holds only what goes on PATH.
archive="kubectl-debugx-$version.tar.gz"
stage="$work"/krew
mkdir -p "$stage"
cp "$dist"/kubectl-debugx LICENSE "$work"/THIRD_PARTY_LICENSES "$stage"/
chmod 0755 "$stage"/kubectl-debugx; chmod 0644 "$stage"/LICENSE "$stage"/THIRD_PARTY_LICENSES
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --format=gnu \
  -C "$stage" -cf - kubectl-debugx LICENSE THIRD_PARTY_LICENSES | gzip -n -9 > "$dist/krew/$archive"
sha=$(sha256sum "$dist/krew/$archive" | cut -d' ' -f1)
if [ -n "${DEBUGX_REPO_URL:-}" ]; then
  repo_url="${DEBUGX_REPO_URL%/}"
  .venv/bin/python packaging/dist.py manifest krew/debugx.yaml "$dist"/krew/debugx.yaml "$version" "$sha" \
    "$repo_url/releases/download/v$version/$archive" "$repo_url"
  echo "built $dist/krew/$archive (sha256 $sha) and $dist/krew/debugx.yaml (release: $repo_url)" >&2
else
  # No repository given: the manifest's uri is the archive's name, which krew ignores with --archive.
  .venv/bin/python packaging/dist.py manifest krew/debugx.yaml "$dist"/krew/debugx.yaml "$version" "$sha" \
    --local "$archive"
  echo "built $dist/krew/$archive (sha256 $sha) and $dist/krew/debugx.yaml (local install only)" >&2
fi

if [ "${1:-}" = "demo" ]; then
  exec .venv/bin/python packaging/demo.py "$dist/kubectl-debugx"
fi

if [ "${1:-}" = "cluster" ]; then
  # Foreground until Ctrl-C (SIGINT) or SIGTERM, which stop the cluster and remove its temp dir (tests/cluster).
  exec .venv/bin/python -m tests.cluster --play "$dist"
fi

if [ "${1:-}" = "test" ]; then
  shift
  .venv/bin/ruff check kubectl_debugx tests bench packaging
  .venv/bin/mypy
  # The layers of README "Layout" (pyproject.toml [tool.importlinter]); ruff's TID251 keeps kubernetes in kube/.
  .venv/bin/lint-imports --no-cache
  export DEBUGX_EXECUTABLE="$PWD/dist/kubectl-debugx"
  # DEBUGX_TEST_WORKERS (default 4): pytest-xdist workers, each with its own test cluster (tests/conftest.py);
  # the suite mostly waits (pods, streams, timeouts), so more workers than CPUs pay. 0 or 1: one process, no xdist.
  # --dist loadgroup: tests marked xdist_group(NAME) run on one worker, one after the other; the order in which
  # tests are handed out is tests/conftest.py's (START_FIRST), not the size of the groups.
  workers="${DEBUGX_TEST_WORKERS:-4}"
  case "$workers" in
    ''|*[!0-9]*) echo "error: DEBUGX_TEST_WORKERS must be a number, not '$workers'" >&2; exit 2 ;;
  esac
  xdist=()
  if [ "$workers" -gt 1 ]; then
    xdist=(-n "$workers" --dist loadgroup --no-loadscope-reorder)
  fi
  .venv/bin/pytest ${xdist[@]+"${xdist[@]}"} "$@"
  # The Docker subset (README "Tests"): the test cluster in its Docker mode (tests/cluster/dockermode.py), the
  # 30-/40-docker-* contract, nodelogs' copies and --follow (Docker's own rotations included); in the run above
  # the Docker cases skip. ~2 min.
  if [ "$#" -eq 0 ] && [ -z "${DEBUGX_E2E_KUBECONFIG:-}" ]; then
    DEBUGX_TEST_RUNTIME=docker .venv/bin/pytest ${xdist[@]+"${xdist[@]}"} -q \
      tests/clustertests/test_contract_docker.py tests/e2e/test_nodelogs.py tests/e2e/test_nodelogs_follow.py
  fi
fi
