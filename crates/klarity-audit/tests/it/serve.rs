//! `klarity-audit serve` as a process: the first start makes the seed's world, events of every
//! application sent with `send` and with plain HTTP arrive in the customer's store, and a restart
//! keeps them and makes nothing twice.

use std::{
    io::BufRead,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use audit_event::Catalog;
use serde_json::{Value, json};

use crate::support::{Dir, http_post};

/// A running `serve` and what its banner said.
pub(crate) struct Serve {
    child: Child,
    pub(crate) banner: String,
    pub(crate) relay: String,
}

impl Serve {
    pub(crate) fn start(data: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
            .args(["serve", "--lake-listen", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting klarity-audit serve");
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        while !banner.contains("Stop with Ctrl-C.") {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "serve stopped; it printed:\n{banner}");
            banner.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let relay = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("relay  http://"))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no relay address in\n{banner}"))
            .to_owned();
        Serve { child, banner, relay }
    }

    fn token(&self, source: &str) -> String {
        token_in(&self.banner, source)
    }

    fn store(&self) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("event data store "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned()
    }

    /// Stops it as Ctrl-C would.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app token of `source` a banner shows (in full, or masked).
fn token_in(banner: &str, source: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(source).map(|rest| rest.trim().to_owned()))
        .filter(|t| t.starts_with("kat_"))
        .unwrap_or_else(|| panic!("no token for {source} in\n{banner}"))
}

fn stored_uids(data: &Path, store: &str) -> Vec<String> {
    let mut uids = Vec::new();
    audit_lake::columnar::scan_store(&data.join("lake").join(audit_lake::store::DB_FILE), store, |record| {
        let value: Value = serde_json::from_str(record).unwrap();
        uids.push(value["eventData"]["UID"].as_str().unwrap().to_owned());
        true
    })
    .unwrap();
    uids.sort();
    uids
}

/// GETs `path` with a bearer token over plain HTTP; the whole answer (head and body).
fn http_get(address: &str, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Runs the banner's `curl` into a tenant (its line holds `tenant_path`) and returns the banner's
/// read-back command (the line holding `read_back` and the next), as printed.
fn send_and_read_back(lines: &[&str], tenant_path: &str, read_back: &str) -> String {
    let curl = lines.iter().find(|l| l.starts_with("curl ") && l.contains(tenant_path)).unwrap();
    let out = Command::new("sh").args(["-c", &format!("{curl} -s")]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"accepted\""), "{curl}: {out:?}");
    let at = lines.iter().position(|l| l.contains(read_back)).unwrap();
    format!("{} {}", lines[at].trim_end_matches('\\'), lines[at + 1])
}

/// A printed command run in `dir` with only the keys it names (none of this machine's AWS setup).
fn as_customer(command: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_runs_the_whole_flow_and_a_restart_keeps_it_without_making_anything_twice() {
    let dir = Dir::new();
    let data = dir.path().join("klarity-data");
    let serve = Serve::start(&data);
    assert!(serve.banner.contains("Set up now"), "{}", serve.banner);
    assert!(serve.banner.contains("curl -X POST http://"), "{}", serve.banner);
    assert!(serve.banner.contains("CTEventPublisher (trusts 855341727128 with external ID"), "{}", serve.banner);
    let store = serve.store();

    // One event of every application with `send`, one more with plain HTTP.
    let catalog = Catalog::embedded();
    let mut expected = Vec::new();
    for (n, app) in catalog.applications().iter().enumerate() {
        let token = serve.token(&app.event_source);
        let mut event = Value::Object(app.event_types[0].example.clone());
        // Today, so that the store's retention keeps it visible to queries.
        event["eventTime"] = json!(audit_event::EventTime::now().to_string());
        let sent_uid = format!("0190a6b7-7777-7a3f-9d2b-{n:012}");
        event["UID"] = json!(sent_uid);
        event.as_object_mut().unwrap().remove("recipientAccountId");
        let file = dir.write(&format!("{n}.json"), &event.to_string());
        let out = Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
            .args(["send", "--tenant", "demo", "--relay-url", &format!("http://{}", serve.relay)])
            .arg(&file)
            .env("KLARITY_TOKEN", &token)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 event(s) sent to tenant demo: 1 accepted, 0 refused."), "{stdout}");
        expected.push(sent_uid);

        let http_uid = format!("0190a6b7-8888-7a3f-9d2b-{n:012}");
        event["UID"] = json!(http_uid);
        let (status, body) = http_post(&serve.relay, "/v1/tenants/demo/events", &token, &event.to_string());
        assert_eq!(status, 202, "{body}");
        expected.push(http_uid);
    }
    expected.sort();
    wait_for("the ten events are in the store", || stored_uids(&data, &store) == expected);

    // The banner's own `send` line works as printed (echo … | KLARITY_TOKEN=… klarity-audit send …).
    let printed = serve.banner.lines().map(str::trim).find(|l| l.starts_with("echo '")).unwrap();
    let out = Command::new("sh").args(["-c", printed]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 accepted, 0 refused."), "{printed}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the printed send's event arrives", || stored_uids(&data, &store).len() == expected.len() + 1);
    let now = stored_uids(&data, &store);
    assert!(expected.iter().all(|u| now.contains(u)));
    expected = now;

    // The banner's `send --direct` runs as printed, from a machine holding only the proxy user's
    // key: user → proxy role → customer role → PutAuditEvents.
    let lines: Vec<&str> = serve.banner.lines().collect();
    let at = lines.iter().position(|l| l.contains(" send --direct ")).unwrap_or_else(|| panic!("{}", serve.banner));
    let printed = format!("{}\n{}", lines[at].trim(), lines[at + 1]);
    assert!(printed.contains("AWS_SECRET_ACCESS_KEY=") && !printed.contains("<its secret>"), "{printed}");
    let mut direct = Command::new("sh");
    direct.args(["-c", &printed]);
    for name in crate::support::AWS_IDENTITY_ENV {
        direct.env_remove(name);
    }
    let out = direct
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 accepted, 0 refused."), "{printed}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stored_uids(&data, &store).len(), expected.len() + 1, "the direct event is stored at once");
    expected = stored_uids(&data, &store);
    let user_secret = printed
        .split("AWS_SECRET_ACCESS_KEY=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();

    // The CloudWatch Logs demo tenant: the banner's curl into `demo-logs`, then its `aws logs
    // get-log-events` as printed, as the customer, finds the event in the log group.
    let lines: Vec<&str> = serve.banner.lines().map(str::trim).collect();
    let read_back = send_and_read_back(&lines, "/tenants/demo-logs/", "aws logs get-log-events");
    let workdir = tempfile::tempdir().unwrap();
    wait_for("the demo-logs event is in CloudWatch Logs", || {
        let out = as_customer(&read_back, workdir.path());
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        answer["events"].as_array().is_some_and(|events| {
            events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains("baselinePatching.started")))
        })
    });

    // The S3 demo tenant: the banner's curl into `demo-s3`, then its `aws s3 cp` as printed, as
    // the customer, copies the object down and prints the event (once its object rolled over).
    let read_back = send_and_read_back(&lines, "/tenants/demo-s3/", "aws s3 cp --recursive");
    wait_for("the demo-s3 event is in an object", || {
        let out = as_customer(&read_back, workdir.path());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|e| e["eventName"] == "baselinePatching.started"))
    });

    // Every query the banner prints runs as printed; the last counts events per application.
    let queries: Vec<&str> =
        serve.banner.lines().map(str::trim).filter(|l| l.contains(" query ") && l.contains("\"SELECT ")).collect();
    assert_eq!(queries.len(), 6, "{}", serve.banner);
    for printed in &queries {
        let out = Command::new("sh").args(["-c", printed]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{printed}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(" row"), "{printed}\n{stdout}");
    }
    let out = Command::new("sh").args(["-c", &format!("{} --json", queries[5])]).output().unwrap();
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for app in catalog.applications() {
        let events: u64 = rows
            .iter()
            .filter(|r| r["eventSource"] == app.event_source.as_str())
            .map(|r| r["events"].as_str().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(events, 2 + 2 * u64::from(app.event_source == "com.nordcloudapp.com.autopatcher"), "{rows:?}");
    }

    // `send` reports a refused event at its place and exits 1.
    let bad = dir.write("bad.ndjson", "{\"version\":\"v1\"}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
        .args(["send", "--tenant", "demo", "--relay-url", &format!("http://{}", serve.relay)])
        .arg(&bad)
        .env("KLARITY_TOKEN", serve.token("com.nordcloudapp.com.maestro"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bad.ndjson:1:1: eventData.eventSource:"), "{stdout}");

    // A large NDJSON input is streamed in batches; a malformed line and an invalid event are reported
    // at their lines, and everything else is delivered. A pretty-printed object is read whole.
    let maestro_app = catalog.applications().iter().find(|a| a.event_source == "com.nordcloudapp.com.maestro").unwrap();
    let mut lines = Vec::new();
    let mut bulk = Vec::new();
    for i in 0..1200 {
        let mut event = Value::Object(maestro_app.event_types[0].example.clone());
        event.as_object_mut().unwrap().remove("recipientAccountId");
        let uid = format!("0190a6b7-aaaa-7a3f-9d2b-{i:012}");
        event["UID"] = json!(uid);
        match i {
            6 => lines.push("{\"version\": \"v1\", oops".to_owned()),
            9 => {
                event["eventName"] = json!("deployment.exploded");
                lines.push(event.to_string());
            }
            _ => {
                lines.push(event.to_string());
                bulk.push(uid);
            }
        }
    }
    let big = dir.write("bulk.ndjson", &(lines.join("\n") + "\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
        .args(["send", "--tenant", "demo", "--batch", "500", "--relay-url", &format!("http://{}", serve.relay)])
        .arg(&big)
        .env("KLARITY_TOKEN", serve.token("com.nordcloudapp.com.maestro"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bulk.ndjson:7:"), "{stdout}");
    assert!(stdout.contains("bulk.ndjson:10:1: eventData.eventName:"), "{stdout}");
    assert!(stdout.contains("1200 event(s) sent to tenant demo: 1198 accepted, 2 refused."), "{stdout}");
    let mut pretty_event = Value::Object(maestro_app.event_types[0].example.clone());
    pretty_event.as_object_mut().unwrap().remove("recipientAccountId");
    pretty_event["UID"] = json!("0190a6b7-bbbb-7a3f-9d2b-000000000001");
    let pretty = dir.write("pretty.json", &serde_json::to_string_pretty(&pretty_event).unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_klarity-audit"))
        .args(["send", "--tenant", "demo", "--relay-url", &format!("http://{}", serve.relay)])
        .arg(&pretty)
        .env("KLARITY_TOKEN", serve.token("com.nordcloudapp.com.maestro"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    bulk.push("0190a6b7-bbbb-7a3f-9d2b-000000000001".into());
    expected.extend(bulk);
    expected.sort();
    wait_for("the streamed events are in the store", || stored_uids(&data, &store) == expected);

    // A restart reuses everything.
    let first_banner = serve.banner.clone();
    serve.stop();
    let serve = Serve::start(&data);
    assert!(serve.banner.contains("Reusing the demo set up at the first start"), "{}", serve.banner);
    assert_eq!(serve.store(), store);
    // Tokens were shown once: now masked, and in serve.json only as hints and a hash.
    let state = std::fs::read_to_string(data.join("serve.json")).unwrap();
    let admin = first_banner
        .split("admin token: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin token in\n{first_banner}"))
        .to_owned();
    assert!(admin.starts_with("kadm_"), "{admin}");
    assert!(!serve.banner.contains(&admin) && !state.contains(&admin), "the admin token is shown once");
    assert!(
        !serve.banner.contains(&user_secret) && !state.contains(&user_secret),
        "the proxy user's secret is shown once"
    );
    assert!(serve.banner.contains("its secret was shown when it was made"), "{}", serve.banner);
    for app in catalog.applications() {
        let token = token_in(&first_banner, &app.event_source);
        let masked = serve.token(&app.event_source);
        assert!(!serve.banner.contains(&token) && !state.contains(&token), "{token} is shown once");
        assert_eq!(masked, format!("{}…", &token[..12]), "the same token, masked");
    }
    // Everything serve wrote is its owner's alone: directories 0700, files 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut pending = vec![data.clone()];
        let mut seen = 0;
        while let Some(path) = pending.pop() {
            let meta = std::fs::metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
                pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 10, "only {seen} files looked at");
        assert!(data.join("lake").join("secrets.key").exists(), "the lake's sealing key is there");
    }
    // The admin token reads the lake's metrics too.
    let lake = serve
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("lake   http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let metrics = http_get(&lake, "/metrics", &admin);
    assert!(metrics.contains("klarity_lake_quarantined_events 0"), "{metrics}");
    assert!(!http_get(&lake, "/metrics", "kadm_wrong").contains("klarity_lake"), "the token is checked");
    assert_eq!(stored_uids(&data, &store), expected, "the events are still there");
    let resources =
        audit_lake::store::Store::read_resources(&data.join("lake").join(audit_lake::store::DB_FILE)).unwrap();
    assert_eq!(
        (resources.stores.len(), resources.channels.len(), resources.users.len(), resources.access_keys.len()),
        (1, 1, 1, 1),
        "nothing was made twice"
    );
    let tokens: i64 = rusqlite::Connection::open(data.join("relay").join("registry.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tokens, catalog.applications().len() as i64, "one token per application, made once");

    // And it still delivers.
    let mut event = Value::Object(catalog.applications()[4].event_types[0].example.clone());
    event["UID"] = json!("0190a6b7-9999-7a3f-9d2b-000000000001");
    event.as_object_mut().unwrap().remove("recipientAccountId");
    let token = token_in(&first_banner, &catalog.applications()[4].event_source);
    let (status, body) = http_post(&serve.relay, "/v1/tenants/demo/events", &token, &event.to_string());
    assert_eq!(status, 202, "{body}");
    wait_for("the event sent after the restart arrives", || stored_uids(&data, &store).len() == expected.len() + 1);
    serve.stop();
}
