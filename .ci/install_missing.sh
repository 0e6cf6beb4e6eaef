#!/usr/bin/env bash
# Installs, with apt-get, those of the given Debian packages that are not installed yet
# (as root, or through sudo otherwise); does nothing when all are there. Shared by
# .ci/run, .ci/sanitizers.sh and .ci/fuzz.sh.
#   usage: bash .ci/install_missing.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"
