#!/usr/bin/env bash
# Installs what pgdrill's sandbox and tests need into .tools/ (ignored by git):
#   .tools/barman   venv with barman[cloud,azure] (barman-cloud-* commands, boto3, azure-storage-blob)
#   .tools/moto     venv with moto[server] (S3 endpoint on loopback)
#   .tools/azurite  npm install of Azurite (Azure Blob endpoint on loopback)
# Idempotent: each part is skipped when already present. PostgreSQL is detected, not installed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${PGDRILL_TOOLS:-$root/.tools}
barman_version=3.19.1
moto_version=5.2.5
azurite_version=3.35.0
# The venvs must be built from the system Python: a pyenv Python under /root is not
# executable by the unprivileged user PostgreSQL runs as.
python=${PGDRILL_PYTHON:-/usr/bin/python3}

log() { printf 'prereqs: %s\n' "$*" >&2; }

mkdir -p "$tools"
chmod 755 "$tools"

if [ ! -x "$tools/barman/bin/barman-cloud-backup" ]; then
  log "installing barman[cloud,azure]==$barman_version into $tools/barman"
  rm -rf "$tools/barman"
  "$python" -m venv "$tools/barman"
  "$tools/barman/bin/pip" install -q --disable-pip-version-check "barman[cloud,azure]==$barman_version"
fi

if [ ! -x "$tools/moto/bin/moto_server" ]; then
  log "installing moto[server]==$moto_version into $tools/moto"
  rm -rf "$tools/moto"
  "$python" -m venv "$tools/moto"
  "$tools/moto/bin/pip" install -q --disable-pip-version-check "moto[server]==$moto_version"
fi

if [ "${PGDRILL_SKIP_AZURITE:-}" != 1 ] && [ ! -x "$tools/azurite/node_modules/.bin/azurite-blob" ]; then
  if command -v npm >/dev/null 2>&1; then
    log "installing azurite@$azurite_version into $tools/azurite"
    mkdir -p "$tools/azurite"
    (cd "$tools/azurite" && npm install --silent --no-audit --no-fund "azurite@$azurite_version" >/dev/null)
  else
    log "npm not found: Azure tests will be skipped (install Node.js 20 and npm)"
  fi
fi

pg_bin=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/pg_ctl" ] && pg_bin=$d
done
if [ -z "$pg_bin" ]; then
  log "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin)."
  log "Install them with: apt-get install -y postgresql (Debian/Ubuntu), or set PGDRILL_PG_BIN."
  exit 1
fi
log "PostgreSQL binaries: $pg_bin"
log "ready: $tools"
