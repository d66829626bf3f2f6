use std::collections::HashMap;

use super::*;

const CHANNEL: &str = "arn:aws:cloudtrail:us-east-1:123456789012:channel/c1";

fn request<'a>(arn: &'a str, account: &'a str, external_id: Option<&str>) -> Request<'a> {
    let mut context = HashMap::new();
    if let Some(id) = external_id {
        context.insert("cloudtrail:externalid".to_owned(), id.to_owned());
    }
    Request {
        principal_arn: arn,
        principal_account: account,
        principal_aliases: &[],
        action: "cloudtrail-data:PutAuditEvents",
        resource: CHANNEL,
        context,
    }
}

fn channel_policy(principal: &str, condition: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Partner","Effect":"Allow","Principal":{{"AWS":{principal}}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{CHANNEL}"{condition}}}]}}"#
    ))
    .unwrap()
}

#[test]
fn partner_with_the_external_id_is_allowed() {
    let policy = channel_policy(
        r#"["arn:aws:iam::855341727128:root"]"#,
        r#","Condition":{"StringEquals":{"cloudtrail:ExternalId":"ext-1"}}"#,
    );
    let vendor = "arn:aws:iam::855341727128:root";
    assert_eq!(policy.evaluate(&request(vendor, "855341727128", Some("ext-1"))), Decision::Allow);
    assert_eq!(policy.evaluate(&request(vendor, "855341727128", Some("ext-2"))), Decision::NotApplicable);
    assert_eq!(
        policy.evaluate(&request(vendor, "855341727128", None)),
        Decision::NotApplicable,
        "a missing key fails StringEquals"
    );
    assert_eq!(
        policy.evaluate(&request("arn:aws:iam::111122223333:root", "111122223333", Some("ext-1"))),
        Decision::NotApplicable
    );
    // A role of the partner account is covered by the account's root ARN.
    let role = "arn:aws:sts::855341727128:assumed-role/Publisher/s1";
    assert_eq!(policy.evaluate(&request(role, "855341727128", Some("ext-1"))), Decision::Allow);
}

#[test]
fn principals_by_account_id_role_and_star() {
    let by_id = channel_policy(r#""855341727128""#, "");
    assert_eq!(by_id.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", None)), Decision::Allow);
    let by_role = channel_policy(r#""arn:aws:iam::855341727128:role/Publisher""#, "");
    assert_eq!(
        by_role.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", None)),
        Decision::NotApplicable
    );
    let aliases = vec!["arn:aws:iam::855341727128:role/Publisher".to_owned()];
    let mut session = request("arn:aws:sts::855341727128:assumed-role/Publisher/s1", "855341727128", None);
    session.principal_aliases = &aliases;
    assert_eq!(by_role.evaluate(&session), Decision::Allow);
    let star = channel_policy(r#""*""#, r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"855341727128"}}"#);
    assert_eq!(star.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", None)), Decision::Allow);
    assert_eq!(
        star.evaluate(&request("arn:aws:iam::111122223333:root", "111122223333", None)),
        Decision::NotApplicable
    );
}

#[test]
fn explicit_deny_wins() {
    let policy = Policy::parse(&format!(
        r#"{{"Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"cloudtrail-data:*","Resource":"*"}},
            {{"Effect":"Deny","Principal":{{"AWS":"123456789012"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{CHANNEL}"}}
        ]}}"#
    ))
    .unwrap();
    assert_eq!(
        policy.evaluate(&request("arn:aws:iam::123456789012:root", "123456789012", None)),
        Decision::ExplicitDeny
    );
    assert_eq!(policy.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", None)), Decision::Allow);
}

#[test]
fn condition_operators() {
    let cases = [
        (r#"{"StringNotEquals":{"cloudtrail:ExternalId":"bad"}}"#, Some("good"), true),
        (r#"{"StringNotEquals":{"cloudtrail:ExternalId":"bad"}}"#, Some("bad"), false),
        (r#"{"StringNotEquals":{"cloudtrail:ExternalId":"bad"}}"#, None, true),
        (r#"{"StringLike":{"cloudtrail:ExternalId":"klarity-*"}}"#, Some("klarity-42"), true),
        (r#"{"StringLike":{"cloudtrail:ExternalId":"klarity-?"}}"#, Some("klarity-42"), false),
        (r#"{"StringEqualsIgnoreCase":{"cloudtrail:ExternalId":"ABC"}}"#, Some("abc"), true),
        (r#"{"StringEqualsIfExists":{"cloudtrail:ExternalId":"abc"}}"#, None, true),
        (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::855341727128:*"}}"#, None, true),
        (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::855341727128:user/x"}}"#, None, false),
        (r#"{"StringEquals":{"cloudtrail:ExternalId":["a","b"]}}"#, Some("b"), true),
    ];
    for (condition, external_id, allowed) in cases {
        let policy = channel_policy(r#""*""#, &format!(r#","Condition":{condition}"#));
        let decision = policy.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", external_id));
        assert_eq!(decision == Decision::Allow, allowed, "{condition} with {external_id:?}");
    }
}

#[test]
fn invalid_documents_are_refused_with_a_reason() {
    let cases = [
        ("not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"Version":"2020-01-01","Statement":[]}"#, "use \"2012-10-17\""),
        (r#"{"Version":"2012-10-17"}"#, "has no Statement"),
        (r#"{"Statement":[{"Action":"x"}]}"#, "statement 1: has no Effect"),
        (r#"{"Statement":[{"Effect":"Maybe","Action":"x"}]}"#, "Effect \"Maybe\""),
        (r#"{"Statement":[{"Effect":"Allow"}]}"#, "has no Action"),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"x","Principal":{"Service":"s3.amazonaws.com"}}]}"#,
            "only \"AWS\" principals",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"x","Condition":{"NumericEquals":{"a":"1"}}}]}"#,
            "condition operator \"NumericEquals\"",
        ),
        (r#"{"Statement":[{"Effect":"Allow","Action":"x","Bogus":1}]}"#, "unknown element \"Bogus\""),
        (r#"{"Statement":[{"Effect":"Allow","Action":[]}]}"#, "non-empty list"),
    ];
    for (text, why) in cases {
        let err = Policy::parse(text).unwrap_err();
        assert!(err.0.contains(why), "{text}: {err}");
    }
}

#[test]
fn wildcards() {
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("cloudtrail-data:*", "cloudtrail-data:PutAuditEvents"));
    assert!(wildcard_match("arn:aws:cloudtrail:*:123456789012:channel/*", CHANNEL));
    assert!(wildcard_match("a?c", "abc"));
    assert!(!wildcard_match("a?c", "abbc"));
    assert!(wildcard_match("*b*d", "abcd"));
    assert!(!wildcard_match("abc", "abcd"));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            prop::sample::select(vec![
                "Allow",
                "Deny",
                "*",
                "2012-10-17",
                "cloudtrail-data:PutAuditEvents",
                "StringEquals",
                "AWS",
                "arn:aws:iam::1:root"
            ])
            .prop_map(|s| serde_json::Value::String(s.into())),
            ".{0,10}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "Version",
                            "Statement",
                            "Effect",
                            "Principal",
                            "Action",
                            "NotAction",
                            "Resource",
                            "Condition",
                            "Sid",
                            "AWS",
                            "StringLike",
                            "cloudtrail:ExternalId"
                        ])
                        .prop_map(str::to_owned),
                        inner
                    ),
                    0..5
                )
                .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Arbitrary documents parse or are refused with a reason; parsed ones evaluate without panicking.
        #[test]
        fn documents_never_panic(doc in json_value(), text in ".{0,200}") {
            for candidate in [doc.to_string(), text] {
                match Policy::parse(&candidate) {
                    Ok(policy) => {
                        let _ = policy.evaluate(&request("arn:aws:iam::855341727128:root", "855341727128", Some("x")));
                    }
                    Err(err) => prop_assert!(!err.0.is_empty()),
                }
            }
        }
    }
}

/// (name, statements, caller ARN, caller account, action, resource, context, expected)
type Case<'a> = (&'a str, String, &'a str, &'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>, Decision);

/// The evaluator, table-driven: (case, policy statements, caller ARN, caller account, action,
/// resource, context, expected decision). Deny-overrides, wildcards, NotAction, principals of
/// every form and each condition operator are among the cases.
#[test]
fn evaluator_table() {
    const ROOT: &str = "arn:aws:iam::855341727128:root";
    const SESSION: &str = "arn:aws:sts::855341727128:assumed-role/Proxy/s1";
    const OTHER: &str = "arn:aws:iam::111122223333:root";
    const CH: &str = "arn:aws:cloudtrail:us-east-1:123456789012:channel/c1";
    const PUT: &str = "cloudtrail-data:PutAuditEvents";
    use Decision::{Allow, ExplicitDeny as Deny, NotApplicable as Nope};
    let allow_all = r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}"#;
    let cases: Vec<Case> = vec![
        ("star allows everyone", allow_all.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("star allows another account", allow_all.into(), OTHER, "111122223333", PUT, CH, vec![], Allow),
        ("empty match is not applicable", r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("deny overrides allow", format!(r#"{allow_all},{{"Effect":"Deny","Principal":"*","Action":"{PUT}","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Deny),
        ("deny first still wins", format!(r#"{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}},{allow_all}"#), ROOT, "855341727128", PUT, CH, vec![], Deny),
        ("deny of another action does not apply", format!(r#"{allow_all},{{"Effect":"Deny","Principal":"*","Action":"cloudtrail:*","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("deny of another principal does not apply", format!(r#"{allow_all},{{"Effect":"Deny","Principal":{{"AWS":"{OTHER}"}},"Action":"*","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("deny of another resource does not apply", format!(r#"{allow_all},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"arn:aws:cloudtrail:us-east-1:123456789012:channel/c2"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("action wildcard service:*", r#"{"Effect":"Allow","Principal":"*","Action":"cloudtrail-data:*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("action wildcard prefix", r#"{"Effect":"Allow","Principal":"*","Action":"cloudtrail-data:Put*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("action wildcard does not cross services", r#"{"Effect":"Allow","Principal":"*","Action":"cloudtrail:*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("action match ignores case", r#"{"Effect":"Allow","Principal":"*","Action":"CloudTrail-Data:putauditevents","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("action question mark", r#"{"Effect":"Allow","Principal":"*","Action":"cloudtrail-data:PutAuditEvent?","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("action list", format!(r#"{{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","{PUT}"],"Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("NotAction excludes", r#"{"Effect":"Allow","Principal":"*","NotAction":"cloudtrail-data:*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("NotAction includes others", r#"{"Effect":"Allow","Principal":"*","NotAction":"s3:*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("resource exact", format!(r#"{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"{CH}"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("resource wildcard region", r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"arn:aws:cloudtrail:*:123456789012:channel/*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("resource of another account", r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"arn:aws:cloudtrail:*:999999999999:channel/*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("resource list", format!(r#"{{"Effect":"Allow","Principal":"*","Action":"*","Resource":["arn:aws:s3:::b","{CH}"]}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("no resource element applies to all", r#"{"Effect":"Allow","Principal":"*","Action":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("principal account id", r#"{"Effect":"Allow","Principal":{"AWS":"855341727128"},"Action":"*","Resource":"*"}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("principal account root ARN", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROOT}"}},"Action":"*","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("account root covers its sessions", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROOT}"}},"Action":"*","Resource":"*"}}"#), SESSION, "855341727128", PUT, CH, vec![], Allow),
        ("another account is not covered", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROOT}"}},"Action":"*","Resource":"*"}}"#), OTHER, "111122223333", PUT, CH, vec![], Nope),
        ("principal session ARN", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"{SESSION}"}},"Action":"*","Resource":"*"}}"#), SESSION, "855341727128", PUT, CH, vec![], Allow),
        ("a session ARN does not cover the root", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"{SESSION}"}},"Action":"*","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("principal list", format!(r#"{{"Effect":"Allow","Principal":{{"AWS":["{OTHER}","855341727128"]}},"Action":"*","Resource":"*"}}"#), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("principal AWS star", r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*","Resource":"*"}"#.into(), OTHER, "111122223333", PUT, CH, vec![], Allow),
        ("StringEquals holds", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"cloudtrail:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "e1")], Allow),
        ("StringEquals differs", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"cloudtrail:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "E1")], Nope),
        ("StringEquals missing key fails", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"sts:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Nope),
        ("condition key names ignore case", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"STS:EXTERNALID":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("sts:externalid", "e1")], Allow),
        ("StringNotEquals holds", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotEquals":{"cloudtrail:ExternalId":"bad"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "ok")], Allow),
        ("StringNotEquals fails", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotEquals":{"cloudtrail:ExternalId":"bad"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "bad")], Nope),
        ("StringLike star", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringLike":{"cloudtrail:ExternalId":"kl-*"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "kl-42")], Allow),
        ("StringNotLike", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotLike":{"cloudtrail:ExternalId":"kl-*"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "kl-42")], Nope),
        ("ArnLike on PrincipalArn", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:sts::855341727128:assumed-role/Proxy/*"}}}"#.into(), SESSION, "855341727128", PUT, CH, vec![], Allow),
        ("ArnEquals on PrincipalArn fails", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::855341727128:role/Proxy"}}}"#.into(), SESSION, "855341727128", PUT, CH, vec![], Nope),
        ("PrincipalAccount condition", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":["111122223333","855341727128"]}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("all conditions must hold", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"855341727128","cloudtrail:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "e2")], Nope),
        ("IfExists with the key absent", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEqualsIfExists":{"cloudtrail:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![], Allow),
        ("IfExists with a different value", r#"{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEqualsIfExists":{"cloudtrail:ExternalId":"e1"}}}"#.into(), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "e2")], Nope),
        ("conditional deny applies", format!(r#"{allow_all},{{"Effect":"Deny","Principal":"*","Action":"*","Condition":{{"StringNotEquals":{{"cloudtrail:ExternalId":"e1"}}}}}}"#), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "e2")], Deny),
        ("conditional deny does not apply", format!(r#"{allow_all},{{"Effect":"Deny","Principal":"*","Action":"*","Condition":{{"StringNotEquals":{{"cloudtrail:ExternalId":"e1"}}}}}}"#), ROOT, "855341727128", PUT, CH, vec![("cloudtrail:externalid", "e1")], Allow),
        ("identity policy without principal applies", format!(r#"{{"Effect":"Allow","Action":"{PUT}","Resource":"{CH}"}}"#), SESSION, "855341727128", PUT, CH, vec![], Allow),
        ("identity deny without principal", format!(r#"{{"Effect":"Allow","Action":"*","Resource":"*"}},{{"Effect":"Deny","Action":"{PUT}","Resource":"*"}}"#), SESSION, "855341727128", PUT, CH, vec![], Deny),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, statements, arn, account, action, resource, context, expected) in cases {
        let policy = Policy::parse(&format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let request = Request {
            principal_arn: arn,
            principal_account: account,
            principal_aliases: &[],
            action,
            resource,
            context: context.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        };
        assert_eq!(policy.evaluate(&request), expected, "{name}");
    }
}
