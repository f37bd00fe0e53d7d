"""The raw listing: every key of a lineage's wals/ prefix with boto3's paginator.

usage: bench_list.py ENDPOINT BUCKET PREFIX — prints the key count and the listing time alone.
"""
import sys
import time

import boto3

endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint)
t = time.perf_counter()
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    n += len(page.get("Contents", []))
print(f"{n} {time.perf_counter() - t:.3f}")
