#!/usr/bin/env bash
# Deletes the kind cluster kind/up.sh created, and the baseline recorded on it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster=${PGDRILL_KIND_CLUSTER:-pgdrill}

command -v kind >/dev/null 2>&1 || {
  printf 'kind/down: kind not found\n' >&2
  exit 1
}
kind delete cluster --name "$cluster"
rm -f "$here/baselines/kind.json"
