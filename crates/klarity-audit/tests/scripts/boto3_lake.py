"""The seed's resource-policy flow through boto3 against the local lake, asserting on the modelled
exceptions botocore raises. Usage: boto3_lake.py ENDPOINT. Exits non-zero on the first failure."""

import hashlib
import base64
import json
import sys

try:
    import boto3
except ImportError:
    sys.exit("boto3 is not installed: pip install boto3 (.ci/run installs it)")

ENDPOINT = sys.argv[1]
CUSTOMER = ("AKIAKLARITYCUSTOMER1", "klarity-local-customer-secret-key-0001")
VENDOR = ("AKIAKLARITYVENDOR001", "klarity-local-vendor-secret-key-0001")


def client(service, keys, region="us-east-1"):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
    )


def event(uid):
    return json.dumps({
        "version": "v1",
        "userIdentity": {"type": "USER", "principalId": "name@example.com"},
        "eventSource": "com.nordcloudapp.com.autopatcher",
        "eventName": "baselinePatching.completed",
        "eventTime": "2024-07-12T10:55:00Z",
        "UID": uid,
        "requestParameters": {"machinesCount": 30, "updatedCount": 20, "skippedCount": 3, "noUpdatesCount": 7},
        "recipientAccountId": "123456789012",
    }, separators=(",", ":"))


def entry(entry_id, data, checksum=True):
    e = {"id": entry_id, "eventData": data}
    if checksum:
        e["eventDataChecksum"] = base64.b64encode(hashlib.sha256(data.encode()).digest()).decode()
    return e


def expect(exception, call, **kwargs):
    try:
        call(**kwargs)
    except exception:
        return
    raise AssertionError(f"expected {exception.__name__}")


ct = client("cloudtrail", CUSTOMER)
data = client("cloudtrail-data", CUSTOMER)
vendor = client("cloudtrail-data", VENDOR)

assert client("sts", CUSTOMER).get_caller_identity()["Account"] == "123456789012"
store = ct.create_event_data_store(
    Name="boto3-events",
    MultiRegionEnabled=False,
    AdvancedEventSelectors=[{"Name": "k", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["ActivityAuditLog"]}]}],
)
assert store["Status"] == "CREATED", store
assert ct.get_event_data_store(EventDataStore=store["EventDataStoreArn"])["Status"] == "ENABLED"
channel_arn = ct.create_channel(
    Name="boto3-channel",
    Source="IBMMulticloud",
    Destinations=[{"Type": "EVENT_DATA_STORE", "Location": store["EventDataStoreArn"]}],
)["ChannelArn"]
policy = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": "855341727128"},
        "Action": "cloudtrail-data:PutAuditEvents",
        "Resource": channel_arn,
        "Condition": {"StringEquals": {"cloudtrail:ExternalId": "ext-boto3-1"}},
    }],
}
ct.put_resource_policy(ResourceArn=channel_arn, ResourcePolicy=json.dumps(policy))
assert json.loads(ct.get_resource_policy(ResourceArn=channel_arn)["ResourcePolicy"]) == policy

out = data.put_audit_events(channelArn=channel_arn, auditEvents=[entry("o1", event("0190a6b5-3333-7a3f-9d2b-000000000001"))])
assert [s["id"] for s in out["successful"]] == ["o1"] and out["failed"] == [], out
out = vendor.put_audit_events(channelArn=channel_arn, externalId="ext-boto3-1", auditEvents=[entry("v1", event("0190a6b5-3333-7a3f-9d2b-000000000002"))])
assert [s["id"] for s in out["successful"]] == ["v1"], out
expect(vendor.exceptions.ChannelInsufficientPermission, vendor.put_audit_events,
       channelArn=channel_arn, externalId="ext-wrong", auditEvents=[entry("v2", event("x"))])
expect(vendor.exceptions.ChannelInsufficientPermission, vendor.put_audit_events,
       channelArn=channel_arn, auditEvents=[entry("v2", event("x"))])
expect(data.exceptions.DuplicatedAuditEventId, data.put_audit_events,
       channelArn=channel_arn, auditEvents=[entry("d", event("a")), entry("d", event("b"))])
expect(data.exceptions.ChannelNotFound, data.put_audit_events,
       channelArn=channel_arn.replace(channel_arn.rsplit("/", 1)[1], "00000000-0000-0000-0000-000000000000"),
       auditEvents=[entry("n", event("a"))])
expect(data.exceptions.InvalidChannelARN, data.put_audit_events, channelArn="arn:aws:s3:::bucket", auditEvents=[entry("n", event("a"))])
expect(ct.exceptions.EventDataStoreNotFoundException, ct.get_event_data_store, EventDataStore="00000000-0000-0000-0000-000000000000")
expect(ct.exceptions.ChannelAlreadyExistsException, ct.create_channel,
       Name="again", Source="IBMMulticloud", Destinations=[{"Type": "EVENT_DATA_STORE", "Location": store["EventDataStoreArn"]}])
expect(ct.exceptions.EventDataStoreTerminationProtectedException, ct.delete_event_data_store, EventDataStore=store["EventDataStoreArn"])

# Per-entry failures in a 200 response.
bad = entry("c1", event("0190a6b5-3333-7a3f-9d2b-000000000003"))
bad["eventDataChecksum"] = base64.b64encode(b"\0" * 32).decode()
out = data.put_audit_events(channelArn=channel_arn, auditEvents=[bad, entry("c2", '{"version":"v1"}')])
assert [(f["id"], f["errorCode"]) for f in out["failed"]] == [("c1", "InvalidChecksum"), ("c2", "FieldNotFound")], out

# A repeated id returns the eventID first assigned.
first = data.put_audit_events(channelArn=channel_arn, auditEvents=[entry("r1", event("0190a6b5-3333-7a3f-9d2b-000000000004"))])
again = data.put_audit_events(channelArn=channel_arn, auditEvents=[entry("r1", event("0190a6b5-3333-7a3f-9d2b-000000000004"))])
assert first["successful"][0]["eventID"] == again["successful"][0]["eventID"]

status = ct.get_channel(Channel=channel_arn)["IngestionStatus"]
assert status["LatestIngestionErrorCode"] == "FieldNotFound" or "LatestIngestionSuccessEventID" in status, status
print("boto3 seed flow: ok")

# The seed's path for workloads outside AWS: the vendor's proxy user, allowed only to assume the
# proxy role, which assumes the customer's role with the external ID, which publishes.
import botocore.exceptions  # noqa: E402


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as err:
        return err.response["Error"]["Code"]
    raise AssertionError("expected an error")


viam = client("iam", VENDOR)
ciam = client("iam", CUSTOMER)
trust = lambda principal, ext=None: json.dumps({"Version": "2012-10-17", "Statement": [dict(
    {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"},
    **({"Condition": {"StringEquals": {"sts:ExternalId": ext}}} if ext else {}))]})
allow = lambda action, resource: json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": action, "Resource": resource}]})
role_arn = ciam.create_role(RoleName="Boto3Publisher", AssumeRolePolicyDocument=trust("arn:aws:iam::855341727128:root", "ext-boto3-2"))["Role"]["Arn"]
ciam.put_role_policy(RoleName="Boto3Publisher", PolicyName="publish", PolicyDocument=allow("cloudtrail-data:PutAuditEvents", channel_arn))
proxy_arn = viam.create_role(RoleName="Boto3Proxy", AssumeRolePolicyDocument=trust("arn:aws:iam::855341727128:root"))["Role"]["Arn"]
viam.put_role_policy(RoleName="Boto3Proxy", PolicyName="chain", PolicyDocument=allow("sts:AssumeRole", "*"))
user = viam.create_user(UserName="boto3-proxy-user")["User"]
assert user["Arn"] == "arn:aws:iam::855341727128:user/boto3-proxy-user" and user["UserId"].startswith("AIDA"), user
assert code_of(viam.create_user, UserName="boto3-proxy-user") == "EntityAlreadyExists"
assert code_of(viam.get_user, UserName="nobody") == "NoSuchEntity"
key = viam.create_access_key(UserName="boto3-proxy-user")["AccessKey"]
assert key["Status"] == "Active" and len(key["SecretAccessKey"]) == 40, key
user_keys = (key["AccessKeyId"], key["SecretAccessKey"])
user_sts = client("sts", user_keys)
assert user_sts.get_caller_identity()["Arn"] == user["Arn"]
# Without a policy the user may not assume the proxy role.
assert code_of(user_sts.assume_role, RoleArn=proxy_arn, RoleSessionName="vm") == "AccessDenied"
viam.put_user_policy(UserName="boto3-proxy-user", PolicyName="proxy", PolicyDocument=allow("sts:AssumeRole", proxy_arn))
assert viam.list_user_policies(UserName="boto3-proxy-user")["PolicyNames"] == ["proxy"]
# botocore decodes the URL-encoded document into a dict.
assert viam.get_user_policy(UserName="boto3-proxy-user", PolicyName="proxy")["PolicyDocument"]["Statement"][0]["Resource"] == proxy_arn
p = user_sts.assume_role(RoleArn=proxy_arn, RoleSessionName="vm")["Credentials"]
psts = boto3.client("sts", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id=p["AccessKeyId"],
                    aws_secret_access_key=p["SecretAccessKey"], aws_session_token=p["SessionToken"])
assert code_of(psts.assume_role, RoleArn=role_arn, RoleSessionName="vm", ExternalId="ext-wrong") == "AccessDenied"
c = psts.assume_role(RoleArn=role_arn, RoleSessionName="vm", ExternalId="ext-boto3-2")["Credentials"]
pdata = boto3.client("cloudtrail-data", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                     aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
out = pdata.put_audit_events(channelArn=channel_arn, auditEvents=[entry("u1", event("0190a6b5-3333-7a3f-9d2b-000000000009"))])
assert [s["id"] for s in out["successful"]] == ["u1"], out
# A deactivated key signs nothing; a deleted one neither.
viam.update_access_key(UserName="boto3-proxy-user", AccessKeyId=user_keys[0], Status="Inactive")
assert code_of(user_sts.get_caller_identity) == "InvalidClientTokenId"
assert viam.list_access_keys(UserName="boto3-proxy-user")["AccessKeyMetadata"][0]["Status"] == "Inactive"
assert code_of(viam.delete_user, UserName="boto3-proxy-user") == "DeleteConflict"
viam.delete_access_key(UserName="boto3-proxy-user", AccessKeyId=user_keys[0])
viam.delete_user_policy(UserName="boto3-proxy-user", PolicyName="proxy")
viam.delete_user(UserName="boto3-proxy-user")
# IAM paging: MaxItems, Marker, IsTruncated.
for n in range(3):
    viam.create_user(UserName=f"paged-{n}")
page = viam.list_users(MaxItems=2)
assert page["IsTruncated"] and len(page["Users"]) == 2, page
rest = viam.list_users(MaxItems=2, Marker=page["Marker"])
assert not rest["IsTruncated"] and [u["UserName"] for u in page["Users"] + rest["Users"]] == ["paged-0", "paged-1", "paged-2"]
names = [u["UserName"] for u in viam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 1}).build_full_result()["Users"]]
assert names == ["paged-0", "paged-1", "paged-2"], names
# The request id in the body is the header's.
resp = viam.list_users()
assert resp["ResponseMetadata"]["RequestId"] == resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"], resp["ResponseMetadata"]
print("boto3 proxy user flow: ok")

# CloudTrail conformance, as a Lake customer tries it.
ct_vendor = client("cloudtrail", VENDOR)
selectors = [{"Name": "k", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["ActivityAuditLog"]}]}]
tagged = ct.create_event_data_store(Name="boto3-tagged", MultiRegionEnabled=False, AdvancedEventSelectors=selectors,
                                    TerminationProtectionEnabled=False, TagsList=[{"Key": "team", "Value": "audit"}])
tagged_arn = tagged["EventDataStoreArn"]
assert tagged["TagsList"] == [{"Key": "team", "Value": "audit"}], tagged
tags_of = lambda arn: ct.list_tags(ResourceIdList=[arn])["ResourceTagList"][0]["TagsList"]
assert tags_of(tagged_arn) == [{"Key": "team", "Value": "audit"}]
ct.add_tags(ResourceId=tagged_arn, TagsList=[{"Key": "team", "Value": "security"}, {"Key": "env", "Value": "prod"}])
assert sorted((t["Key"], t["Value"]) for t in tags_of(tagged_arn)) == [("env", "prod"), ("team", "security")]
ct.remove_tags(ResourceId=tagged_arn, TagsList=[{"Key": "team"}])
assert tags_of(tagged_arn) == [{"Key": "env", "Value": "prod"}]
ct.add_tags(ResourceId=channel_arn, TagsList=[{"Key": "owner", "Value": "klarity"}])
assert tags_of(channel_arn) == [{"Key": "owner", "Value": "klarity"}]
expect(ct.exceptions.TagsLimitExceededException, ct.add_tags, ResourceId=tagged_arn,
       TagsList=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
expect(ct.exceptions.InvalidTagParameterException, ct.add_tags, ResourceId=tagged_arn, TagsList=[{"Key": "aws:reserved", "Value": "v"}])
expect(ct.exceptions.ResourceNotFoundException, ct.add_tags,
       ResourceId=tagged_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000", TagsList=[{"Key": "a", "Value": "b"}])
expect(ct.exceptions.CloudTrailARNInvalidException, ct.list_tags, ResourceIdList=["not-an-arn"])

# Deleting waits seven days, within which RestoreEventDataStore brings the store back.
ct.delete_event_data_store(EventDataStore=tagged_arn)
assert ct.get_event_data_store(EventDataStore=tagged_arn)["Status"] == "PENDING_DELETION"
expect(ct.exceptions.InactiveEventDataStoreException, ct.update_event_data_store, EventDataStore=tagged_arn, RetentionPeriod=30)
restored = ct.restore_event_data_store(EventDataStore=tagged_arn)
assert restored["Status"] == "ENABLED" and restored["EventDataStoreArn"] == tagged_arn, restored
expect(ct.exceptions.InvalidEventDataStoreStatusException, ct.restore_event_data_store, EventDataStore=tagged_arn)

# Ingestion starts and stops on stores of AWS events only.
expect(ct.exceptions.InvalidEventDataStoreCategoryException, ct.stop_event_data_store_ingestion, EventDataStore=tagged_arn)
management = ct.create_event_data_store(Name="boto3-management", TerminationProtectionEnabled=False)["EventDataStoreArn"]
ct.stop_event_data_store_ingestion(EventDataStore=management)
assert ct.get_event_data_store(EventDataStore=management)["Status"] == "STOPPED_INGESTION"
expect(ct.exceptions.InvalidEventDataStoreStatusException, ct.stop_event_data_store_ingestion, EventDataStore=management)
ct.start_event_data_store_ingestion(EventDataStore=management)
assert ct.get_event_data_store(EventDataStore=management)["Status"] == "ENABLED"
stopped = ct.create_event_data_store(Name="boto3-stopped", StartIngestion=False, TerminationProtectionEnabled=False)
assert stopped["Status"] == "STOPPED_INGESTION", stopped

# Selector values are checked.
for bad in ([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Nonsense"]}]}],
            [{"FieldSelectors": [{"Field": "noSuchField", "Equals": ["x"]}]}],
            [{"FieldSelectors": [{"Field": "eventName", "Equals": ["x"]}]}],
            [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["ActivityAuditLog", "Management"]}]}],
            [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "readOnly", "Equals": ["maybe"]}]}]):
    expect(ct.exceptions.InvalidEventSelectorsException, ct.create_event_data_store, Name="boto3-bad", AdvancedEventSelectors=bad)

# Channel sources: Custom or a partner AWS lists; policy principals must be principals.
expect(ct.exceptions.InvalidSourceException, ct.create_channel, Name="boto3-unknown", Source="NordcloudKlarity",
       Destinations=[{"Type": "EVENT_DATA_STORE", "Location": tagged_arn}])
custom = ct.create_channel(Name="boto3-custom", Source="Custom", Destinations=[{"Type": "EVENT_DATA_STORE", "Location": tagged_arn}])
bad_principal = json.loads(json.dumps(policy))
bad_principal["Statement"][0]["Principal"] = {"AWS": "arn:aws:s3:::bucket"}
bad_principal["Statement"][0]["Resource"] = custom["ChannelArn"]
expect(ct.exceptions.ResourcePolicyNotValidException, ct.put_resource_policy, ResourceArn=custom["ChannelArn"],
       ResourcePolicy=json.dumps(bad_principal))

# A resource policy on an event data store lets another account query it by its ARN.
expect(ct_vendor.exceptions.EventDataStoreNotFoundException, ct_vendor.get_event_data_store, EventDataStore=store["EventDataStoreArn"])
store_policy = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "855341727128"},
    "Action": ["cloudtrail:StartQuery", "cloudtrail:GetQueryResults", "cloudtrail:DescribeQuery", "cloudtrail:GetEventDataStore"],
    "Resource": store["EventDataStoreArn"]}]}
bad_store_policy = json.loads(json.dumps(store_policy))
bad_store_policy["Statement"][0]["Action"] = "cloudtrail-data:PutAuditEvents"
expect(ct.exceptions.ResourcePolicyNotValidException, ct.put_resource_policy, ResourceArn=store["EventDataStoreArn"],
       ResourcePolicy=json.dumps(bad_store_policy))
ct.put_resource_policy(ResourceArn=store["EventDataStoreArn"], ResourcePolicy=json.dumps(store_policy))
assert json.loads(ct.get_resource_policy(ResourceArn=store["EventDataStoreArn"])["ResourcePolicy"]) == store_policy
assert ct_vendor.get_event_data_store(EventDataStore=store["EventDataStoreArn"])["Name"] == "boto3-events"
query = ct_vendor.start_query(QueryStatement=f"SELECT count(*) AS n FROM {store['EventDataStoreArn']}")
assert query["EventDataStoreOwnerAccountId"] == "123456789012", query
import time  # noqa: E402
for _ in range(200):
    described = ct_vendor.describe_query(QueryId=query["QueryId"])
    if described["QueryStatus"] not in ("QUEUED", "RUNNING"):
        break
    time.sleep(0.05)
assert described["QueryStatus"] == "FINISHED", described
rows = ct_vendor.get_query_results(QueryId=query["QueryId"])["QueryResultRows"]
assert list(rows[0][0]) == ["n"], rows  # (the events of 2024 are past the store's retention: 0)
# Only what the policy grants: not another store, and not without the policy.
expect(ct_vendor.exceptions.EventDataStoreNotFoundException, ct_vendor.start_query,
       QueryStatement=f"SELECT count(*) FROM {tagged_arn}")
ct.delete_resource_policy(ResourceArn=store["EventDataStoreArn"])
expect(ct_vendor.exceptions.EventDataStoreNotFoundException, ct_vendor.start_query,
       QueryStatement=f"SELECT count(*) FROM {store['EventDataStoreArn']}")
print("boto3 conformance: ok")

# CloudWatch Logs, as a destination customers can still get: the customer's log group and stream,
# the vendor writing through the customer's role (log-group resource policies do not apply across
# accounts), reading back, and PutLogEvents' rules.
clogs = client("logs", CUSTOMER)
clogs.create_log_group(logGroupName="/klarity/audit")
clogs.create_log_stream(logGroupName="/klarity/audit", logStreamName="demo")
expect(clogs.exceptions.ResourceAlreadyExistsException, clogs.create_log_group, logGroupName="/klarity/audit")
expect(clogs.exceptions.ResourceAlreadyExistsException, clogs.create_log_stream, logGroupName="/klarity/audit", logStreamName="demo")
expect(clogs.exceptions.ResourceNotFoundException, clogs.create_log_stream, logGroupName="/nope", logStreamName="demo")
groups = clogs.describe_log_groups(logGroupNamePrefix="/klarity")["logGroups"]
assert [g["logGroupName"] for g in groups] == ["/klarity/audit"] and groups[0]["arn"].endswith(":log-group:/klarity/audit:*"), groups
group_arn = groups[0]["logGroupArn"]
logs_role = ciam.create_role(RoleName="KlarityLogsWriter", AssumeRolePolicyDocument=trust("arn:aws:iam::855341727128:root", "ext-logs-1"))["Role"]["Arn"]
ciam.put_role_policy(RoleName="KlarityLogsWriter", PolicyName="write", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:PutLogEvents", "logs:CreateLogStream"], "Resource": group_arn + ":log-stream:*"}]}))
w = client("sts", VENDOR).assume_role(RoleArn=logs_role, RoleSessionName="relay", ExternalId="ext-logs-1")["Credentials"]
wlogs = boto3.client("logs", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id=w["AccessKeyId"],
                     aws_secret_access_key=w["SecretAccessKey"], aws_session_token=w["SessionToken"])
now_ms = int(time.time() * 1000)
messages = [json.dumps({"UID": f"0190a6b5-4444-7a3f-9d2b-{i:012}", "eventName": "backup.started" if i % 2 else "backup.completed",
                        "userIdentity": {"principalId": "ops@example.com"}}) for i in range(5)]
out = wlogs.put_log_events(logGroupName="/klarity/audit", logStreamName="demo",
                           logEvents=[{"timestamp": now_ms - 5000 + i, "message": m} for i, m in enumerate(messages)])
assert "rejectedLogEventsInfo" not in out, out
# The writer may do only that: not read, not make groups.
assert code_of(wlogs.get_log_events, logGroupName="/klarity/audit", logStreamName="demo") == "AccessDeniedException"
assert code_of(wlogs.create_log_group, logGroupName="/other") == "AccessDeniedException"
got = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", startFromHead=True)
assert [e["message"] for e in got["events"]] == messages, got
again = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", nextToken=got["nextForwardToken"])
assert again["events"] == [] and again["nextForwardToken"] == got["nextForwardToken"], again
paged = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", startFromHead=True, limit=2)
rest = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", nextToken=paged["nextForwardToken"], limit=10)
assert [e["message"] for e in paged["events"] + rest["events"]] == messages
latest = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", limit=2)
assert [e["message"] for e in latest["events"]] == messages[3:], latest
found = clogs.filter_log_events(logGroupName="/klarity/audit", filterPattern='{ $.eventName = "backup.started" }')["events"]
assert [e["message"] for e in found] == messages[1::2] and all(e["logStreamName"] == "demo" for e in found), found
assert len(clogs.filter_log_events(logGroupName="/klarity/audit", filterPattern="ops@example.com -completed")["events"]) == 2
streams = clogs.describe_log_streams(logGroupName="/klarity/audit")["logStreams"]
assert streams[0]["logStreamName"] == "demo" and streams[0]["lastEventTimestamp"] == now_ms - 5000 + 4, streams
# Batch rules refuse the whole batch; events out of range are refused alone.
expect(clogs.exceptions.InvalidParameterException, clogs.put_log_events, logGroupName="/klarity/audit", logStreamName="demo",
       logEvents=[{"timestamp": now_ms, "message": "b"}, {"timestamp": now_ms - 1, "message": "a"}])
expect(clogs.exceptions.InvalidParameterException, clogs.put_log_events, logGroupName="/klarity/audit", logStreamName="demo",
       logEvents=[{"timestamp": now_ms - 25 * 3600_000, "message": "a"}, {"timestamp": now_ms, "message": "b"}])
expect(clogs.exceptions.InvalidParameterException, clogs.put_log_events, logGroupName="/klarity/audit", logStreamName="demo",
       logEvents=[{"timestamp": now_ms, "message": "x" * 1_048_551}])
expect(clogs.exceptions.ResourceNotFoundException, clogs.put_log_events, logGroupName="/klarity/audit", logStreamName="nope",
       logEvents=[{"timestamp": now_ms, "message": "a"}])
clogs.put_retention_policy(logGroupName="/klarity/audit", retentionInDays=1)
expect(clogs.exceptions.InvalidParameterException, clogs.put_retention_policy, logGroupName="/klarity/audit", retentionInDays=2)
out = clogs.put_log_events(logGroupName="/klarity/audit", logStreamName="demo", logEvents=[
    {"timestamp": now_ms - 86400_000 - 60_000, "message": "expired"},
    {"timestamp": now_ms - 3600_000, "message": "kept"}])
assert out["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}, out
out = clogs.put_log_events(logGroupName="/klarity/audit", logStreamName="demo", logEvents=[
    {"timestamp": now_ms, "message": "kept too"},
    {"timestamp": now_ms + 3 * 3600_000, "message": "too new"}])
assert out["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}, out
# Events are read in time order: "kept" (an hour old) comes before the five sent above.
everything = clogs.get_log_events(logGroupName="/klarity/audit", logStreamName="demo", startFromHead=True)["events"]
assert [e["message"] for e in everything] == ["kept"] + messages + ["kept too"], everything
print("boto3 cloudwatch logs: ok")
