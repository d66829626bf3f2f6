//! IAM users: the seed's non-AWS workload path (proxy user → proxy role → customer role with the
//! external ID → PutAuditEvents), the refusals AWS gives, and IAM's shapes, errors and paging.

use crate::{
    identity::{CUSTOMER_ROLE, EXTERNAL_ID, PROXY_ROLE, seed_world},
    support::{PutOne, SessionKeys, TestLake, Who, allow, code, trust},
};

const PROXY_USER: &str = "klarity-proxy-user";

/// The user's long-term keys.
struct UserKeys {
    id: String,
    secret: String,
}

/// The seed's world ([`seed_world`]) and the vendor's proxy user with a key; `may_assume` gives
/// the user its one permission.
async fn world(lake: &TestLake, may_assume: bool) -> (String, UserKeys) {
    let (_store, channel_arn) = seed_world(lake).await;
    let vendor = lake.iam(Who::Vendor);
    let user = vendor.create_user().user_name(PROXY_USER).send().await.unwrap();
    let user = user.user().unwrap();
    assert_eq!(user.arn(), format!("arn:aws:iam::855341727128:user/{PROXY_USER}"));
    assert!(user.user_id().starts_with("AIDA"), "{}", user.user_id());
    if may_assume {
        vendor
            .put_user_policy()
            .user_name(PROXY_USER)
            .policy_name("assume-proxy-role")
            .policy_document(allow("sts:AssumeRole", PROXY_ROLE))
            .send()
            .await
            .unwrap();
    }
    let key = vendor.create_access_key().user_name(PROXY_USER).send().await.unwrap();
    let key = key.access_key().unwrap();
    assert!(key.access_key_id().starts_with("AKIA"));
    assert_eq!(key.status().as_str(), "Active");
    (channel_arn, UserKeys { id: key.access_key_id().to_owned(), secret: key.secret_access_key().to_owned() })
}

async fn assume(sts: &aws_sdk_sts::Client, role: &str, external_id: Option<&str>) -> Result<SessionKeys, String> {
    let out = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("workload")
        .set_external_id(external_id.map(str::to_owned))
        .send()
        .await
        .map_err(code)?;
    let c = out.credentials().unwrap();
    Ok(SessionKeys {
        id: c.access_key_id().to_owned(),
        secret: c.secret_access_key().to_owned(),
        token: c.session_token().to_owned(),
    })
}

#[tokio::test]
async fn a_proxy_user_publishes_through_the_proxy_role_and_the_customer_role() {
    let lake = TestLake::start().await;
    let (channel_arn, keys) = world(&lake, true).await;

    let sts = lake.sts_with(&keys.id, &keys.secret, None);
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some(format!("arn:aws:iam::855341727128:user/{PROXY_USER}").as_str()));
    assert_eq!(me.account(), Some("855341727128"));
    assert!(me.user_id().unwrap().starts_with("AIDA"));

    let proxy = assume(&sts, PROXY_ROLE, None).await.unwrap();
    let publisher = assume(&lake.sts_session(&proxy), CUSTOMER_ROLE, Some(EXTERNAL_ID)).await.unwrap();
    let out = lake.data_session(&publisher).put_one(&channel_arn, "from-a-vm", 1).await.unwrap();
    assert_eq!(out.successful().len(), 1, "{:?}", out.failed());

    // The user may do only what its policy allows: not assume the customer role directly (the
    // trust names the vendor's account, and the user's own policy allows only the proxy role),
    // not call PutAuditEvents, not read IAM.
    assert_eq!(assume(&sts, CUSTOMER_ROLE, Some(EXTERNAL_ID)).await.unwrap_err(), "AccessDenied");
    let user_iam = lake.iam_with(&keys.id, &keys.secret, None);
    let err = user_iam.list_users().send().await.unwrap_err();
    assert_eq!(code(err), "AccessDenied");
    // A user asks about itself without naming itself, when allowed to.
    let vendor = lake.iam(Who::Vendor);
    vendor
        .put_user_policy()
        .user_name(PROXY_USER)
        .policy_name("self")
        .policy_document(allow("iam:GetUser", &format!("arn:aws:iam::855341727128:user/{PROXY_USER}")))
        .send()
        .await
        .unwrap();
    let me = user_iam.get_user().send().await.unwrap();
    assert_eq!(me.user().unwrap().user_name(), PROXY_USER);
}

#[tokio::test]
async fn users_without_the_permission_with_an_inactive_key_or_a_wrong_external_id_are_refused() {
    let lake = TestLake::start().await;
    let (_channel, keys) = world(&lake, false).await;
    let sts = lake.sts_with(&keys.id, &keys.secret, None);
    let vendor = lake.iam(Who::Vendor);

    // No identity policy: the proxy role's trust names the vendor's account, which delegates to
    // the account's own policies, and none allows this user.
    assert_eq!(assume(&sts, PROXY_ROLE, None).await.unwrap_err(), "AccessDenied");
    vendor
        .put_user_policy()
        .user_name(PROXY_USER)
        .policy_name("assume-proxy-role")
        .policy_document(allow("sts:AssumeRole", PROXY_ROLE))
        .send()
        .await
        .unwrap();
    let proxy = assume(&sts, PROXY_ROLE, None).await.unwrap();

    // A wrong or missing external ID on the customer's role.
    let chained = lake.sts_session(&proxy);
    assert_eq!(assume(&chained, CUSTOMER_ROLE, Some("klarity-ext-8")).await.unwrap_err(), "AccessDenied");
    assert_eq!(assume(&chained, CUSTOMER_ROLE, None).await.unwrap_err(), "AccessDenied");

    // An explicit deny in the user's policies wins.
    vendor
        .put_user_policy()
        .user_name(PROXY_USER)
        .policy_name("deny")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"sts:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(assume(&sts, PROXY_ROLE, None).await.unwrap_err(), "AccessDenied");
    vendor.delete_user_policy().user_name(PROXY_USER).policy_name("deny").send().await.unwrap();

    // A deactivated key signs nothing, as an unknown one; reactivated, it works again.
    vendor
        .update_access_key()
        .user_name(PROXY_USER)
        .access_key_id(&keys.id)
        .status("Inactive".into())
        .send()
        .await
        .unwrap();
    let err = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidClientTokenId");
    let listed = vendor.list_access_keys().user_name(PROXY_USER).send().await.unwrap();
    assert_eq!(listed.access_key_metadata()[0].status().unwrap().as_str(), "Inactive");
    vendor
        .update_access_key()
        .user_name(PROXY_USER)
        .access_key_id(&keys.id)
        .status("Active".into())
        .send()
        .await
        .unwrap();
    sts.get_caller_identity().send().await.unwrap();

    // A deleted key is refused; a deleted user's other key went with it.
    vendor.delete_access_key().user_name(PROXY_USER).access_key_id(&keys.id).send().await.unwrap();
    let err = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(code(err), "InvalidClientTokenId");
}

#[tokio::test]
async fn a_trust_policy_may_name_a_user() {
    let lake = TestLake::start().await;
    let (_channel, keys) = world(&lake, true).await;
    let customer = lake.iam(Who::Customer);
    let user_arn = format!("arn:aws:iam::855341727128:user/{PROXY_USER}");
    customer
        .create_role()
        .role_name("DirectFromUser")
        .assume_role_policy_document(trust(&user_arn, Some(EXTERNAL_ID)))
        .send()
        .await
        .unwrap();
    let vendor = lake.iam(Who::Vendor);
    vendor
        .put_user_policy()
        .user_name(PROXY_USER)
        .policy_name("direct")
        .policy_document(allow("sts:AssumeRole", "arn:aws:iam::123456789012:role/DirectFromUser"))
        .send()
        .await
        .unwrap();
    let sts = lake.sts_with(&keys.id, &keys.secret, None);
    let session = assume(&sts, "arn:aws:iam::123456789012:role/DirectFromUser", Some(EXTERNAL_ID)).await.unwrap();
    let me = lake.sts_session(&session).get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:sts::123456789012:assumed-role/DirectFromUser/workload"));
    // Another user of the same account is not named.
    vendor.create_user().user_name("someone-else").send().await.unwrap();
    let other = vendor.create_access_key().user_name("someone-else").send().await.unwrap();
    let other = other.access_key().unwrap();
    vendor
        .put_user_policy()
        .user_name("someone-else")
        .policy_name("direct")
        .policy_document(allow("sts:AssumeRole", "*"))
        .send()
        .await
        .unwrap();
    let sts = lake.sts_with(other.access_key_id(), other.secret_access_key(), None);
    let err = assume(&sts, "arn:aws:iam::123456789012:role/DirectFromUser", Some(EXTERNAL_ID)).await.unwrap_err();
    assert_eq!(err, "AccessDenied");
    // A trust policy naming something that is not a principal is refused when written.
    let err = customer
        .create_role()
        .role_name("Bad")
        .assume_role_policy_document(trust("arn:aws:s3:::bucket", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "MalformedPolicyDocument");
}

#[tokio::test]
async fn iam_answers_users_and_keys_with_its_shapes_errors_and_paging() {
    let lake = TestLake::start().await;
    let iam = lake.iam(Who::Vendor);
    for n in 0..5 {
        iam.create_user().user_name(format!("user-{n}")).path("/workloads/").send().await.unwrap();
    }
    let err = iam.create_user().user_name("USER-0").send().await.unwrap_err();
    assert_eq!(code(err), "EntityAlreadyExists", "names are case-insensitive");
    let err = iam.get_user().user_name("nobody").send().await.unwrap_err();
    assert_eq!(code(err), "NoSuchEntity");
    let err = iam.create_user().user_name("bad name!").send().await.unwrap_err();
    assert_eq!(code(err), "ValidationError");
    let got = iam.get_user().user_name("user-1").send().await.unwrap();
    assert_eq!(got.user().unwrap().path(), "/workloads/");
    assert_eq!(got.user().unwrap().arn(), "arn:aws:iam::855341727128:user/workloads/user-1");
    // GetUser with root keys and no name is refused as AWS refuses it.
    let err = iam.get_user().send().await.unwrap_err();
    assert_eq!(code(err), "ValidationError");

    // Paging: MaxItems, Marker, IsTruncated — for users, roles and policy names alike.
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let page = iam.list_users().max_items(2).set_marker(marker.clone()).send().await.unwrap();
        assert!(page.users().len() <= 2);
        names.extend(page.users().iter().map(|u| u.user_name().to_owned()));
        if !page.is_truncated() {
            assert!(page.marker().is_none());
            break;
        }
        marker = page.marker().map(str::to_owned);
        assert!(marker.is_some());
    }
    assert_eq!(names, ["user-0", "user-1", "user-2", "user-3", "user-4"]);
    let err = iam.list_users().max_items(0).send().await;
    assert!(err.is_err(), "MaxItems 0 is refused (by the SDK or the lake)");
    let err = iam.list_users().marker("not-a-marker").send().await.unwrap_err();
    assert_eq!(code(err), "ValidationError");
    for n in 0..3 {
        iam.put_user_policy()
            .user_name("user-0")
            .policy_name(format!("p{n}"))
            .policy_document(allow("sts:GetCallerIdentity", "*"))
            .send()
            .await
            .unwrap();
    }
    let page = iam.list_user_policies().user_name("user-0").max_items(2).send().await.unwrap();
    assert_eq!(page.policy_names(), ["p0", "p1"]);
    assert!(page.is_truncated());
    let rest = iam.list_user_policies().user_name("user-0").marker(page.marker().unwrap()).send().await.unwrap();
    assert_eq!(rest.policy_names(), ["p2"]);
    let got = iam.get_user_policy().user_name("user-0").policy_name("p1").send().await.unwrap();
    let document: serde_json::Value =
        serde_json::from_str(&percent_encoding::percent_decode_str(got.policy_document()).decode_utf8().unwrap())
            .unwrap();
    assert_eq!(document["Statement"][0]["Action"], "sts:GetCallerIdentity");
    let err = iam.get_user_policy().user_name("user-0").policy_name("nope").send().await.unwrap_err();
    assert_eq!(code(err), "NoSuchEntity");
    let err = iam
        .put_user_policy()
        .user_name("user-0")
        .policy_name("with-principal")
        .policy_document(trust("*", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "MalformedPolicyDocument");

    // Keys: two at most; listed without secrets; a user with keys or policies is not deleted.
    let first = iam.create_access_key().user_name("user-0").send().await.unwrap();
    let secret = first.access_key().unwrap().secret_access_key().to_owned();
    assert_eq!(secret.len(), 40);
    iam.create_access_key().user_name("user-0").send().await.unwrap();
    let err = iam.create_access_key().user_name("user-0").send().await.unwrap_err();
    assert_eq!(code(err), "LimitExceeded");
    let keys = iam.list_access_keys().user_name("user-0").send().await.unwrap();
    assert_eq!(keys.access_key_metadata().len(), 2);
    assert!(keys.access_key_metadata().iter().all(|k| k.user_name() == Some("user-0")));
    let err = iam.delete_user().user_name("user-0").send().await.unwrap_err();
    assert_eq!(code(err), "DeleteConflict");
    let err = iam
        .update_access_key()
        .user_name("user-1")
        .access_key_id(first.access_key().unwrap().access_key_id())
        .status("Inactive".into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "NoSuchEntity", "a key is found only under its own user");
    for key in keys.access_key_metadata() {
        iam.delete_access_key().user_name("user-0").access_key_id(key.access_key_id().unwrap()).send().await.unwrap();
    }
    for n in 0..3 {
        iam.delete_user_policy().user_name("user-0").policy_name(format!("p{n}")).send().await.unwrap();
    }
    iam.delete_user().user_name("user-0").send().await.unwrap();
    assert_eq!(iam.list_users().send().await.unwrap().users().len(), 4);

    // Another account sees none of these users.
    let other = lake.iam(Who::Customer);
    assert!(other.list_users().send().await.unwrap().users().is_empty());
    let err = other.get_user().user_name("user-1").send().await.unwrap_err();
    assert_eq!(code(err), "NoSuchEntity");
}

#[tokio::test]
async fn a_users_secret_is_sealed_at_rest_and_honoured_after_a_restart() {
    let lake = TestLake::start().await;
    let iam = lake.iam(Who::Vendor);
    iam.create_user().user_name("kept").send().await.unwrap();
    let key = iam.create_access_key().user_name("kept").send().await.unwrap();
    let key = key.access_key().unwrap();
    let (id, secret) = (key.access_key_id().to_owned(), key.secret_access_key().to_owned());
    let db = lake.db();
    let dir = lake.stop().await;
    let mut bytes = std::fs::read(&db).unwrap();
    for extra in ["-wal", "-shm"] {
        bytes.extend(std::fs::read(format!("{}{extra}", db.display())).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(&id), "the key id is stored");
    assert!(!text.contains(&secret), "the secret is not stored in the clear");

    let lake = TestLake::start_in(dir).await;
    let me = lake.sts_with(&id, &secret, None).get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::855341727128:user/kept"));
    let err = lake.sts_with(&id, "not-the-secret-of-this-key-at-all-00000", None).get_caller_identity().send().await;
    assert_eq!(code(err.unwrap_err()), "SignatureDoesNotMatch");
}
