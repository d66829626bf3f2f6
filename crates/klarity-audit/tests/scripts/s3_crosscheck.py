"""S3 through boto3 against two implementations — the local lake and moto's server, which nobody
here wrote — asserting both answer a customer's calls alike: buckets, objects written, replaced,
read whole and listed (prefixes, delimiters, pages), deleted, and which modelled error each fault
raises. Usage: s3_crosscheck.py LAKE_ENDPOINT MOTO_ENDPOINT. Exits non-zero on the first difference."""

import gzip
import hashlib
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

LAKE, MOTO = sys.argv[1], sys.argv[2]
KEYS = ("AKIAKLARITYCUSTOMER1", "klarity-local-customer-secret-key-0001")


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1],
                        config=botocore.config.Config(s3={"addressing_style": "path"}))


def outcome(call, **kwargs):
    """The call's answer without its metadata and times, or its error code."""
    try:
        out = call(**kwargs)
    except botocore.exceptions.ClientError as err:
        return ("error", err.response["Error"]["Code"])
    out.pop("ResponseMetadata", None)
    for key in ("LastModified", "VersionId", "ServerSideEncryption", "ChecksumCRC32", "ChecksumType",
                "ChecksumCRC64NVME", "AcceptRanges", "Metadata", "ContentType", "Size", "RequestCharged"):
        out.pop(key, None)
    if "Body" in out:
        out["Body"] = hashlib.sha256(out["Body"].read()).hexdigest()
    if "Location" in out:
        out["Location"] = "<location>"
    return ("ok", out)


def keys(listing):
    return [o["Key"] for o in listing.get("Contents", [])], [p["Prefix"] for p in listing.get("CommonPrefixes", [])]


stamp = int(time.time())
bucket = f"klarity-crosscheck-{stamp}"
body = gzip.compress(b'{"UID":"a"}\n{"UID":"b"}\n', mtime=0)
layout = ["audit/source=x/eventDay=20261204/1-5-e1.json.gz", "audit/source=x/eventDay=20261205/6-9-e6.json.gz",
          "audit/source=y/eventDay=20261205/7-7-e7.json.gz", "audit/z.json.gz", "other/a"]


def run(endpoint):
    s3 = client(endpoint)
    seen = {}
    seen["create"] = outcome(s3.create_bucket, Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    seen["create again"] = outcome(s3.create_bucket, Bucket=bucket,
                                   CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    seen["head bucket"] = outcome(s3.head_bucket, Bucket=bucket)
    seen["head missing bucket"] = outcome(s3.head_bucket, Bucket=bucket + "-nope")
    for key in layout:
        seen[f"put {key}"] = outcome(s3.put_object, Bucket=bucket, Key=key, Body=body)
    seen["put into missing bucket"] = outcome(s3.put_object, Bucket=bucket + "-nope", Key="a", Body=b"x")
    seen["replace"] = outcome(s3.put_object, Bucket=bucket, Key=layout[0], Body=body + body)
    seen["get"] = outcome(s3.get_object, Bucket=bucket, Key=layout[0])
    seen["head"] = outcome(s3.head_object, Bucket=bucket, Key=layout[1])
    seen["get missing"] = outcome(s3.get_object, Bucket=bucket, Key="nope")
    seen["head missing"] = outcome(s3.head_object, Bucket=bucket, Key="nope")
    seen["list all"] = keys(s3.list_objects_v2(Bucket=bucket))
    seen["list prefix"] = keys(s3.list_objects_v2(Bucket=bucket, Prefix="audit/source=x/"))
    seen["list delimiter"] = keys(s3.list_objects_v2(Bucket=bucket, Delimiter="/"))
    seen["list prefix and delimiter"] = keys(s3.list_objects_v2(Bucket=bucket, Prefix="audit/", Delimiter="/"))
    first = s3.list_objects_v2(Bucket=bucket, MaxKeys=2)
    seen["page 1"] = (keys(first), first["IsTruncated"], first["KeyCount"])
    second = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, ContinuationToken=first["NextContinuationToken"])
    seen["page 2"] = (keys(second), second["IsTruncated"])
    seen["start after"] = keys(s3.list_objects_v2(Bucket=bucket, StartAfter=layout[2]))
    seen["list missing bucket"] = outcome(s3.list_objects_v2, Bucket=bucket + "-nope")
    seen["delete non-empty bucket"] = outcome(s3.delete_bucket, Bucket=bucket)
    for key in layout:
        seen[f"delete {key}"] = outcome(s3.delete_object, Bucket=bucket, Key=key)
    seen["delete missing key"] = outcome(s3.delete_object, Bucket=bucket, Key="nope")
    seen["list emptied"] = keys(s3.list_objects_v2(Bucket=bucket))
    seen["delete bucket"] = outcome(s3.delete_bucket, Bucket=bucket)
    seen["put into deleted bucket"] = outcome(s3.put_object, Bucket=bucket, Key="a", Body=b"x")
    return seen


lake, moto = run(LAKE), run(MOTO)
differences = [(k, lake[k], moto[k]) for k in lake if lake[k] != moto[k]]
for key, ours, theirs in differences:
    print(f"DIFFERENT {key}:\n  lake: {ours}\n  moto: {theirs}")
if differences:
    sys.exit(1)
print(f"s3 crosscheck: ok ({len(lake)} behaviours alike)")
