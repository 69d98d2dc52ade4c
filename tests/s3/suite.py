"""S3 protocol suite for Tessera, driven by boto3 (run by tests/s3_clients.rs).

usage: suite.py ENDPOINT ACCESS_KEY SECRET_KEY READONLY_KEY READONLY_SECRET

Every check names the operation and the S3 behaviour it pins; the first failure stops the run
with a non-zero exit and the reason.
"""
import base64
import datetime
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore
from botocore.config import Config

endpoint, ak, sk, ro_ak, ro_sk = sys.argv[1:6]
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def client(key, secret):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name="us-east-1", config=cfg)


s3 = client(ak, sk)
ro = client(ro_ak, ro_sk)


def fails(code, status, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"{call.__name__}: expected {(code, status)}, got {got}"
        return
    raise AssertionError(f"{call.__name__}: expected {code} {status}, it succeeded")


def md5(data):
    return '"' + hashlib.md5(data).hexdigest() + '"'


# Buckets: configured, created, listed, located, refused names, duplicates.
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert "configured" in names, names
s3.head_bucket(Bucket="configured")
s3.create_bucket(Bucket="suite")
fails("BucketAlreadyOwnedByYou", 409, s3.create_bucket, Bucket="suite")
fails("InvalidBucketName", 400, s3.create_bucket, Bucket="NO")
assert "suite" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
loc = s3.get_bucket_location(Bucket="suite")
assert loc.get("LocationConstraint") in (None, ""), loc
fails("404", 404, s3.head_bucket, Bucket="missing-bucket")
fails("NoSuchBucket", 404, s3.get_object, Bucket="missing-bucket", Key="k")
fails("NoSuchBucket", 404, s3.put_object, Bucket="missing-bucket", Key="k", Body=b"x")

# PutObject / GetObject: bytes, MD5 ETag, metadata, content type, cache control.
data = os.urandom(3 * 1024 * 1024 + 17)
put = s3.put_object(Bucket="suite", Key="dir/obj.bin", Body=data, ContentType="application/x-test",
                    CacheControl="max-age=60", Metadata={"origin": "suite", "n": "1"})
assert put["ETag"] == md5(data), (put["ETag"], md5(data))
got = s3.get_object(Bucket="suite", Key="dir/obj.bin")
assert got["Body"].read() == data
assert got["ETag"] == md5(data)
assert got["ContentType"] == "application/x-test", got["ContentType"]
assert got["CacheControl"] == "max-age=60"
assert got["Metadata"] == {"origin": "suite", "n": "1"}, got["Metadata"]
assert got["ContentLength"] == len(data)
modified = got["LastModified"]
empty = s3.put_object(Bucket="suite", Key="empty", Body=b"")
assert empty["ETag"] == md5(b"")
assert s3.get_object(Bucket="suite", Key="empty")["Body"].read() == b""
unicode_key = "päth/with spaces/ключ+plus%25"
s3.put_object(Bucket="suite", Key=unicode_key, Body=b"u")
assert s3.get_object(Bucket="suite", Key=unicode_key)["Body"].read() == b"u"

# Content-MD5: a matching digest stores, a wrong one is BadDigest and stores nothing.
good_md5 = base64.b64encode(hashlib.md5(b"digest").digest()).decode()
s3.put_object(Bucket="suite", Key="md5", Body=b"digest", ContentMD5=good_md5)
bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
fails("BadDigest", 400, s3.put_object, Bucket="suite", Key="md5-bad", Body=b"digest", ContentMD5=bad_md5)
fails("NoSuchKey", 404, s3.get_object, Bucket="suite", Key="md5-bad")

# Checksum headers: computed over the body; a mismatch is BadDigest and stores nothing.
s3.put_object(Bucket="suite", Key="sum", Body=b"hello", ChecksumAlgorithm="SHA256")
s3.put_object(Bucket="suite", Key="sum", Body=b"hello", ChecksumCRC32="NhCmhg==")
summed = s3.head_object(Bucket="suite", Key="sum", ChecksumMode="ENABLED")
assert summed.get("ChecksumCRC32") == "NhCmhg==", summed
fails("BadDigest", 400, s3.put_object, Bucket="suite", Key="sum-bad", Body=b"hello", ChecksumCRC32="AAAAAA==")
fails("NoSuchKey", 404, s3.get_object, Bucket="suite", Key="sum-bad")
s3.delete_object(Bucket="suite", Key="sum")

# Range reads.
r = s3.get_object(Bucket="suite", Key="dir/obj.bin", Range="bytes=100-199")
assert r["Body"].read() == data[100:200] and r["ContentRange"] == f"bytes 100-199/{len(data)}"
assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", Range="bytes=-10")["Body"].read() == data[-10:]
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", Range=f"bytes={len(data)-5}-")["Body"].read() == data[-5:]
fails("InvalidRange", 416, s3.get_object, Bucket="suite", Key="dir/obj.bin", Range=f"bytes={len(data)}-")

# Conditionals.
etag = put["ETag"]
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", IfMatch=etag)["ContentLength"] == len(data)
fails("PreconditionFailed", 412, s3.get_object, Bucket="suite", Key="dir/obj.bin", IfMatch='"0000"')
fails("304", 304, s3.get_object, Bucket="suite", Key="dir/obj.bin", IfNoneMatch=etag)
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", IfNoneMatch='"0000"')["ContentLength"] == len(data)
later = modified + datetime.timedelta(seconds=5)
earlier = modified - datetime.timedelta(seconds=5)
fails("304", 304, s3.get_object, Bucket="suite", Key="dir/obj.bin", IfModifiedSince=later)
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", IfModifiedSince=earlier)["ContentLength"] == len(data)
fails("PreconditionFailed", 412, s3.get_object, Bucket="suite", Key="dir/obj.bin", IfUnmodifiedSince=earlier)
assert s3.get_object(Bucket="suite", Key="dir/obj.bin", IfUnmodifiedSince=later)["ContentLength"] == len(data)

# HeadObject.
head = s3.head_object(Bucket="suite", Key="dir/obj.bin")
assert head["ContentLength"] == len(data) and head["ETag"] == etag
assert head["Metadata"] == {"origin": "suite", "n": "1"}
fails("404", 404, s3.head_object, Bucket="suite", Key="nope")
fails("412", 412, s3.head_object, Bucket="suite", Key="dir/obj.bin", IfMatch='"0000"')
fails("NoSuchKey", 404, s3.get_object, Bucket="suite", Key="nope")

# CopyObject: same and other bucket, metadata kept or replaced, copy-to-itself refused.
s3.copy_object(Bucket="configured", Key="copy", CopySource={"Bucket": "suite", "Key": "dir/obj.bin"})
c = s3.get_object(Bucket="configured", Key="copy")
assert c["Body"].read() == data and c["ETag"] == etag and c["Metadata"] == {"origin": "suite", "n": "1"}
s3.copy_object(Bucket="suite", Key="copy2", CopySource={"Bucket": "suite", "Key": "dir/obj.bin"},
               MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/plain")
c2 = s3.head_object(Bucket="suite", Key="copy2")
assert c2["Metadata"] == {"new": "yes"} and c2["ContentType"] == "text/plain", c2
fails("InvalidRequest", 400, s3.copy_object, Bucket="suite", Key="dir/obj.bin",
      CopySource={"Bucket": "suite", "Key": "dir/obj.bin"})
fails("NoSuchKey", 404, s3.copy_object, Bucket="suite", Key="x", CopySource={"Bucket": "suite", "Key": "nope"})
fails("PreconditionFailed", 412, s3.copy_object, Bucket="suite", Key="x",
      CopySource={"Bucket": "suite", "Key": "dir/obj.bin"}, CopySourceIfMatch='"0000"')

# Presigned URLs, SigV4 and SigV2 query forms: GET and PUT without an SDK (http.client sends
# no Content-Type of its own, which the signature covers).
def raw(method, url, body=None):
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.request(method, parsed.path + "?" + parsed.query, body=body)
    resp = conn.getresponse()
    return resp.status, resp.read()


for version in ["s3v4", "s3"]:
    signer = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                          region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, signature_version=version))
    key = f"presigned-{version}"
    url = signer.generate_presigned_url("put_object", Params={"Bucket": "suite", "Key": key}, ExpiresIn=300)
    status, body = raw("PUT", url, b"via presigned put")
    assert status == 200, (version, status, body)
    url = signer.generate_presigned_url("get_object", Params={"Bucket": "suite", "Key": key}, ExpiresIn=300)
    assert raw("GET", url) == (200, b"via presigned put"), version
    status, body = raw("GET", url.replace("presigned", "presigneX", 1))
    assert status == 403 and b"SignatureDoesNotMatch" in body, (version, status, body)

# Authentication and authorisation.
wrong = client(ak, "not-the-secret")
fails("SignatureDoesNotMatch", 403, wrong.get_object, Bucket="suite", Key="dir/obj.bin")
unknown = client("NOSUCHKEY", "x")
fails("InvalidAccessKeyId", 403, unknown.list_buckets)
assert ro.get_object(Bucket="suite", Key="dir/obj.bin")["Body"].read() == data
fails("AccessDenied", 403, ro.put_object, Bucket="suite", Key="ro", Body=b"x")
fails("AccessDenied", 403, ro.delete_object, Bucket="suite", Key="dir/obj.bin")
try:
    urllib.request.urlopen(f"{endpoint}/suite/dir/obj.bin?X-Amz-Signature=00")
    raise AssertionError("an unsigned request with a bogus signature was served")
except urllib.error.HTTPError as e:
    assert e.code in (400, 403), e.code

# Listing: v2 and v1, prefix, delimiter, paging, start-after, encoding-type=url.
keys = sorted([f"list/a/{i:03d}" for i in range(30)] + [f"list/b/{i:03d}" for i in range(5)]
              + ["list/c", "list/d e+f", "list/z/deep/1"])
for k in keys:
    s3.put_object(Bucket="suite", Key=k, Body=k.encode())
seen, token = [], None
while True:
    kw = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="suite", Prefix="list/", MaxKeys=7, **kw)
    assert page["KeyCount"] == len(page.get("Contents", [])), page
    seen += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert seen == keys, (seen, keys)
obj = s3.list_objects_v2(Bucket="suite", Prefix="list/c")["Contents"][0]
assert obj["Size"] == len(b"list/c") and obj["ETag"] == md5(b"list/c"), obj
page = s3.list_objects_v2(Bucket="suite", Prefix="list/", Delimiter="/")
assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["list/a/", "list/b/", "list/z/"], page
assert [o["Key"] for o in page["Contents"]] == ["list/c", "list/d e+f"], page
items, token = [], None
while True:
    kw = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="suite", Prefix="list/", Delimiter="/", MaxKeys=2, **kw)
    items += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert sorted(items) == ["list/a/", "list/b/", "list/c", "list/d e+f", "list/z/"], items
after = s3.list_objects_v2(Bucket="suite", Prefix="list/", StartAfter="list/b/002")
assert [o["Key"] for o in after["Contents"]] == [k for k in keys if k > "list/b/002"]
encoded = s3.list_objects_v2(Bucket="suite", Prefix="list/d", EncodingType="url")
# botocore decodes only what it asked to be encoded itself: an explicit request sees the encoding.
assert [o["Key"] for o in encoded["Contents"]] == ["list/d%20e%2Bf"], encoded
v1, marker = [], None
while True:
    kw = {"Marker": marker} if marker else {}
    page = s3.list_objects(Bucket="suite", Prefix="list/", MaxKeys=9, **kw)
    v1 += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    marker = page.get("NextMarker") or page["Contents"][-1]["Key"]
assert v1 == keys, v1
v1 = s3.list_objects(Bucket="suite", Prefix="list/", Delimiter="/", MaxKeys=2)
assert v1["IsTruncated"] and v1["NextMarker"] == "list/b/", v1
assert s3.list_objects_v2(Bucket="suite", Prefix="nothing/")["KeyCount"] == 0
fails("NoSuchBucket", 404, s3.list_objects_v2, Bucket="missing-bucket")
s3.delete_objects(Bucket="suite", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
assert s3.list_objects_v2(Bucket="suite", Prefix="list/")["KeyCount"] == 0

# Multipart: md5-of-md5s-N ETag, part errors, abort, listings.
MIB = 1024 * 1024
p1, p2, p3 = os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123)
up = s3.create_multipart_upload(Bucket="suite", Key="mp/obj", ContentType="application/x-mp",
                                Metadata={"mp": "yes"})["UploadId"]
etags = [s3.upload_part(Bucket="suite", Key="mp/obj", UploadId=up, PartNumber=n, Body=b)["ETag"]
         for n, b in [(1, p1), (2, p2), (3, p3)]]
assert etags == [md5(p1), md5(p2), md5(p3)], etags
parts = s3.list_parts(Bucket="suite", Key="mp/obj", UploadId=up)["Parts"]
assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, 5 * MIB), (3, 123)], parts
page = s3.list_parts(Bucket="suite", Key="mp/obj", UploadId=up, MaxParts=2)
assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2, page
uploads = s3.list_multipart_uploads(Bucket="suite")["Uploads"]
assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp/obj", up)], uploads
done = lambda ps: s3.complete_multipart_upload(Bucket="suite", Key="mp/obj", UploadId=up,
                                               MultipartUpload={"Parts": ps})
fails("InvalidPartOrder", 400, done, [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}])
fails("InvalidPart", 400, done, [{"PartNumber": 1, "ETag": etags[1]}])
fails("InvalidPart", 400, done, [{"PartNumber": 9, "ETag": etags[0]}])
out = done([{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)])
joined = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in (p1, p2, p3))).hexdigest()
assert out["ETag"] == f'"{joined}-3"', (out["ETag"], joined)
got = s3.get_object(Bucket="suite", Key="mp/obj")
assert got["Body"].read() == p1 + p2 + p3 and got["ETag"] == out["ETag"]
assert got["ContentType"] == "application/x-mp" and got["Metadata"] == {"mp": "yes"}, got
assert s3.head_object(Bucket="suite", Key="mp/obj")["PartsCount"] == 3
fails("NoSuchUpload", 404, s3.list_parts, Bucket="suite", Key="mp/obj", UploadId=up)
assert not s3.list_multipart_uploads(Bucket="suite").get("Uploads")
# A small part that is not the last: EntityTooSmall.
up = s3.create_multipart_upload(Bucket="suite", Key="mp/small")["UploadId"]
e1 = s3.upload_part(Bucket="suite", Key="mp/small", UploadId=up, PartNumber=1, Body=b"tiny")["ETag"]
e2 = s3.upload_part(Bucket="suite", Key="mp/small", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
fails("EntityTooSmall", 400, s3.complete_multipart_upload, Bucket="suite", Key="mp/small", UploadId=up,
      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
s3.abort_multipart_upload(Bucket="suite", Key="mp/small", UploadId=up)
fails("NoSuchUpload", 404, s3.abort_multipart_upload, Bucket="suite", Key="mp/small", UploadId=up)
fails("NoSuchUpload", 404, s3.upload_part, Bucket="suite", Key="mp/small", UploadId=up, PartNumber=1, Body=b"x")
fails("NoSuchKey", 404, s3.get_object, Bucket="suite", Key="mp/small")
s3.delete_object(Bucket="suite", Key="mp/obj")

# Delete: objects, multi-delete (quiet and not), bucket emptiness.
fails("BucketNotEmpty", 409, s3.delete_bucket, Bucket="suite")
s3.delete_object(Bucket="suite", Key="copy2")
fails("NoSuchKey", 404, s3.get_object, Bucket="suite", Key="copy2")
s3.delete_object(Bucket="suite", Key="copy2")  # deleting a missing key is not an error
out = s3.delete_objects(Bucket="suite", Delete={"Objects": [{"Key": "dir/obj.bin"}, {"Key": "empty"}, {"Key": "gone"}]})
assert sorted(d["Key"] for d in out["Deleted"]) == ["dir/obj.bin", "empty", "gone"], out
out = s3.delete_objects(Bucket="suite", Delete={"Objects": [{"Key": k} for k in ["md5", "presigned-s3v4", "presigned-s3", unicode_key]], "Quiet": True})
assert not out.get("Deleted") and not out.get("Errors"), out
s3.delete_bucket(Bucket="suite")
fails("404", 404, s3.head_bucket, Bucket="suite")
fails("NoSuchBucket", 404, s3.delete_bucket, Bucket="suite")
print("s3 suite: ok")
