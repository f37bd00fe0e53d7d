#!/usr/bin/env bash
# Builds a kind cluster for drills with the cnpg backend (see kind/README.md):
#   kind cluster `pgdrill` (kind/cluster.yaml), cert-manager, CloudNativePG, the Barman Cloud
#   plugin, MinIO with a bucket `backups`, and in namespace `app` a one-instance Cluster `app`
#   archiving to s3://backups/pg/app-v1, with a table `orders`, a completed base backup and a
#   baseline (kind/baselines/kind.json) for kind/drill.yaml.
# Idempotent: run it again to finish or repair a partial setup. Needs docker, kind, kubectl,
# and pgdrill ($PGDRILL, else pgdrill on PATH, else built here with cargo).
# Leaves the current kubectl context on kind-pgdrill, which is what pgdrill uses.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cluster=${PGDRILL_KIND_CLUSTER:-pgdrill}
rows=${PGDRILL_KIND_ROWS:-1000}
pg_port=${PGDRILL_KIND_PG_PORT:-15432}

cert_manager_version=v1.18.2
cnpg_version=1.30.0
plugin_version=v0.14.0
cert_manager_url=https://github.com/cert-manager/cert-manager/releases/download/$cert_manager_version/cert-manager.yaml
cnpg_url=https://github.com/cloudnative-pg/cloudnative-pg/releases/download/v$cnpg_version/cnpg-$cnpg_version.yaml
plugin_url=https://github.com/cloudnative-pg/plugin-barman-cloud/releases/download/$plugin_version/manifest.yaml

log() { printf 'kind/up: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Runs a command until it succeeds, 12 tries 10 s apart: webhooks answer a little after their
# Deployment reports Available.
retry() {
  local try
  for try in $(seq 1 12); do
    if "$@"; then
      return 0
    fi
    log "attempt $try failed, retrying in 10 s: $*"
    sleep 10
  done
  return 1
}

[[ $rows =~ ^[0-9]+$ ]] || die "PGDRILL_KIND_ROWS must be a number, not $rows"
[[ $pg_port =~ ^[0-9]+$ ]] || die "PGDRILL_KIND_PG_PORT must be a number, not $pg_port"
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: see kind/README.md"
done
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer"

pgdrill=${PGDRILL:-}
if [ -z "$pgdrill" ]; then
  if command -v pgdrill >/dev/null 2>&1; then
    pgdrill=$(command -v pgdrill)
  else
    log "building pgdrill (cargo build --release --locked)"
    (cd "$root" && cargo build --release --locked)
    pgdrill=$root/target/release/pgdrill
  fi
fi

log "kind cluster $cluster"
clusters=$(kind get clusters 2>/dev/null)
if grep -qx "$cluster" <<<"$clusters"; then
  log "exists; reusing it"
else
  kind create cluster --name "$cluster" --config "$here/cluster.yaml" --wait 180s
fi
kubectl config use-context "kind-$cluster" >/dev/null

log "cert-manager $cert_manager_version"
kubectl apply -f "$cert_manager_url"
kubectl wait --for=condition=Available --timeout=300s -n cert-manager deployment --all

log "CloudNativePG $cnpg_version"
kubectl apply --server-side --force-conflicts -f "$cnpg_url"
kubectl wait --for=condition=Available --timeout=300s -n cnpg-system deployment/cnpg-controller-manager

log "Barman Cloud plugin $plugin_version"
retry kubectl apply -f "$plugin_url"
kubectl wait --for=condition=Available --timeout=300s -n cnpg-system deployment/barman-cloud

log "MinIO and the bucket backups"
kubectl apply -f "$here/manifests/minio.yaml"
kubectl rollout status -n minio deployment/minio --timeout=300s
kubectl apply -f "$here/manifests/minio-bucket.yaml"
kubectl wait --for=condition=Complete --timeout=300s -n minio job/create-bucket

log "namespace app: credentials, ObjectStore app-store, Cluster app"
retry kubectl apply -f "$here/manifests/app.yaml"
kubectl wait --for=condition=Ready --timeout=600s -n app cluster/app

primary=$(kubectl get cluster app -n app -o jsonpath='{.status.currentPrimary}')
[ -n "$primary" ] || die "Cluster app reports no primary"
psql_app() {
  kubectl exec -n app "$primary" -c postgres -- psql -X -q -v ON_ERROR_STOP=1 -d app -c "$1"
}

log "table orders: $rows rows (owned by app, so the app user can count them)"
psql_app "SET ROLE app;
CREATE TABLE IF NOT EXISTS orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer text NOT NULL,
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO orders (customer, amount)
  SELECT 'customer-' || (g % 97), round((g % 1000) * 1.25, 2)
  FROM generate_series(1, $rows) AS g
  WHERE NOT EXISTS (SELECT 1 FROM orders);"

log "ScheduledBackup app (the first backup starts at once)"
retry kubectl apply -f "$here/manifests/backup.yaml"
log "waiting for a completed backup"
deadline=$((SECONDS + 900))
while :; do
  phases=$(kubectl get backups.postgresql.cnpg.io -n app \
    -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}')
  if grep -qx completed <<<"$phases"; then
    break
  fi
  if grep -qx failed <<<"$phases"; then
    kubectl describe backups.postgresql.cnpg.io -n app >&2
    die "a backup failed"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "no completed backup after 15 minutes"
  sleep 10
done
kubectl get backups.postgresql.cnpg.io -n app

log "baseline kind: counts, a restore point and a WAL switch, through a port-forward"
kubectl port-forward -n app svc/app-rw "$pg_port:5432" >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT
for _ in $(seq 1 30); do
  if (: <"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; then
    break
  fi
  sleep 1
done
(: <"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null || die "port-forward to svc/app-rw on 127.0.0.1:$pg_port did not open"
# The app-app Secret's uri is postgresql://app:<password>@app-rw.app:5432/app; point it at
# the forwarded port. It goes to pgdrill through the environment only.
uri=$(kubectl get secret app-app -n app -o jsonpath='{.data.uri}' | base64 -d)
source_url=$(printf '%s' "$uri" | sed -E "s#@[^@/]+/#@127.0.0.1:$pg_port/#")
mkdir -p "$here/baselines"
PGDRILL_SOURCE_URL=$source_url "$pgdrill" baseline record -f "$here/drill.yaml" \
  --name kind --restore-point --switch-wal
kill "$forward" 2>/dev/null || true
trap - EXIT

log "more rows after the baseline, then a WAL switch so the archive holds them"
psql_app "SET ROLE app;
INSERT INTO orders (customer, amount)
  SELECT 'late-' || g, 10 FROM generate_series(1, 100) AS g;"
# A separate statement, so that the switch comes after the insert's commit.
psql_app "SELECT pg_switch_wal();"

cat <<EOF

kind cluster $cluster is ready (kubectl context kind-$cluster).
  source:   Cluster app/app, lineage app-v1 in s3://backups/pg (MinIO in namespace minio)
  baseline: $here/baselines/kind.json

Next:
  pgdrill plan -f kind/drill.yaml
  pgdrill run -f kind/drill.yaml --report-dir reports
  kind/down.sh        # deletes the cluster
EOF
