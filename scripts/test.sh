#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs pytest.
#   bash scripts/test.sh [pytest args...]
# Installs (when missing): Debian's chromium (report tests in a real headless browser),
# munge + slurmctld + slurmd + slurm-client (a real single-node Slurm, via
# scripts/slurm-up.sh), rsync, git, git-lfs (snapshots of LFS-tracked files); then `pip install -e ".[test]"`.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

apt_pkgs="git git-lfs chromium rsync"
missing=""
for p in $apt_pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[test.sh] apt-get install:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "[test.sh] pip install -e .[test]"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test]"

# A real single-node Slurm for tests/backends/test_*slurm*.py (idempotent; ~1 s when installed).
if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
  bash scripts/slurm-up.sh
fi

echo "[test.sh] pytest"
exec python3 -m pytest -q "$@"
