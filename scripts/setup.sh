#!/usr/bin/env bash
# Installs the Debian 12 packages cdp-sync needs to build, test and run.
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libboost-dev libboost-system-dev libssl-dev
  libpqxx-dev libpq-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libsimdjson-dev  # member pages of a resync, parsed several times faster than nlohmann
  libgtest-dev libgmock-dev libsystemd-dev libcli11-dev
  postgresql-15 postgresql-client-15
  clang libclang-rt-14-dev openssl ca-certificates procps
  dpkg-dev lintian systemd  # scripts/package.sh: dpkg-shlibdeps, lintian; package-test.sh: systemd-analyze
  curl  # the metrics tests scrape /metrics
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
