#!/usr/bin/env bash
# Builds s3s-fs 0.14.1 (a Rust S3 endpoint that keeps objects on disk) into .tools/s3s-fs for
# the benchmark. 0.14.1 treats an empty `delimiter=` query as a real delimiter, which breaks
# barman's WAL listing; the one-line patch below makes an empty delimiter mean "none".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${PGDRILL_TOOLS:-$root/.tools}
bin=$tools/s3s-fs/target/release/s3s-fs
[ -x "$bin" ] && { echo "$bin"; exit 0; }

dl=$tools/s3s-dl
mkdir -p "$dl"
(
  cd "$dl"
  [ -f Cargo.toml ] || cargo init -q --name dl
  cargo add -q s3s-fs@=0.14.1
  cargo vendor -q vendor >/dev/null
)
rm -rf "$tools/s3s-fs"
cp -r "$dl/vendor/s3s-fs" "$tools/s3s-fs"
rm -f "$tools/s3s-fs/.cargo-checksum.json"
sed -i 's/let delimiter = input.delimiter.as_deref();/let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());/' \
  "$tools/s3s-fs/src/s3.rs"
grep -q 'filter(|d| !d.is_empty())' "$tools/s3s-fs/src/s3.rs"
(cd "$tools/s3s-fs" && cargo build -q --release --features binary) >&2
echo "$bin"
