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
