"""Lists a bucket of 10,050 keys page by page (run by tests/s3_clients.rs).

usage: many_keys.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
"""
import concurrent.futures
import sys

import boto3
from botocore.config import Config

endpoint, ak, sk, bucket = sys.argv[1:5]
cfg = Config(s3={"addressing_style": "path"}, max_pool_connections=16)
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                  region_name="us-east-1", config=cfg)
keys = [f"many/{i % 7}/{i:06d}" for i in range(10_050)]
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
seen = []
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/")
for page in pages:
    assert page["KeyCount"] <= 1000, page["KeyCount"]
    seen += [o["Key"] for o in page.get("Contents", [])]
assert seen == sorted(keys), (len(seen), len(keys))
prefixes = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/", Delimiter="/"):
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
assert prefixes == [f"many/{d}/" for d in range(7)], prefixes
v1 = []
for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="many/3/"):
    v1 += [o["Key"] for o in page.get("Contents", [])]
assert v1 == sorted(k for k in keys if k.startswith("many/3/")), len(v1)
print(f"many keys: ok ({len(seen)} listed)")
