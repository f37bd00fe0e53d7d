#!/usr/bin/env bash
# Benchmark: a local drill of a ~1 GB source (pgbench scale SCALE, default 70) to latest and to
# a point in time, `pgdrill run` against a hand-written shell script doing the same
# barman-cloud-restore, recovery and counts, alternately, RUNS times each (default 3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scale=${SCALE:-70}
runs=${RUNS:-3}
out=$root/bench-out/drill
rm -rf "$out"; mkdir -p "$out"

bash scripts/prereqs.sh
cargo build --release --quiet
bin=$root/target/release/pgdrill
sbx=$out/sandbox
trap '"$bin" sandbox down --dir "$sbx" >/dev/null 2>&1 || true' EXIT

"$bin" sandbox up --dir "$sbx" >&2
# shellcheck disable=SC1091
. "$sbx/sandbox.env"
pgb=$(dirname "$(command -v pg_ctl || echo /usr/lib/postgresql/15/bin/pg_ctl)")
[ -x "$pgb/pgbench" ] || pgb=/usr/lib/postgresql/15/bin
port=${PGDRILL_SOURCE_URL##*:}; port=${port%%/*}
psql_src() { "$pgb/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -At -c "$1"; }

echo "pgbench -i -s $scale…" >&2
"$pgb/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres postgres >&2
psql_src "select pg_size_pretty(pg_database_size('postgres'))" | sed 's/^/source size: /' >&2
"$bin" sandbox backup --dir "$sbx" >&2
"$pgb/pgbench" -t 2000 -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
sleep 1.1
target=$(psql_src "select to_char(now() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.1
"$pgb/pgbench" -t 2000 -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
"$bin" sandbox workload --dir "$sbx" --batches 1 --rows 10 >&2   # switches WAL, waits for the archive
echo "PITR target: $target" >&2

tables="public.pgbench_accounts public.pgbench_branches public.pgbench_history public.pgbench_tellers"
cat >"$out/bench.yaml" <<YAML
apiVersion: pgdrill/v1
name: bench
source:
$(sed -n '/^  barmanObjectStore:/,/^  secretsDir:/p' "$sbx/drill.yaml" | sed "s#secretsDir: secrets#secretsDir: $sbx/secrets#")
lineages: [app-v1]
targets: [latest]
checks:
  tables: [${tables// /, }]
  counts: {latest: report, pointInTime: report}
report: {formats: [json]}
YAML

# The same drill by hand: restore, recovery settings, start, wait for promotion, count, stop.
script_drill() { # $1 = "" for latest, or a target time
  local d=$out/script-drill port2 count_sql
  rm -rf "$d"; mkdir -p "$d"; chown postgres: "$d" 2>/dev/null || true
  runuser -u postgres -- "$PGDRILL_BARMAN_BIN/barman-cloud-restore" --endpoint-url "$PGDRILL_ENDPOINT_URL" \
    "$PGDRILL_DESTINATION_PATH" app-v1 latest "$d/pgdata" >/dev/null
  port2=$("$PGDRILL_BARMAN_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  {
    echo "port = $port2"; echo "listen_addresses = '127.0.0.1'"; echo "unix_socket_directories = '$d'"
    echo "archive_mode = off"; echo "hot_standby = on"; echo "recovery_target_action = 'promote'"
    echo "restore_command = '$PGDRILL_BARMAN_BIN/barman-cloud-wal-restore --endpoint-url $PGDRILL_ENDPOINT_URL $PGDRILL_DESTINATION_PATH app-v1 %f %p'"
    [ -n "$1" ] && echo "recovery_target_time = '$1'"
  } >>"$d/pgdata/postgresql.auto.conf"
  touch "$d/pgdata/recovery.signal"; chown postgres: "$d/pgdata/recovery.signal"
  runuser -u postgres -- "$pgb/pg_ctl" -D "$d/pgdata" -l "$d/log" -w -t 600 start >/dev/null
  until [ "$("$pgb/psql" -X -h 127.0.0.1 -p "$port2" -U postgres -Atc 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.2; done
  count_sql=$(for t in $tables; do printf 'select count(*) from %s;' "$t"; done)
  "$pgb/psql" -X -h 127.0.0.1 -p "$port2" -U postgres -Atc "$count_sql" >/dev/null
  runuser -u postgres -- "$pgb/pg_ctl" -D "$d/pgdata" -m immediate -w stop >/dev/null
  rm -rf "$d"
}

pgdrill_drill() { # $1 = target
  "$bin" run -f "$out/bench.yaml" --target "$1" --report-dir "$out/reports" >/dev/null 2>&1
}

now() { date +%s.%N; }
calc() { "$PGDRILL_BARMAN_BIN/python" -c "print(format($1, '$2'))"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for kind in latest pitr; do : >"$out/$kind-pgdrill.txt"; : >"$out/$kind-script.txt"; done
for i in $(seq "$runs"); do
  echo "run $i/$runs…" >&2
  t=$(now); pgdrill_drill latest; calc "$(now) - $t" .2f >>"$out/latest-pgdrill.txt"
  t=$(now); script_drill ""; calc "$(now) - $t" .2f >>"$out/latest-script.txt"
  t=$(now); pgdrill_drill "time:$target"; calc "$(now) - $t" .2f >>"$out/pitr-pgdrill.txt"
  t=$(now); script_drill "$target"; calc "$(now) - $t" .2f >>"$out/pitr-script.txt"
done
verdicts=$(grep -ho '"verdict": "[a-z]*"' "$out"/reports/*/report.json | sort | uniq -c | tr '\n' ' ')
{
  echo "| drill | pgdrill run (median of $runs) | shell script (median of $runs) | ratio |"
  echo "|---|---|---|---|"
  for kind in latest pitr; do
    p=$(median <"$out/$kind-pgdrill.txt"); s=$(median <"$out/$kind-script.txt")
    echo "| $kind | ${p} s | ${s} s | $(calc "$p / $s" .2f)x |"
  done
  echo
  echo "pgdrill verdicts: $verdicts"
} | tee "$out/results.md"
