#!/usr/bin/env bash
# A guided tour on this machine: a sandbox with two lineages, the catalog, preflight decisions,
# and a WAL gap found before any restore runs into it. Everything stops at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${PGDRILL_BIN:-$root/target/debug/pgdrill}
dir=${DEMO_DIR:-$(mktemp -d /tmp/pgdrill-demo.XXXXXX)}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap '"$bin" sandbox down --dir "$dir" >/dev/null 2>&1 || true' EXIT

step "Sandbox: S3 endpoint on loopback + PostgreSQL archiving with barman-cloud"
"$bin" sandbox up --dir "$dir"
# shellcheck disable=SC1091
. "$dir/sandbox.env"
step "Base backup, workload, second backup, more workload"
"$bin" sandbox backup --dir "$dir"
"$bin" sandbox workload --dir "$dir" --batches 3 --rows 1000 --interval-ms 1200
"$bin" sandbox backup --dir "$dir"
"$bin" sandbox workload --dir "$dir" --batches 2 --rows 1000
step "Disaster recovery: restore app-v1, promote, archive into app-v2"
"$bin" sandbox new-lineage --dir "$dir"
"$bin" sandbox workload --dir "$dir" --batches 1 --rows 1000
step "Catalog of every lineage"
"$bin" catalog "$PGDRILL_DESTINATION_PATH"
step "Preflight: latest, a point in time, and a target past the archive"
first_batch=$(head -1 "$dir/workload.jsonl" | sed 's/.*"committed_at":"\([^"]*\)".*/\1/')
"$bin" preflight "$PGDRILL_DESTINATION_PATH" --server app-v1 --target latest
"$bin" preflight "$PGDRILL_DESTINATION_PATH" --server app-v1 --target "time:$first_batch"
"$bin" preflight "$PGDRILL_DESTINATION_PATH" --server app-v1 --target "time:2999-01-01T00:00:00Z" || echo "(refused, as expected: exit $?)"
step "A WAL segment disappears from app-v1"
victim=$(sed -n 2p "$dir/workload.jsonl" | sed 's/.*"wal":"\([^"]*\)".*/\1/')
"$PGDRILL_BARMAN_BIN/python" -c "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1]).delete_object(Bucket='pgdrill', Key=sys.argv[2])" \
  "$PGDRILL_ENDPOINT_URL" "sandbox/app-v1/wals/${victim:0:16}/$victim.gz"
"$bin" catalog "$PGDRILL_DESTINATION_PATH" --server app-v1
third_batch=$(sed -n 3p "$dir/workload.jsonl" | sed 's/.*"committed_at":"\([^"]*\)".*/\1/')
"$bin" preflight "$PGDRILL_DESTINATION_PATH" --server app-v1 --target "time:$third_batch" || echo "(refused, as expected: exit $?)"
step "Sandbox down"
"$bin" sandbox down --dir "$dir"
echo "state and logs kept in $dir"
