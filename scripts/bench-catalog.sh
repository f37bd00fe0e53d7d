#!/usr/bin/env bash
# Benchmark: `pgdrill catalog` against the Python tools for the same information
# (barman-cloud-backup-list + a boto3 listing of the WAL prefix), on one synthetic lineage of
# SEGMENTS WAL segments and 30 backups in a loopback S3 endpoint (moto); then peak memory of
# `pgdrill catalog` on a lineage of BIG_SEGMENTS segments.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
segments=${SEGMENTS:-20000}
big_segments=${BIG_SEGMENTS:-100000}
runs=${RUNS:-5}
out=$root/bench-out
mkdir -p "$out"

bash scripts/prereqs.sh
cargo build --release --quiet
bin=$root/target/release/pgdrill
py=$root/.tools/barman/bin/python
bc=$root/.tools/barman/bin

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.tools/moto/bin/moto_server" -H 127.0.0.1 -p "$port" >"$out/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null' EXIT
ep=http://127.0.0.1:$port
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1

echo "populating $segments segments + 30 backups…" >&2
"$py" scripts/bench_populate.py "$ep" bench pg bench-v1 "$segments" 30 >&2

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pgdrill_run() { "$bin" catalog s3://bench/pg --server bench-v1 --endpoint-url "$ep" --output json >/dev/null; }
python_run() {
  "$bc/barman-cloud-backup-list" --endpoint-url "$ep" --format json s3://bench/pg bench-v1 >/dev/null
  "$py" scripts/bench_list.py "$ep" bench pg/bench-v1/wals/ >/dev/null
}

pgdrill_run # warm-up
: >"$out/pgdrill.txt"; : >"$out/python.txt"; : >"$out/raw.txt"
for _ in $(seq "$runs"); do
  t=$(now); pgdrill_run; echo "$(now) - $t" | bc -l >>"$out/pgdrill.txt"
  t=$(now); python_run; echo "$(now) - $t" | bc -l >>"$out/python.txt"
  "$py" scripts/bench_list.py "$ep" bench pg/bench-v1/wals/ | awk '{print $2}' >>"$out/raw.txt"
done
p=$(median <"$out/pgdrill.txt"); y=$(median <"$out/python.txt"); r=$(median <"$out/raw.txt")
count=$("$bin" catalog s3://bench/pg --server bench-v1 --endpoint-url "$ep" --output json | "$py" -c 'import json,sys; l=json.load(sys.stdin)["lineages"][0]; print(l["wal"]["segments"], len(l["backups"]))')

echo "populating $big_segments segments for the memory run…" >&2
"$py" scripts/bench_populate.py "$ep" bench pg bench-big "$big_segments" 30 >&2
/usr/bin/time -f "%M %e" -o "$out/mem.txt" "$bin" catalog s3://bench/pg --server bench-big --endpoint-url "$ep" --output json >/dev/null
read -r rss_kb mem_wall <"$out/mem.txt"

{
  echo "| measure | value |"
  echo "|---|---|"
  echo "| lineage | $count (segments, backups) |"
  echo "| pgdrill catalog (median of $runs, wall) | ${p}s |"
  echo "| barman-cloud-backup-list + boto3 WAL listing (median of $runs, wall) | ${y}s |"
  echo "| raw boto3 listing of wals/ (in-process, median of $runs) | ${r}s |"
  echo "| speed-up vs Python tools | $(echo "$y / $p" | bc -l | xargs printf '%.1f')x |"
  echo "| pgdrill / raw listing | $(echo "$p / $r" | bc -l | xargs printf '%.2f')x |"
  echo "| peak RSS, catalog of $big_segments segments | $((rss_kb / 1024)) MiB (wall ${mem_wall}s) |"
} | tee "$out/results.md"
