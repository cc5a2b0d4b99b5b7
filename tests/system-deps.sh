#!/usr/bin/env bash
# The system tools the end-to-end tests need (the test cluster runs nginx, tcpdump and strace from the host;
# the tests read pcaps with tshark and drive the cluster with kubectl), and `python3 -m venv` for the build's
# .venv (python3-venv: Debian's python3 has no ensurepip without it). Idempotent:
# - everything there: says nothing, exits 0, never touches apt (a few `command -v`, well under a second);
# - something missing, as root with apt-get: installs the Debian packages (apt-get update, then install);
# - otherwise (no root, no apt-get, or kubectl missing, which is no Debian package): one `error:` line on
#   stderr naming what is missing and how to install it, exit 1.
# Used by `./build.sh test`, before it creates .venv (it goes on without them: unit tests still run, e2e tests
# skip or fail), and by .ci/run.
set -euo pipefail

# command that proves the package is there -> Debian package. Checked by command, not by dpkg, so that a
# tool installed another way (or another nginx flavour) counts too.
TOOLS=(
  ip:iproute2 ps:procps tcpdump:tcpdump strace:strace curl:curl nginx:nginx-light tshark:tshark tar:tar
  gzip:gzip git:git
)
# nginx, tcpdump and ip live in /usr/sbin, which is not on every user's PATH.
search_path="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing_packages() {
  local entry
  for entry in "${TOOLS[@]}"; do
    PATH="$search_path" command -v "${entry%%:*}" >/dev/null 2>&1 || printf '%s ' "${entry#*:}"
  done
  [ -e /etc/ssl/certs/ca-certificates.crt ] || printf '%s ' ca-certificates
  # `python3 -m venv` (./build.sh creates .venv with it) needs ensurepip, which Debian ships apart.
  if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    printf '%s ' python3-venv
  fi
}

packages=$(missing_packages)
packages=${packages% }
install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages"

if [ -n "$packages" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # -qq and stdout dropped: the build's own output stays readable; apt's errors still reach stderr.
  # shellcheck disable=SC2086  # one word per package
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null; }; then
    echo "error: installing the test tools failed: $install_cmd" >&2
    exit 1
  fi
  packages=$(missing_packages)
  packages=${packages% }
fi

problem=""
if [ -n "$packages" ]; then
  if [ "$(id -u)" != 0 ]; then
    problem="missing packages: $packages; as root run: $install_cmd"
  elif ! command -v apt-get >/dev/null 2>&1; then
    problem="missing packages (Debian names): $packages, and there is no apt-get to install them"
  else
    problem="packages still missing after: $install_cmd"
  fi
fi
if ! command -v kubectl >/dev/null 2>&1; then
  problem="${problem:+$problem; }kubectl is missing (no Debian package): see https://kubernetes.io/docs/tasks/tools/"
fi
if [ -n "$problem" ]; then
  echo "error: the end-to-end tests need system tools: $problem" >&2
  exit 1
fi
