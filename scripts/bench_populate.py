"""Fills an S3 bucket (or a local folder) with a synthetic barman-cloud lineage for benchmarks.

usage: bench_populate.py ENDPOINT|file:///DIR BUCKET PREFIX SERVER SEGMENTS BACKUPS
Segment names follow PostgreSQL's 16 MiB layout on timeline 1; backups are spread evenly
across the archive, each with a backup.info like barman-cloud-backup writes.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

target, bucket, prefix, server, segments, backups = sys.argv[1:7]
segments, backups = int(segments), int(backups)


def name(segno, tli=1):
    return f"{tli:08X}{segno // 256:08X}{segno % 256:08X}"


def backup_info(begin, end, t0):
    fmt = "%Y-%m-%d %H:%M:%S.%f+00:00"
    return (
        f"backup_name=backup-{t0:%Y%m%d%H%M%S}\nbegin_offset=40\nbegin_time={t0.strftime(fmt)}\n"
        f"begin_wal={name(begin)}\nbegin_xlog={begin // 256:X}/{(begin % 256) * 0x1000000 + 0x28:X}\n"
        f"cluster_size=23133897\ncompression=None\nend_offset=256\n"
        f"end_time={(t0 + timedelta(seconds=30)).strftime(fmt)}\nend_wal={name(end)}\n"
        f"end_xlog={end // 256:X}/{(end % 256) * 0x1000000 + 0x100:X}\nerror=None\nserver_name=cloud\n"
        f"size=None\nstatus=DONE\nsystemid=7300000000000000001\ntablespaces=None\ntimeline=1\n"
        f"version=150018\nxlog_segment_size=16777216\n"
    )


keys = []
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
for i in range(backups):
    segno = 2 + i * max(1, segments // backups)
    t0 = start + timedelta(hours=i)
    keys.append((f"{prefix}/{server}/base/{t0:%Y%m%dT%H%M%S}/backup.info", backup_info(segno, segno, t0).encode()))
    keys.append((f"{prefix}/{server}/base/{t0:%Y%m%dT%H%M%S}/data.tar.gz", b"x" * 64))
for segno in range(2, 2 + segments):
    n = name(segno)
    keys.append((f"{prefix}/{server}/wals/{n[:16]}/{n}.gz", b"w"))

if target.startswith("file://"):
    root = target[len("file://"):]
    for key, body in keys:
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
else:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=target, config=Config(max_pool_connections=32))
    from botocore.exceptions import ClientError

    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:  # already there (moto and s3s-fs word it differently)
        if "Bucket" not in e.response["Error"]["Code"]:
            raise
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), keys))
print(f"{len(keys)} objects")
