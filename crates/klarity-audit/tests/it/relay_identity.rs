//! The relay's own AWS identity from AWS's standard credential chain, as a container service or
//! a machine with profiles gives it: an ECS-style container credentials endpoint on loopback, and
//! a profile file with `role_arn` + `source_profile`. Either way the relay (empty static keys)
//! assumes the vendor's proxy role, then the customer's role with its external ID, and delivers
//! into the customer's channel in the local lake.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use audit_lake::config::{VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY};
use serde_json::Value;

use crate::support::{Dir, LakeProcess, RelayProcess, lake_call, lake_call_as, urlencode};

const VENDOR: (&str, &str) = (VENDOR_ACCESS_KEY_ID, VENDOR_SECRET_ACCESS_KEY);
const TASK_ROLE: &str = "arn:aws:iam::855341727128:role/KlarityTask";
const PROXY_ROLE: &str = "arn:aws:iam::855341727128:role/KlarityProxy";
const CUSTOMER_ROLE: &str = "arn:aws:iam::123456789012:role/CTEventPublisher";
const EXTERNAL_ID: &str = "klarity-identity-7";

fn iam(endpoint: &str, keys: Option<(&str, &str)>, form: &str) {
    let (status, body) = match keys {
        Some(keys) => lake_call_as(endpoint, keys, "iam", "/", form),
        None => lake_call(endpoint, "iam", "/", form),
    };
    assert_eq!(status, 200, "{form}: {body}");
}

fn role(endpoint: &str, keys: Option<(&str, &str)>, name: &str, trust: &str, policy: &str) {
    iam(
        endpoint,
        keys,
        &format!("Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={}", urlencode(trust)),
    );
    iam(
        endpoint,
        keys,
        &format!(
            "Action=PutRolePolicy&Version=2010-05-08&RoleName={name}&PolicyName=p&PolicyDocument={}",
            urlencode(policy)
        ),
    );
}

fn trust(external_id: Option<&str>) -> String {
    let condition = external_id
        .map(|id| format!(r#","Condition":{{"StringEquals":{{"sts:ExternalId":"{id}"}}}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::855341727128:root"}},"Action":"sts:AssumeRole"{condition}}}]}}"#
    )
}

fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

/// The seed's world, plus the vendor's task role (what an ECS task or a profile's `role_arn`
/// stands for), which may assume only the proxy role; returns the channel ARN.
fn world(endpoint: &str) -> String {
    let (_, channel) = crate::relay_e2e::store_and_channel(endpoint, "identity");
    role(
        endpoint,
        None,
        "CTEventPublisher",
        &trust(Some(EXTERNAL_ID)),
        &allow("cloudtrail-data:PutAuditEvents", &channel),
    );
    role(endpoint, Some(VENDOR), "KlarityProxy", &trust(None), &allow("sts:AssumeRole", "arn:aws:iam::*:role/*"));
    role(endpoint, Some(VENDOR), "KlarityTask", &trust(None), &allow("sts:AssumeRole", PROXY_ROLE));
    channel
}

/// Registers the tenant (role mode through the proxy role) and a token; returns the token.
fn tenant_and_token(dir: &Dir, channel: &str) -> String {
    let out = dir.run(
        &[
            "tenants",
            "add",
            "acme",
            "--channel-arn",
            channel,
            "--role-arn",
            CUSTOMER_ROLE,
            "--proxy-role-arn",
            PROXY_ROLE,
            "--external-id",
            EXTERNAL_ID,
            "--data-dir",
            "relay",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dir.run(
        &["tokens", "issue", "--app", "com.nordcloudapp.com.maestro", "--tenants", "acme", "--data-dir", "relay"],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().nth(1).unwrap().to_owned()
}

/// Sends one event through the relay and waits until it is delivered.
fn delivered(relay: &RelayProcess, token: &str, uid: &str) {
    let catalog = audit_event::Catalog::embedded();
    let mut event = catalog.application("com.nordcloudapp.com.maestro").unwrap().event_types[0].example.clone();
    event.insert("UID".into(), serde_json::json!(uid));
    event.remove("recipientAccountId");
    let (status, body) =
        crate::support::http_post(&relay.address, "/v1/tenants/acme/events", token, &Value::Object(event).to_string());
    assert_eq!(status, 202, "{body}");
    let started = Instant::now();
    loop {
        let state = status_of(&relay.address, token, uid);
        if state["state"] == "delivered" {
            assert!(state["eventID"].as_str().is_some_and(|id| id.len() == 36), "{state}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not delivered: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_of(address: &str, token: &str, uid: &str) -> Value {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET /v1/tenants/acme/events/{uid} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)).unwrap_or(Value::Null)
}

/// The tag `name`'s text in an XML answer.
fn xml(body: &str, name: &str) -> String {
    body.split(&format!("<{name}>"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("</{name}>")).next())
        .unwrap()
        .to_owned()
}

/// An ECS-style container credentials endpoint on loopback: answers `GET /credentials` with the
/// task role's session when the authorization token matches; counts the answers.
fn container_endpoint(credentials: Value, token: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let authorized = head.iter().any(|l| {
                l.split_once(':')
                    .is_some_and(|(name, value)| name.eq_ignore_ascii_case("authorization") && value.trim() == token)
            });
            let (status, body) = if head.first().is_some_and(|l| l.starts_with("GET /credentials ")) && authorized {
                count.fetch_add(1, Ordering::Relaxed);
                ("200 OK", credentials.to_string())
            } else {
                ("403 Forbidden", "{}".to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{address}/credentials"), served)
}

#[test]
fn the_relay_s_identity_comes_from_a_container_credentials_endpoint() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let channel = world(&lake.endpoint);
    let token = tenant_and_token(&dir, &channel);
    // The task role's session, as ECS serves it to a container.
    let (status, body) = lake_call_as(
        &lake.endpoint,
        VENDOR,
        "sts",
        "/",
        &format!("Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=ecs-task", urlencode(TASK_ROLE)),
    );
    assert_eq!(status, 200, "{body}");
    let session = serde_json::json!({
        "AccessKeyId": xml(&body, "AccessKeyId"),
        "SecretAccessKey": xml(&body, "SecretAccessKey"),
        "Token": xml(&body, "SessionToken"),
        "Expiration": xml(&body, "Expiration"),
    });
    let (uri, served) = container_endpoint(session, "Bearer-ecs-token-1");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &lake.endpoint,
        &[
            ("KLARITY_RELAY__CREDENTIALS__ACCESS_KEY_ID", ""),
            ("KLARITY_RELAY__CREDENTIALS__SECRET_ACCESS_KEY", ""),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer-ecs-token-1"),
            ("AWS_CONFIG_FILE", home.join("no-config").to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials").to_str().unwrap()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_REGION", "us-east-1"),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    delivered(&relay, &token, "0190a6b4-2222-7a3f-9d2b-00000000ec51");
    assert!(served.load(Ordering::Relaxed) >= 1, "the container endpoint was never asked");
}

#[test]
fn the_relay_s_identity_comes_from_a_profile_with_a_role_and_a_source_profile() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let channel = world(&lake.endpoint);
    let token = tenant_and_token(&dir, &channel);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.write(
        "home/config",
        &format!(
            "[profile relay]\nrole_arn = {TASK_ROLE}\nsource_profile = base\nrole_session_name = relay-host\nregion = us-east-1\n\n[profile base]\nregion = us-east-1\n"
        ),
    );
    let credentials = dir.write(
        "home/credentials",
        &format!(
            "[base]\naws_access_key_id = {VENDOR_ACCESS_KEY_ID}\naws_secret_access_key = {VENDOR_SECRET_ACCESS_KEY}\n"
        ),
    );
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        &lake.endpoint,
        &[
            ("KLARITY_RELAY__CREDENTIALS__ACCESS_KEY_ID", ""),
            ("KLARITY_RELAY__CREDENTIALS__SECRET_ACCESS_KEY", ""),
            ("KLARITY_RELAY__CREDENTIALS__PROFILE", "relay"),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            // The profile's own AssumeRole goes to the local lake's STS too.
            ("AWS_ENDPOINT_URL_STS", &lake.endpoint),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    delivered(&relay, &token, "0190a6b4-2222-7a3f-9d2b-00000000f0f1");
}

/// The commands that call AWS take `--profile` and AWS's standard chain too: `tenants verify`
/// checks the tenant with the relay's identity from a profile, `query` and `onboard apply` run
/// with the customer's.
#[test]
fn the_commands_that_call_aws_take_a_profile() {
    let dir = Dir::new();
    let lake = LakeProcess::start(&dir.path().join("lake"));
    let channel = world(&lake.endpoint);
    tenant_and_token(&dir, &channel);
    let config = dir.write(
        "home/config",
        &format!(
            "[profile relay]\nrole_arn = {TASK_ROLE}\nsource_profile = base\nregion = us-east-1\n\n[profile base]\nregion = us-east-1\n\n[profile customer]\nregion = us-east-1\n"
        ),
    );
    let credentials = dir.write(
        "home/credentials",
        &format!(
            "[base]\naws_access_key_id = {VENDOR_ACCESS_KEY_ID}\naws_secret_access_key = {VENDOR_SECRET_ACCESS_KEY}\n\n[customer]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
            audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY
        ),
    );
    let home = dir.path().join("home");
    let env = [
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_ENDPOINT_URL_STS", lake.endpoint.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("HOME", home.to_str().unwrap()),
        ("KLARITY_RELAY__ENDPOINT_URL", lake.endpoint.as_str()),
    ];
    let out = dir.run_with(&["tenants", "verify", "acme", "--profile", "relay", "--data-dir", "relay"], None, &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Tenant acme works"), "{}", out.stdout);
    // Without the profile the configured keys are used; with an unknown one, verify says so.
    let out = dir.run_with(&["tenants", "verify", "acme", "--profile", "nobody", "--data-dir", "relay"], None, &env);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL"), "{}", out.stdout);

    let query = |sql: &str| {
        let args = ["query", "--endpoint-url", &lake.endpoint, "--profile", "customer", "--json", sql];
        dir.run_with(&args, None, &env)
    };
    let out = query("SELECT count(*) AS n FROM identity");
    assert_ne!(out.code, 0, "a table that is not a store id is refused: {}", out.stdout);
    let stores = lake_call(&lake.endpoint, "cloudtrail", "ListEventDataStores", "{}").1;
    let store = serde_json::from_str::<Value>(&stores).unwrap()["EventDataStores"][0]["EventDataStoreArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let out = query(&format!("SELECT count(*) AS n FROM {store}"));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\"n\":\"1\""), "the canary of verify is there: {}", out.stdout);
    let out = dir.run_with(
        &["onboard", "apply", "--endpoint-url", &lake.endpoint, "--profile", "customer", "--name", "second"],
        None,
        &env,
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
