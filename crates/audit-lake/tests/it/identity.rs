//! STS and IAM: the seed's flow (vendor account → proxy role → customer role with the external
//! ID → PutAuditEvents) is accepted, and everything AWS refuses is refused.

use crate::support::{PutOne, SessionKeys, TestLake, Who, allow, code, entry, event_data, store_and_channel, trust};

pub(crate) const CUSTOMER_ROLE: &str = "arn:aws:iam::123456789012:role/CTEventPublisher";
pub(crate) const PROXY_ROLE: &str = "arn:aws:iam::855341727128:role/KlarityProxy";

async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &str,
    external_id: Option<&str>,
    seconds: Option<i32>,
) -> Result<SessionKeys, String> {
    let out = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("klarity-publisher")
        .set_external_id(external_id.map(str::to_owned))
        .set_duration_seconds(seconds)
        .send()
        .await
        .map_err(code)?;
    let c = out.credentials().unwrap();
    assert!(c.access_key_id().starts_with("ASIA"));
    Ok(SessionKeys {
        id: c.access_key_id().to_owned(),
        secret: c.secret_access_key().to_owned(),
        token: c.session_token().to_owned(),
    })
}

/// The external ID the seed world's customer role trusts.
pub(crate) const EXTERNAL_ID: &str = "klarity-ext-7";

/// The customer's side of the seed: role trusting the vendor account under an external ID, with
/// only PutAuditEvents on the channel; the vendor's proxy role allowed to assume it.
pub(crate) async fn seed_world(lake: &TestLake) -> (String, String) {
    let (store_arn, channel_arn) = store_and_channel(lake, "seed").await;
    let iam = lake.iam(Who::Customer);
    iam.create_role()
        .role_name("CTEventPublisher")
        .assume_role_policy_document(trust("arn:aws:iam::855341727128:root", Some(EXTERNAL_ID)))
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("CTEventPublisher")
        .policy_name("publish")
        .policy_document(allow("cloudtrail-data:PutAuditEvents", &channel_arn))
        .send()
        .await
        .unwrap();
    let vendor = lake.iam(Who::Vendor);
    vendor
        .create_role()
        .role_name("KlarityProxy")
        .assume_role_policy_document(trust("855341727128", None))
        .max_session_duration(7200)
        .send()
        .await
        .unwrap();
    vendor
        .put_role_policy()
        .role_name("KlarityProxy")
        .policy_name("chain")
        .policy_document(allow("sts:AssumeRole", CUSTOMER_ROLE))
        .send()
        .await
        .unwrap();
    (store_arn, channel_arn)
}

#[tokio::test]
async fn the_seed_flow_through_the_proxy_role_is_accepted() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = seed_world(&lake).await;

    let proxy = assume(&lake.sts(Who::Vendor), PROXY_ROLE, None, Some(7200)).await.unwrap();
    let me = lake.sts_session(&proxy).get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:sts::855341727128:assumed-role/KlarityProxy/klarity-publisher"));
    let publisher = assume(&lake.sts_session(&proxy), CUSTOMER_ROLE, Some("klarity-ext-7"), Some(900)).await.unwrap();
    let me = lake.sts_session(&publisher).get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some("123456789012"));
    assert_eq!(me.arn(), Some("arn:aws:sts::123456789012:assumed-role/CTEventPublisher/klarity-publisher"));
    assert!(me.user_id().unwrap().starts_with("AROA"));

    let out = lake.data_session(&publisher).put_one(&channel_arn, "seed-1", 1).await.unwrap();
    assert_eq!(out.successful().len(), 1, "{:?}", out.failed());
    assert_eq!(crate::support::records(&lake.db(), &store_arn).len(), 1);

    // Least privilege: the publisher can do nothing else.
    let err = lake.cloudtrail_session(&publisher).list_event_data_stores().send().await.unwrap_err();
    assert_eq!(code(err), "AccessDeniedException");
    // The vendor's root may assume the customer role directly too (the trust names its root).
    assume(&lake.sts(Who::Vendor), CUSTOMER_ROLE, Some("klarity-ext-7"), None).await.unwrap();
}

#[tokio::test]
async fn what_aws_refuses_is_refused() {
    let lake = TestLake::start().await;
    let (store_arn, channel_arn) = seed_world(&lake).await;
    let vendor = lake.sts(Who::Vendor);

    // A wrong or missing external ID.
    for external in [Some("wrong-ext-9"), None] {
        let err = vendor
            .assume_role()
            .role_arn(CUSTOMER_ROLE)
            .role_session_name("s1")
            .set_external_id(external.map(str::to_owned))
            .send()
            .await
            .unwrap_err();
        let meta = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(meta, Some(403));
        assert_eq!(code(err), "AccessDenied", "{external:?}");
    }
    // A role that does not exist looks the same.
    let err = vendor
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/Nope")
        .role_session_name("s1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "AccessDenied");
    // Another account (not trusted) with the right external ID.
    let err =
        lake.sts(Who::Customer).assume_role().role_arn(PROXY_ROLE).role_session_name("s1").send().await.unwrap_err();
    assert_eq!(code(err), "AccessDenied");

    // Role chaining caps sessions at one hour.
    let proxy = assume(&vendor, PROXY_ROLE, None, None).await.unwrap();
    let err = lake
        .sts_session(&proxy)
        .assume_role()
        .role_arn(CUSTOMER_ROLE)
        .role_session_name("s2")
        .external_id("klarity-ext-7")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ValidationError");
    // Beyond the role's maximum session duration.
    let err = vendor
        .assume_role()
        .role_arn(CUSTOMER_ROLE)
        .role_session_name("s3")
        .external_id("klarity-ext-7")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ValidationError");

    // The proxy role without permission to assume the customer role.
    lake.iam(Who::Vendor).delete_role_policy().role_name("KlarityProxy").policy_name("chain").send().await.unwrap();
    let err = lake
        .sts_session(&proxy)
        .assume_role()
        .role_arn(CUSTOMER_ROLE)
        .role_session_name("s4")
        .external_id("klarity-ext-7")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "AccessDenied");

    // A role of another account, no channel policy: the vendor's proxy session cannot publish.
    lake.iam(Who::Vendor)
        .put_role_policy()
        .role_name("KlarityProxy")
        .policy_name("publish")
        .policy_document(allow("cloudtrail-data:PutAuditEvents", "*"))
        .send()
        .await
        .unwrap();
    let err = lake.data_session(&proxy).put_one(&channel_arn, "x", 1).await.unwrap_err();
    assert_eq!(code(err), "ChannelInsufficientPermission");

    // A customer role without cloudtrail-data:PutAuditEvents.
    lake.iam(Who::Customer)
        .delete_role_policy()
        .role_name("CTEventPublisher")
        .policy_name("publish")
        .send()
        .await
        .unwrap();
    let publisher = assume(&vendor, CUSTOMER_ROLE, Some("klarity-ext-7"), None).await.unwrap();
    let err = lake.data_session(&publisher).put_one(&channel_arn, "y", 2).await.unwrap_err();
    assert_eq!(code(err), "ChannelInsufficientPermission");

    // A wrong session token, and an expired session (its expiry set in the past: an injected fault).
    let forged = SessionKeys { token: "forged".into(), ..publisher.clone() };
    let err = lake.sts_session(&forged).get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidClientTokenId");
    let mut session = lake.lake.store().session(&publisher.id).unwrap();
    session.expires = 0;
    lake.lake.store().put_session(session).await.unwrap();
    let err = lake.sts_session(&publisher).get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(err), "ExpiredTokenException");
    let err = lake.data_session(&publisher).put_one(&channel_arn, "z", 3).await.unwrap_err();
    assert_eq!(code(err), "ExpiredTokenException");

    // A tampered signature (a session's key id with another secret) and an unknown key.
    let fresh = assume(&vendor, PROXY_ROLE, None, None).await.unwrap();
    let tampered = SessionKeys { secret: "not-the-secret-of-this-session-000000000".into(), ..fresh };
    let err = lake.data_session(&tampered).put_one(&channel_arn, "t", 4).await.unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");
    let err = lake.data(Who::Stranger).put_one(&channel_arn, "u", 5).await.unwrap_err();
    assert_eq!(code(err), "UnrecognizedClientException");

    // Nothing of the above was written.
    assert!(crate::support::records(&lake.db(), &store_arn).is_empty());
}

#[tokio::test]
async fn the_resource_policy_mode_from_an_assumed_role() {
    let lake = TestLake::start().await;
    let (_, channel_arn) = store_and_channel(&lake, "rp").await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::855341727128:root"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel_arn}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"rp-ext-1"}}}}}}]}}"#
    );
    lake.cloudtrail(Who::Customer)
        .put_resource_policy()
        .resource_arn(&channel_arn)
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
    let vendor = lake.iam(Who::Vendor);
    vendor
        .create_role()
        .role_name("KlarityProxy")
        .assume_role_policy_document(trust("855341727128", None))
        .send()
        .await
        .unwrap();
    vendor
        .put_role_policy()
        .role_name("KlarityProxy")
        .policy_name("publish")
        .policy_document(allow("cloudtrail-data:PutAuditEvents", "*"))
        .send()
        .await
        .unwrap();
    let proxy = assume(&lake.sts(Who::Vendor), PROXY_ROLE, None, None).await.unwrap();
    let data = lake.data_session(&proxy);
    let out = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("rp-ext-1")
        .audit_events(entry("rp-1", &event_data(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 1);
    let err = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("rp-ext-2")
        .audit_events(entry("rp-2", &event_data(2)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelInsufficientPermission");
    // Both sides are needed across accounts: without its identity allow, the session is refused.
    vendor.delete_role_policy().role_name("KlarityProxy").policy_name("publish").send().await.unwrap();
    let err = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("rp-ext-1")
        .audit_events(entry("rp-3", &event_data(3)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelInsufficientPermission");
}

#[tokio::test]
async fn iam_roles_and_inline_policies() {
    let lake = TestLake::start().await;
    let iam = lake.iam(Who::Customer);
    let created = iam
        .create_role()
        .role_name("Auditor")
        .assume_role_policy_document(trust("123456789012", None))
        .description("reads events")
        .send()
        .await
        .unwrap();
    let role = created.role().unwrap();
    assert_eq!(role.arn(), "arn:aws:iam::123456789012:role/Auditor");
    assert!(role.role_id().starts_with("AROA"));
    assert_eq!(role.max_session_duration(), Some(3600));
    let got = iam.get_role().role_name("Auditor").send().await.unwrap();
    let document = got.role().unwrap().assume_role_policy_document().unwrap();
    assert!(document.contains("sts%3AAssumeRole"), "IAM returns policy documents URL-encoded: {document}");
    assert_eq!(iam.list_roles().send().await.unwrap().roles().len(), 1);
    assert!(lake.iam(Who::Vendor).list_roles().send().await.unwrap().roles().is_empty(), "accounts are separate");

    let err = iam
        .create_role()
        .role_name("auditor")
        .assume_role_policy_document(trust("123456789012", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EntityAlreadyExists");
    let err = iam.create_role().role_name("Bad").assume_role_policy_document("{").send().await.unwrap_err();
    assert_eq!(code(err), "MalformedPolicyDocument");
    let err = iam.get_role().role_name("Missing").send().await.unwrap_err();
    assert_eq!(code(err), "NoSuchEntity");

    iam.put_role_policy()
        .role_name("Auditor")
        .policy_name("read")
        .policy_document(allow("cloudtrail:Get*", "*"))
        .send()
        .await
        .unwrap();
    assert_eq!(iam.list_role_policies().role_name("Auditor").send().await.unwrap().policy_names(), ["read"]);
    // Stored policies are parsed once, when written: every request evaluates the same parse.
    let store = &lake.lake.store();
    let stored = store.role_named("123456789012", "Auditor").unwrap();
    for text in std::iter::once(&stored.assume_role_policy).chain(stored.policies.values()) {
        assert!(std::sync::Arc::ptr_eq(&store.policy(text).unwrap(), &store.policy(text).unwrap()), "{text}");
    }
    let unstored = allow("cloudtrail:List*", "*");
    assert!(!std::sync::Arc::ptr_eq(&store.policy(&unstored).unwrap(), &store.policy(&unstored).unwrap()));
    let got = iam.get_role_policy().role_name("Auditor").policy_name("read").send().await.unwrap();
    assert!(got.policy_document().contains("cloudtrail%3AGet"));
    let err = iam.delete_role().role_name("Auditor").send().await.unwrap_err();
    assert_eq!(code(err), "DeleteConflict");
    iam.update_assume_role_policy()
        .role_name("Auditor")
        .policy_document(trust("arn:aws:iam::855341727128:root", None))
        .send()
        .await
        .unwrap();
    iam.delete_role_policy().role_name("Auditor").policy_name("read").send().await.unwrap();
    iam.delete_role().role_name("Auditor").send().await.unwrap();
    let err = iam.get_role().role_name("Auditor").send().await.unwrap_err();
    assert_eq!(code(err), "NoSuchEntity");
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let lake = TestLake::start().await;
    seed_world(&lake).await;
    let proxy = assume(&lake.sts(Who::Vendor), PROXY_ROLE, None, None).await.unwrap();
    let dir = lake.stop().await;
    let lake = TestLake::start_in(dir).await;
    let me = lake.sts_session(&proxy).get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:sts::855341727128:assumed-role/KlarityProxy/klarity-publisher"));
}

/// The secret keys the lake keeps (sessions', accounts' made at run time) are sealed under a key
/// kept apart: the database's files hold none of them in the clear, a restart opens them again,
/// and a database of an older lake with plaintext secrets is sealed when it opens.
#[tokio::test]
async fn secret_keys_are_sealed_at_rest() {
    let lake = TestLake::start().await;
    seed_world(&lake).await;
    let proxy = assume(&lake.sts(Who::Vendor), PROXY_ROLE, None, None).await.unwrap();
    let db = lake.db();
    let key_file = db.parent().unwrap().join("secrets.key");
    let sealer = audit_lake::secrets::Sealer::load_or_create(&key_file).unwrap();
    let account = audit_lake::store::model::StoredAccount {
        id: "333333333333".into(),
        name: "made".into(),
        access_key_id: "AKIAMADEATRUNTIME001".into(),
        secret_access_key: "made-at-run-time-secret-key-00000001".into(),
        created: 0,
    };
    audit_lake::store::insert_account(&db, &sealer, &account).unwrap();
    // An older lake's session, stored with its secret in the clear (the fault injected).
    let old_secret = "plaintext-session-secret-of-an-old-lake";
    let old = audit_lake::store::model::Session {
        access_key_id: "ASIAOLDLAKESESSION01".into(),
        secret_access_key: old_secret.into(),
        token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"old-token")),
        expires: i64::MAX / 2,
        ..lake.lake.store().session(&proxy.id).unwrap()
    };
    rusqlite_insert(&db, &format!("session/{}", old.access_key_id), &serde_json::to_string(&old).unwrap());

    let dir = lake.stop().await;
    let files = |dir: &std::path::Path| -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir.join("lake")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && path.file_name().unwrap().to_string_lossy().starts_with("lake.db") {
                all.extend(std::fs::read(path).unwrap());
            }
        }
        all
    };
    let holds = |bytes: &[u8], secret: &str| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!holds(&files(dir.path()), &proxy.secret), "a session's secret is in the database in the clear");
    assert!(!holds(&files(dir.path()), &account.secret_access_key), "an account's secret is in the clear");

    // A restart opens them again; the older session's secret is sealed now, and still works.
    let lake = TestLake::start_in(dir).await;
    let me = lake.sts_session(&proxy).get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:sts::855341727128:assumed-role/KlarityProxy/klarity-publisher"));
    let made = lake.sts_with(&account.access_key_id, &account.secret_access_key, None);
    assert_eq!(made.get_caller_identity().send().await.unwrap().account(), Some("333333333333"));
    let keys = SessionKeys { id: old.access_key_id.clone(), secret: old_secret.into(), token: "old-token".into() };
    assert!(lake.sts_session(&keys).get_caller_identity().send().await.is_ok());
    let dir = lake.stop().await;
    // Checkpointed by the clean stop: the files hold the sealed form only.
    assert!(!holds(&files(dir.path()), old_secret), "the older session's secret was sealed at open");
    // Without the key, the database hands out nothing: another key refuses to open it.
    std::fs::remove_file(dir.path().join("lake").join("secrets.key")).unwrap();
    let config = audit_lake::LakeConfig { data_dir: dir.path().join("lake"), ..Default::default() };
    let err = audit_lake::Lake::open(config).err().expect("a database sealed with another key");
    assert!(err.to_string().contains("sealed with another key"), "{err}");
}

fn rusqlite_insert(db: &std::path::Path, arn: &str, body: &str) {
    let conn = wal_db::open(db).unwrap();
    conn.execute("INSERT INTO resources (arn, kind, body) VALUES (?1, 'session', ?2)", (arn, body)).unwrap();
}

/// An identity policy statement without `Resource` is refused, as IAM refuses it.
#[tokio::test]
async fn a_role_policy_statement_needs_resources() {
    let lake = TestLake::start().await;
    let iam = lake.iam(Who::Customer);
    iam.create_role()
        .role_name("NoResource")
        .assume_role_policy_document(trust("arn:aws:iam::855341727128:root", None))
        .send()
        .await
        .unwrap();
    let err = iam
        .put_role_policy()
        .role_name("NoResource")
        .policy_name("p")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail-data:PutAuditEvents"}]}"#,
        )
        .send()
        .await
        .unwrap_err();
    let message =
        err.as_service_error().and_then(aws_sdk_iam::error::ProvideErrorMetadata::message).unwrap_or("").to_owned();
    assert_eq!(
        (code(err).as_str(), message.as_str()),
        ("MalformedPolicyDocument", "Policy statement must contain resources.")
    );
}
