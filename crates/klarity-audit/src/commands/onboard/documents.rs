//! The customer-side documents of the seed's prerequisites: the role's trust and permissions, the
//! seed's broader `policy.json`, a CloudFormation template, and the channel resource policy.

use serde_json::{Value, json};

/// The seed's role name (its CloudFormation template's `RoleName`).
pub(crate) const ROLE_NAME: &str = "KlarityCloudTrailIntegration";

/// The inline policy the role gets from `onboard apply`.
pub(crate) const POLICY_NAME: &str = "KlarityPutAuditEvents";

/// Lets the vendor account assume the role, only with the external ID.
pub(crate) fn trust_policy(vendor_account: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{vendor_account}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// Least privilege: `PutAuditEvents` on this channel only; with `verify`, also reading the
/// channel (its ingestion status) and querying its store, so `tenants verify` can confirm.
pub(crate) fn least_privilege_policy(channel_arn: &str, store_arn: &str, verify: bool) -> Value {
    let mut statements = vec![json!({
        "Sid": "PublishKlarityAuditEvents",
        "Effect": "Allow",
        "Action": "cloudtrail-data:PutAuditEvents",
        "Resource": channel_arn
    })];
    if verify {
        statements.push(json!({
            "Sid": "VerifyDelivery",
            "Effect": "Allow",
            "Action": ["cloudtrail:GetChannel"],
            "Resource": channel_arn
        }));
        statements.push(json!({
            "Sid": "QueryKlarityAuditEvents",
            "Effect": "Allow",
            "Action": ["cloudtrail:StartQuery", "cloudtrail:DescribeQuery", "cloudtrail:GetQueryResults", "cloudtrail:CancelQuery", "cloudtrail:ListQueries"],
            "Resource": store_arn
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The role's name for CloudWatch Logs.
pub(crate) const LOGS_ROLE_NAME: &str = "KlarityCloudWatchLogsIntegration";

/// The inline policy the role gets from `onboard apply --destination cloudwatch-logs`.
pub(crate) const LOGS_POLICY_NAME: &str = "KlarityPutLogEvents";

/// Least privilege for CloudWatch Logs: `PutLogEvents` and `CreateLogStream` in this log group
/// only (the group and its streams); with `verify`, also reading the group back (`GetLogEvents`,
/// `FilterLogEvents`, `DescribeLogStreams`), which the console's viewer needs.
pub(crate) fn logs_policy(log_group_arn: &str, verify: bool) -> Value {
    let resources = json!([log_group_arn, format!("{log_group_arn}:*")]);
    let mut statements = vec![json!({
        "Sid": "PublishKlarityAuditEvents",
        "Effect": "Allow",
        "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
        "Resource": resources.clone()
    })];
    if verify {
        statements.push(json!({
            "Sid": "ReadKlarityAuditEvents",
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"],
            "Resource": resources
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A CloudFormation template for the CloudWatch Logs side: the log group and the least-privilege
/// role; its outputs are the three values for Klarity.
pub(crate) fn logs_cloudformation(vendor_account: &str, external_id: &str) -> String {
    let (parameters, trust) = (cloudformation_parameters(vendor_account, external_id), CLOUDFORMATION_TRUST);
    format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Description: >
  Klarity open audit events into this account's CloudWatch Logs: a log group, and a role Klarity may
  assume (with the external ID) only to write into it.
{parameters}Resources:
  KlarityLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: klarity-audit-events
      RetentionInDays: 3653
  KlarityLogsRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: {LOGS_ROLE_NAME}
{trust}      Policies:
        - PolicyName: {LOGS_POLICY_NAME}
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [logs:PutLogEvents, logs:CreateLogStream]
                Resource:
                  - !Sub "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{KlarityLogGroup}}"
                  - !GetAtt KlarityLogGroup.Arn  # the group's streams: its Arn ends in ":*"
Outputs:
  RoleArn:
    Description: Hand to Klarity (role ARN)
    Value: !GetAtt KlarityLogsRole.Arn
  ExternalId:
    Description: Hand to Klarity (external ID)
    Value: !Ref ExternalId
  LogGroupArn:
    Description: Hand to Klarity (log group ARN)
    Value: !Sub "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{KlarityLogGroup}}"
"#
    )
}

/// The role's name for S3.
pub(crate) const S3_ROLE_NAME: &str = "KlarityS3Integration";

/// The inline policy the role gets from `onboard apply --destination s3`.
pub(crate) const S3_POLICY_NAME: &str = "KlarityPutObjects";

/// Least privilege for S3: `s3:PutObject` under the prefix of this bucket, nothing else (the relay
/// never reads, lists or deletes: its keys are deterministic, so a re-sent object replaces itself).
pub(crate) fn s3_policy(bucket: &str, prefix: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "PublishKlarityAuditObjects",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*")
    }]})
}

/// A CloudFormation template for the S3 side: the bucket (private, encrypted, versioned) and the
/// least-privilege role; its outputs are the values for Klarity.
pub(crate) fn s3_cloudformation(vendor_account: &str, external_id: &str, prefix: &str) -> String {
    let (parameters, trust) = (cloudformation_parameters(vendor_account, external_id), CLOUDFORMATION_TRUST);
    format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Description: >
  Klarity open audit events into this account's S3: a private bucket, and a role Klarity may assume
  (with the external ID) only to put objects under one prefix of it.
{parameters}Resources:
  KlarityBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault:
              SSEAlgorithm: AES256
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: true
        IgnorePublicAcls: true
        RestrictPublicBuckets: true
      VersioningConfiguration:
        Status: Enabled
  KlarityS3Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: {S3_ROLE_NAME}
{trust}      Policies:
        - PolicyName: {S3_POLICY_NAME}
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: s3:PutObject
                Resource: !Sub "${{KlarityBucket.Arn}}/{prefix}*"
Outputs:
  RoleArn:
    Description: Hand to Klarity (role ARN)
    Value: !GetAtt KlarityS3Role.Arn
  ExternalId:
    Description: Hand to Klarity (external ID)
    Value: !Ref ExternalId
  BucketArn:
    Description: Hand to Klarity (bucket ARN; with the region and the prefix {prefix:?})
    Value: !GetAtt KlarityBucket.Arn
  Region:
    Description: Hand to Klarity (the bucket's region)
    Value: !Ref AWS::Region
"#
    )
}

/// The seed's `policy.json`: every CloudTrail Lake action on every resource. Broader than needed;
/// shown for comparison with the least-privilege policy.
pub(crate) fn seed_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "cloudtrail:CreateEventDataStore", "cloudtrail:UpdateEventDataStore", "cloudtrail:DeleteEventDataStore",
                    "cloudtrail:ListEventDataStores", "cloudtrail:RestoreEventDataStore", "cloudtrail:GetEventDataStore",
                    "cloudtrail:StartQuery", "cloudtrail:ListQueries", "cloudtrail:CancelQuery", "cloudtrail:DescribeQuery",
                    "cloudtrail:GetQueryResults", "cloudtrail:CreateIngestionChannel", "cloudtrail:UpdateIngestionChannel",
                    "cloudtrail:DeleteIngestionChannel", "cloudtrail:GetIngestionChannel", "cloudtrail:ListIngestionChannels"
                ],
                "Resource": "*"
            },
            {"Effect": "Allow", "Action": "cloudtrail-data:PutAuditEvents", "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:ListRoles", "iam:GetRolePolicy", "iam:GetUser"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:PassedToService": "cloudtrail.amazonaws.com"}}
            }
        ]
    })
}

/// The channel resource policy of the resource-policy mode: the vendor account may publish into
/// this channel, only with the external ID.
pub(crate) fn channel_policy(channel_arn: &str, vendor_account: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "KlarityPublishes",
            "Effect": "Allow",
            "Principal": {"AWS": vendor_account},
            "Action": "cloudtrail-data:PutAuditEvents",
            "Resource": channel_arn,
            "Condition": {"StringEquals": {"cloudtrail:ExternalId": external_id}}
        }]
    })
}

/// A CloudFormation template for the whole customer side of the role mode: the event data store,
/// the channel, and the least-privilege role; its outputs are the three values for Klarity.
pub(crate) fn cloudformation(vendor_account: &str, external_id: &str) -> String {
    let (parameters, trust) = (cloudformation_parameters(vendor_account, external_id), CLOUDFORMATION_TRUST);
    format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Description: >
  Klarity open audit events into this account's CloudTrail Lake: an event data store for integration
  events, a channel into it, and a role Klarity may assume (with the external ID) only to publish.
{parameters}Resources:
  KlarityEventDataStore:
    Type: AWS::CloudTrail::EventDataStore
    Properties:
      Name: klarity-audit-events
      MultiRegionEnabled: false
      OrganizationEnabled: false
      RetentionPeriod: 2557
      AdvancedEventSelectors:
        - Name: Klarity open audit events
          FieldSelectors:
            - Field: eventCategory
              Equals: [ActivityAuditLog]
  KlarityChannel:
    Type: AWS::CloudTrail::Channel
    Properties:
      Name: klarity
      Source: IBMMulticloud
      Destinations:
        - Type: EVENT_DATA_STORE
          Location: !GetAtt KlarityEventDataStore.EventDataStoreArn
  KlarityCloudTrailIntegrationRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: {ROLE_NAME}
{trust}      Policies:
        - PolicyName: {POLICY_NAME}
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: cloudtrail-data:PutAuditEvents
                Resource: !GetAtt KlarityChannel.ChannelArn
Outputs:
  RoleArn:
    Description: Hand to Klarity (role ARN)
    Value: !GetAtt KlarityCloudTrailIntegrationRole.Arn
  ExternalId:
    Description: Hand to Klarity (external ID)
    Value: !Ref ExternalId
  ChannelArn:
    Description: Hand to Klarity (channel ARN)
    Value: !GetAtt KlarityChannel.ChannelArn
"#
    )
}

/// Both templates' parameters: Klarity's account and the external ID.
fn cloudformation_parameters(vendor_account: &str, external_id: &str) -> String {
    format!(
        r#"Parameters:
  KlarityAccountId:
    Description: Klarity's AWS account
    Type: String
    AllowedPattern: "^[0-9]{{12}}$"
    Default: "{vendor_account}"
  ExternalId:
    Description: The external ID agreed with Klarity (10 to 20 letters and digits)
    Type: String
    MinLength: 10
    MaxLength: 20
    AllowedPattern: "^[0-9A-Za-z]*$"
    Default: "{external_id}"
"#
    )
}

/// Both roles' trust: Klarity's account, only with the external ID.
const CLOUDFORMATION_TRUST: &str = r#"      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              AWS: !Sub "arn:aws:iam::${KlarityAccountId}:root"
            Action: sts:AssumeRole
            Condition:
              StringEquals:
                "sts:ExternalId": !Ref ExternalId
"#;

/// A new external ID: 20 letters and digits (the seed's template takes 10 to 20).
pub(crate) fn new_external_id() -> String {
    let raw = uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    raw.as_bytes()
        .chunks(2)
        .take(20)
        .map(|pair| {
            let n = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16).unwrap_or(0);
            char::from(alphabet[usize::from(n) % alphabet.len()])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_with_the_lakes_policy_engine_and_say_what_they_should() {
        let channel = "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1";
        let store = "arn:aws:cloudtrail:eu-west-1:123456789012:eventdatastore/s1";
        for doc in [
            trust_policy("855341727128", "Kl4r1ty0123456789ab"),
            least_privilege_policy(channel, store, true),
            seed_policy(),
            channel_policy(channel, "855341727128", "Kl4r1ty0123456789ab"),
        ] {
            audit_lake::policy::Policy::parse(&doc.to_string()).unwrap();
        }
        let narrow = least_privilege_policy(channel, store, false);
        assert_eq!(narrow["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(narrow["Statement"][0]["Resource"], channel);
        let template = cloudformation("855341727128", "Kl4r1ty0123456789ab");
        assert!(
            template.contains("\"sts:ExternalId\": !Ref ExternalId")
                && template.contains("Default: \"Kl4r1ty0123456789ab\"")
        );
    }

    #[test]
    fn the_logs_policy_allows_writing_into_its_group_only_and_reading_only_when_asked() {
        use audit_lake::policy::{Decision, Policy, Request};
        let group = "arn:aws:logs:eu-west-1:123456789012:log-group:klarity-audit";
        let decide = |doc: &Value, action: &str, resource: &str| {
            Policy::parse(&doc.to_string()).unwrap().evaluate(&Request {
                principal_arn: "arn:aws:sts::855341727128:assumed-role/r/s",
                principal_account: "855341727128",
                principal_aliases: &[],
                action,
                resource,
                context: Default::default(),
            })
        };
        let narrow = logs_policy(group, false);
        let stream = format!("{group}:log-stream:klarity-audit");
        assert_eq!(decide(&narrow, "logs:PutLogEvents", &stream), Decision::Allow);
        assert_eq!(decide(&narrow, "logs:CreateLogStream", &stream), Decision::Allow);
        assert_eq!(decide(&narrow, "logs:CreateLogStream", group), Decision::Allow);
        let other = "arn:aws:logs:eu-west-1:123456789012:log-group:klarity-auditx:log-stream:s";
        assert_eq!(decide(&narrow, "logs:PutLogEvents", other), Decision::NotApplicable);
        assert_eq!(decide(&narrow, "logs:GetLogEvents", &stream), Decision::NotApplicable);
        assert_eq!(decide(&narrow, "logs:DeleteLogGroup", group), Decision::NotApplicable);
        assert_eq!(decide(&logs_policy(group, true), "logs:GetLogEvents", &stream), Decision::Allow);
        let template = logs_cloudformation("855341727128", "Kl4r1ty0123456789ab");
        assert!(template.contains("AWS::Logs::LogGroup") && template.contains("logs:PutLogEvents"));
        assert!(!template.contains("cloudtrail"));
    }

    #[test]
    fn the_s3_policy_allows_putting_objects_under_its_prefix_only() {
        use audit_lake::policy::{Decision, Policy, Request};
        let policy = Policy::parse(&s3_policy("acme-audit", "klarity-audit/").to_string()).unwrap();
        let decide = |action: &str, resource: &str| {
            policy.evaluate(&Request {
                principal_arn: "arn:aws:sts::123456789012:assumed-role/r/s",
                principal_account: "123456789012",
                principal_aliases: &[],
                action,
                resource,
                context: Default::default(),
            })
        };
        let key = "arn:aws:s3:::acme-audit/klarity-audit/source=x/eventDay=20261205/1-2-e.json.gz";
        assert_eq!(decide("s3:PutObject", key), Decision::Allow);
        assert_eq!(decide("s3:GetObject", key), Decision::NotApplicable);
        assert_eq!(decide("s3:DeleteObject", key), Decision::NotApplicable);
        assert_eq!(decide("s3:PutObject", "arn:aws:s3:::acme-audit/other/x"), Decision::NotApplicable);
        assert_eq!(decide("s3:PutObject", "arn:aws:s3:::acme-auditx/klarity-audit/x"), Decision::NotApplicable);
        assert_eq!(decide("s3:ListBucket", "arn:aws:s3:::acme-audit"), Decision::NotApplicable);
        let template = s3_cloudformation("855341727128", "Kl4r1ty0123456789ab", "klarity-audit/");
        assert!(template.contains("AWS::S3::Bucket") && template.contains("${KlarityBucket.Arn}/klarity-audit/*"));
        assert!(!template.contains("logs:") && !template.contains("cloudtrail"));
    }

    #[test]
    fn external_ids_fit_the_seeds_template() {
        let id = new_external_id();
        assert_eq!(id.len(), 20);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, new_external_id());
    }
}
