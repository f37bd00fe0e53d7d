#!/usr/bin/env bash
# Benchmark: `pgdrill catalog` against the Python tools for the same information
# (barman-cloud-backup-list + a boto3 listing of the WAL prefix), on one synthetic lineage of
# SEGMENTS WAL segments and 30 backups, on each S3 endpoint in ENDPOINTS (moto, s3s-fs) on
# loopback; then peak memory of `pgdrill catalog` on a lineage of BIG_SEGMENTS segments.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
segments=${SEGMENTS:-20000}
big_segments=${BIG_SEGMENTS:-100000}
runs=${RUNS:-5}
endpoints=${ENDPOINTS:-moto s3s-fs}
out=$root/bench-out
mkdir -p "$out"

bash scripts/prereqs.sh
cargo build --release --quiet
bin=$root/target/release/pgdrill
py=$root/.tools/barman/bin/python
bc=$root/.tools/barman/bin
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
calc() { "$py" -c "print(format($1, '$2'))"; }
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
trap stop_server EXIT

start_server() { # name → sets ep
  local port
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  case $1 in
    moto) "$root/.tools/moto/bin/moto_server" -H 127.0.0.1 -p "$port" >"$out/$1.log" 2>&1 & ;;
    s3s-fs)
      local s3s data=$out/s3s-data
      s3s=$(bash scripts/s3s-fs.sh)
      rm -rf "$data"; mkdir -p "$data"
      "$s3s" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" "$data" >"$out/$1.log" 2>&1 & ;;
    *) echo "unknown endpoint $1" >&2; exit 64 ;;
  esac
  server_pid=$!
  ep=http://127.0.0.1:$port
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.1; done
  echo "$1 did not start" >&2; exit 2
}

echo "| endpoint | pgdrill catalog | barman-cloud-backup-list + boto3 listing | raw boto3 listing | speed-up | pgdrill / raw | peak RSS, $big_segments segments |" >"$out/results.md"
echo "|---|---|---|---|---|---|---|" >>"$out/results.md"
for name in $endpoints; do
  start_server "$name"
  echo "$name: populating $segments segments + 30 backups…" >&2
  "$py" scripts/bench_populate.py "$ep" bench pg bench-v1 "$segments" 30 >&2

  pgdrill_run() { "$bin" catalog s3://bench/pg --server bench-v1 --endpoint-url "$ep" --output json >/dev/null; }
  python_run() {
    "$bc/barman-cloud-backup-list" --endpoint-url "$ep" --format json s3://bench/pg bench-v1 >/dev/null
    "$py" scripts/bench_list.py "$ep" bench pg/bench-v1/wals/ >/dev/null
  }
  count=$("$bin" catalog s3://bench/pg --server bench-v1 --endpoint-url "$ep" --output json |
    "$py" -c 'import json,sys; l=json.load(sys.stdin)["lineages"][0]; print(l["wal"]["segments"], len(l["backups"]))')
  [ "$count" = "$segments 30" ] || { echo "$name: catalog saw '$count', expected '$segments 30'" >&2; exit 1; }
  : >"$out/$name-pgdrill.txt"; : >"$out/$name-python.txt"; : >"$out/$name-raw.txt"
  for _ in $(seq "$runs"); do
    t=$(now); pgdrill_run; calc "$(now) - $t" .3f >>"$out/$name-pgdrill.txt"
    t=$(now); python_run; calc "$(now) - $t" .3f >>"$out/$name-python.txt"
    "$py" scripts/bench_list.py "$ep" bench pg/bench-v1/wals/ | awk '{print $2}' >>"$out/$name-raw.txt"
  done
  p=$(median <"$out/$name-pgdrill.txt"); y=$(median <"$out/$name-python.txt"); r=$(median <"$out/$name-raw.txt")

  echo "$name: populating $big_segments segments for the memory run…" >&2
  "$py" scripts/bench_populate.py "$ep" bench pg bench-big "$big_segments" 30 >&2
  /usr/bin/time -f "%M %e" -o "$out/$name-mem.txt" \
    "$bin" catalog s3://bench/pg --server bench-big --endpoint-url "$ep" --output json >/dev/null
  read -r rss_kb mem_wall <"$out/$name-mem.txt"
  echo "| $name | ${p} s | ${y} s | ${r} s | $(calc "$y / $p" .1f)x | $(calc "$p / $r" .2f)x | $((rss_kb / 1024)) MiB (${mem_wall} s) |" >>"$out/results.md"
  stop_server
done
cat "$out/results.md"
