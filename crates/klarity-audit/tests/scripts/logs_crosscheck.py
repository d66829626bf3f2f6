"""CloudWatch Logs through boto3 against two implementations — the local lake and moto's server,
which nobody here wrote — asserting both answer a customer's calls alike: what is stored and read
back, in which order, what is rejected, and which modelled error each fault raises.
Usage: logs_crosscheck.py LAKE_ENDPOINT MOTO_ENDPOINT. Exits non-zero on the first difference."""

import json
import sys
import time

import boto3
import botocore.exceptions

LAKE, MOTO = sys.argv[1], sys.argv[2]
KEYS = ("AKIAKLARITYCUSTOMER1", "klarity-local-customer-secret-key-0001")


def client(endpoint):
    return boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1])


def outcome(call, **kwargs):
    """The call's answer without its metadata, or its error code."""
    try:
        out = call(**kwargs)
    except botocore.exceptions.ClientError as err:
        return ("error", err.response["Error"]["Code"])
    out.pop("ResponseMetadata", None)
    if "nextSequenceToken" in out:  # opaque (and deprecated): present, whatever its value
        out["nextSequenceToken"] = "<token>"
    return ("ok", out)


now = int(time.time() * 1000)
group = f"/klarity/crosscheck-{now}"
events = [{"timestamp": now - 10_000 + i, "message": json.dumps({"n": i, "eventName": "a" if i % 2 else "b"})}
          for i in range(6)]


def run(endpoint):
    logs = client(endpoint)
    seen = {}
    seen["create group"] = outcome(logs.create_log_group, logGroupName=group)
    seen["create group again"] = outcome(logs.create_log_group, logGroupName=group)
    seen["create stream"] = outcome(logs.create_log_stream, logGroupName=group, logStreamName="s1")
    seen["create stream again"] = outcome(logs.create_log_stream, logGroupName=group, logStreamName="s1")
    seen["stream in missing group"] = outcome(logs.create_log_stream, logGroupName=group + "-nope", logStreamName="s1")
    seen["put"] = outcome(logs.put_log_events, logGroupName=group, logStreamName="s1", logEvents=events)
    seen["put to missing stream"] = outcome(logs.put_log_events, logGroupName=group, logStreamName="nope", logEvents=events[:1])
    seen["put too new"] = outcome(logs.put_log_events, logGroupName=group, logStreamName="s1",
                                  logEvents=[{"timestamp": now, "message": "ok"}, {"timestamp": now + 3 * 3600_000, "message": "new"}])
    got = logs.get_log_events(logGroupName=group, logStreamName="s1", startFromHead=True)
    seen["read from head"] = [e["message"] for e in got["events"]]
    seen["read the latest two"] = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName="s1", limit=2)["events"]]
    seen["groups"] = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]]
    seen["streams"] = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    seen["filter word"] = [e["message"] for e in logs.filter_log_events(logGroupName=group, filterPattern='"ok"')["events"]]
    # (JSON filter patterns are left out: moto 5.2 returns every event for them; the lake's own
    # tests check them against CloudWatch's documented syntax.)
    seen["filter in a stream"] = len(logs.filter_log_events(logGroupName=group, logStreamNames=["s1"], filterPattern="eventName")["events"])
    seen["put out of order"] = outcome(logs.put_log_events, logGroupName=group, logStreamName="s1",
                                       logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}])
    seen["put too old"] = outcome(logs.put_log_events, logGroupName=group, logStreamName="s1",
                                  logEvents=[{"timestamp": now - 15 * 86400_000, "message": "old"}])
    seen["describe missing group's streams"] = outcome(logs.describe_log_streams, logGroupName=group + "-nope")
    seen["read missing stream"] = outcome(logs.get_log_events, logGroupName=group, logStreamName="nope")
    seen["filter all"] = len(logs.filter_log_events(logGroupName=group)["events"])
    seen["retention"] = outcome(logs.put_retention_policy, logGroupName=group, retentionInDays=30)
    seen["retention days"] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0].get("retentionInDays")
    return seen


lake, moto = run(LAKE), run(MOTO)
differences = [(k, lake[k], moto[k]) for k in lake if lake[k] != moto[k]]
for key, ours, theirs in differences:
    print(f"DIFFERENT {key}:\n  lake: {ours}\n  moto: {theirs}")
if differences:
    sys.exit(1)
print(f"logs crosscheck: ok ({len(lake)} behaviours alike)")
